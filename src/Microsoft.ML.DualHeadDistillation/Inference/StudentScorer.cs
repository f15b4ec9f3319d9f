using Microsoft.ML.DualHeadDistillation.Students;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Inference;

/// <summary>Runs the student on rows of flattened features and returns both heads' logits (no gradient).</summary>
internal sealed class StudentScorer
{
    private readonly DualHeadStudent _student;
    private readonly Device _device;
    private readonly object _lock = new();

    public StudentScorer(DualHeadStudent student, Device device)
    {
        _student = student;
        _device = device;
    }

    public int ClassCount => _student.ClassCount;
    public int InputSize => _student.Backbone.InputSize;

    /// <summary>Scores <paramref name="rows"/> rows of <paramref name="features"/> ([rows, D] row-major) into [rows, K] logits per head.</summary>
    public void Score(ReadOnlySpan<float> features, int rows, Span<float> ceLogits, Span<float> kdLogits) => Score(features, rows, ceLogits, kdLogits, batchStatistics: false);

    /// <summary>As <see cref="Score(ReadOnlySpan{float}, int, Span{float}, Span{float})"/>; <paramref name="batchStatistics"/>: BatchNorm layers in train mode (the caller keeps their running statistics).</summary>
    private void Score(ReadOnlySpan<float> features, int rows, Span<float> ceLogits, Span<float> kdLogits, bool batchStatistics)
    {
        if (rows == 0) return;
        var input = features[..(rows * InputSize)].ToArray();
        lock (_lock) // modules are not re-entrant across threads; scoring cursors may run in parallel
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            _student.eval();
            if (batchStatistics)
                foreach (var layer in Training.Recipes.PreciseBatchNorm.Layers(_student)) layer.train();
            var x = tensor(input, [rows, InputSize]).to(_device);
            var (ce, kd) = _student.forward(x);
            ce.cpu().data<float>().CopyTo(ceLogits[..(rows * ClassCount)]);
            kd.cpu().data<float>().CopyTo(kdLogits[..(rows * ClassCount)]);
        }
    }

    /// <summary>Both heads' logits for every row of <paramref name="features"/> ([rows, D]).</summary>
    public (float[] Ce, float[] Kd) ScoreAll(float[] features, int rows, int batchSize, Training.FitCancellation? cancel = null)
    {
        int k = ClassCount, d = InputSize;
        var ce = new float[rows * k];
        var kd = new float[rows * k];
        for (int start = 0; start < rows; start += batchSize)
        {
            cancel?.ThrowIfRequested();
            int n = Math.Min(batchSize, rows - start);
            Score(features.AsSpan(start * d, n * d), n, ce.AsSpan(start * k, n * k), kd.AsSpan(start * k, n * k));
        }
        return (ce, kd);
    }

    /// <summary>Accuracy of the combined prediction on labeled rows (label &lt; 0 rows are ignored).</summary>
    public double Accuracy(float[] features, int[] labels, float alpha, float beta, int batchSize, Training.FitCancellation? cancel = null, bool batchStatistics = false)
    {
        int k = ClassCount, d = InputSize, correct = 0, counted = 0;
        var ce = new float[batchSize * k];
        var kd = new float[batchSize * k];
        var pCe = new float[k];
        var pKd = new float[k];
        var p = new float[k];
        for (int start = 0; start < labels.Length; start += batchSize)
        {
            cancel?.ThrowIfRequested();
            int n = Math.Min(batchSize, labels.Length - start);
            Score(features.AsSpan(start * d, n * d), n, ce, kd, batchStatistics);
            for (int i = 0; i < n; i++)
            {
                if (labels[start + i] < 0) continue;
                int pred = HeadCombiner.Combine(ce.AsSpan(i * k, k), kd.AsSpan(i * k, k), alpha, beta, pCe, pKd, p);
                counted++;
                if (pred == labels[start + i]) correct++;
            }
        }
        return counted == 0 ? double.NaN : (double)correct / counted;
    }
}
