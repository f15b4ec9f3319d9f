using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>
/// The Dual-Head Optimization objective (Kang et al., "Simple Semi-supervised Knowledge Distillation from
/// Vision-Language Models via Dual-Head Optimization", arXiv 2505.07675, Eq. 3-5):
/// <code>
///   CE  = mean over labeled rows of -log softmax(h_CE(z))[y]
///   KD(B) = (1/|B|) * sum_rows sum_k p_t,k * (log p_t,k - log p_s,k) * T^2,
///           p_t = softmax(t / T), p_s = softmax(h_KD(z) / T)      (batchmean KL(p_t || p_s))
///   KD  = KD(labeled batch) + KD(unlabeled batch)                  (each averaged over its own rows)
///   L   = lambda * CE + (1 - lambda) * KD
/// </code>
/// The KL term is written out rather than calling kl_div, whose TorchSharp defaults (reduction mean over
/// every element, log_target) differ from PyTorch's batchmean usage.
/// </summary>
public static class DhoLoss
{
    /// <summary>The DHO formula with the given weights, printed once at the start of training.</summary>
    public static string Describe(float lambda, float temperature) => Describe(DualHeadTrainingMode.DualHead, lambda, temperature);

    /// <summary>The objective of a training mode with the given weights.</summary>
    public static string Describe(DualHeadTrainingMode mode, float lambda, float temperature)
    {
        string kd = FormattableString.Invariant($"KD = batchmean KL(softmax(t/{temperature:0.###}) || softmax(s/{temperature:0.###}))*{temperature:0.###}^2");
        return mode switch
        {
            DualHeadTrainingMode.SingleHeadKd => FormattableString.Invariant($"L = {lambda:0.###}*CE(h, labeled) + {1 - lambda:0.###}*[KD(h, labeled) + KD(h, unlabeled)], {kd} (one head)"),
            DualHeadTrainingMode.SupervisedOnly => "L = CE(h, labeled) (one head, labels only)",
            _ => FormattableString.Invariant($"L = {lambda:0.###}*CE(h_CE, labeled) + {1 - lambda:0.###}*[KD(h_KD, labeled) + KD(h_KD, unlabeled)], {kd}"),
        };
    }

    /// <summary>Cross-entropy of labeled rows only: mean over the rows given.</summary>
    public static Tensor CrossEntropy(Tensor ceLogitsLabeled, Tensor labels)
        => nn.functional.cross_entropy(ceLogitsLabeled, labels);

    /// <summary>batchmean KL(softmax(t/T) || softmax(s/T)) * T^2 over the rows given. Returns 0 for an empty batch.</summary>
    public static Tensor Distillation(Tensor studentLogits, Tensor teacherLogits, float temperature)
    {
        long rows = studentLogits.shape[0];
        if (rows == 0) return zeros(1, device: studentLogits.device).sum();
        using var scope = NewDisposeScope();
        var logPt = nn.functional.log_softmax(teacherLogits / temperature, 1);
        var logPs = nn.functional.log_softmax(studentLogits / temperature, 1);
        var kl = (logPt.exp() * (logPt - logPs)).sum() / rows;
        return (kl * (temperature * temperature)).MoveToOuterDisposeScope();
    }

    /// <summary>The three terms of one step. KD is computed on the labeled and the unlabeled batch separately and added.</summary>
    public static (Tensor Total, Tensor Ce, Tensor Kd) Compute(
        Tensor ceLogitsLabeled, Tensor labels,
        Tensor kdLogitsLabeled, Tensor teacherLabeled,
        Tensor kdLogitsUnlabeled, Tensor teacherUnlabeled,
        float lambda, float temperature)
    {
        using var scope = NewDisposeScope();
        var ce = CrossEntropy(ceLogitsLabeled, labels);
        var kd = Distillation(kdLogitsLabeled, teacherLabeled, temperature) + Distillation(kdLogitsUnlabeled, teacherUnlabeled, temperature);
        var total = lambda * ce + (1 - lambda) * kd;
        return (total.MoveToOuterDisposeScope(), ce.MoveToOuterDisposeScope(), kd.MoveToOuterDisposeScope());
    }
}
