namespace Microsoft.ML.DualHeadDistillation.Inference;

/// <summary>
/// DHO's inference rule: p = alpha * softmax(h_CE) + (1 - alpha) * softmax(h_KD / beta).
/// Works on one row's logits so alpha and beta can change on a fitted model without re-running anything
/// but this arithmetic.
/// </summary>
public static class HeadCombiner
{
    /// <summary>Writes the CE head's probabilities, the KD head's tempered probabilities and their mix; returns the arg-max class (0-based).</summary>
    public static int Combine(ReadOnlySpan<float> ceLogits, ReadOnlySpan<float> kdLogits, float alpha, float beta,
        Span<float> ceProbabilities, Span<float> kdProbabilities, Span<float> combined)
    {
        Softmax(ceLogits, 1f, ceProbabilities);
        Softmax(kdLogits, beta, kdProbabilities);
        int best = 0;
        for (int k = 0; k < combined.Length; k++)
        {
            combined[k] = alpha * ceProbabilities[k] + (1 - alpha) * kdProbabilities[k];
            if (combined[k] > combined[best]) best = k;
        }
        return best;
    }

    /// <summary>softmax(logits / temperature), numerically stable.</summary>
    public static void Softmax(ReadOnlySpan<float> logits, float temperature, Span<float> output)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits) max = MathF.Max(max, v);
        double sum = 0;
        for (int k = 0; k < logits.Length; k++)
        {
            float e = MathF.Exp((logits[k] - max) / temperature);
            output[k] = e;
            sum += e;
        }
        float inv = (float)(1 / sum);
        for (int k = 0; k < logits.Length; k++) output[k] *= inv;
    }
}
