using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Objectives;

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
    /// <summary>The KD term's formula for a temperature.</summary>
    public static string DescribeKd(float temperature) =>
        FormattableString.Invariant($"KD = batchmean KL(softmax(t/{temperature:0.###}) || softmax(s/{temperature:0.###}))*{temperature:0.###}^2");

    /// <summary>Cross-entropy of labeled rows only: mean over the rows given.</summary>
    public static Tensor CrossEntropy(Tensor ceLogitsLabeled, Tensor labels)
        => nn.functional.cross_entropy(ceLogitsLabeled, labels);

    /// <summary>batchmean KL(softmax(t/T) || softmax(s/T)) * T^2 over the rows given. Returns 0 for an empty batch.</summary>
    public static Tensor Distillation(Tensor studentLogits, Tensor teacherLogits, float temperature)
    {
        long rows = studentLogits.shape[0];
        if (rows == 0) return zeros(1, device: studentLogits.device).sum();
        using var scope = NewDisposeScope();
        // Scalars held in locals for the whole computation: TorchSharp 0.107 turns a bare number into a finalizable Scalar and
        // passes its handle to libtorch without keeping it alive, so a garbage collection during the call can free it
        // (seen here as "toFloat ... Expected false to be true" from add). Same operations and values as `x / temperature` etc.
        using var t = temperature.ToScalar();
        using var n = rows.ToScalar();
        using var t2 = (temperature * temperature).ToScalar();
        var logPt = nn.functional.log_softmax(teacherLogits.div(t), 1);
        var logPs = nn.functional.log_softmax(studentLogits.div(t), 1);
        var kl = logPt.exp().mul(logPt.sub(logPs)).sum().div(n);
        return kl.mul(t2).MoveToOuterDisposeScope();
    }

    /// <summary>The three terms of one step. KD is computed on the labeled and the unlabeled batch separately and added.</summary>
    public static (Tensor Total, Tensor Ce, Tensor Kd) Compute(
        Tensor ceLogitsLabeled, Tensor labels,
        Tensor kdLogitsLabeled, Tensor teacherLabeled,
        Tensor kdLogitsUnlabeled, Tensor teacherUnlabeled,
        float lambda, float temperature)
    {
        using var scope = NewDisposeScope();
        var t = Terms(ceLogitsLabeled, labels, kdLogitsLabeled, teacherLabeled, kdLogitsUnlabeled, teacherUnlabeled, lambda, temperature);
        return (t.Total.MoveToOuterDisposeScope(), t.Ce!.MoveToOuterDisposeScope(), t.Kd!.MoveToOuterDisposeScope());
    }

    /// <summary>lambda*CE + (1-lambda)*[KD(labeled) + KD(unlabeled)] for a step (<see cref="DualHeadObjective"/>, <see cref="SingleHeadKdObjective"/>).</summary>
    public static ObjectiveLoss CeAndKd(ObjectiveInputs inputs, Specs.ObjectiveSpec spec)
    {
        var teacher = inputs.RequireTeacher(spec.Name);
        int nl = inputs.LabeledRows;
        long nu = inputs.UnlabeledRows;
        return Terms(inputs.CeLogitsLabeled, inputs.Labels, inputs.KdLogits.narrow(0, 0, nl), teacher.narrow(0, 0, nl),
            inputs.KdLogits.narrow(0, nl, nu), teacher.narrow(0, nl, nu), spec.Lambda, spec.Temperature);
    }

    /// <summary>The one place the DHO formula is written: every term, weighted and not.</summary>
    private static ObjectiveLoss Terms(Tensor ceLogitsLabeled, Tensor labels, Tensor kdLogitsLabeled, Tensor teacherLabeled,
        Tensor kdLogitsUnlabeled, Tensor teacherUnlabeled, float lambda, float temperature)
    {
        using var one = 1.ToScalar(); // held for the calls (see Distillation)
        using var l = lambda.ToScalar();
        using var rest = (1 - lambda).ToScalar();
        var ce = CrossEntropy(ceLogitsLabeled, labels);
        var kd = Distillation(kdLogitsLabeled, teacherLabeled, temperature).add(Distillation(kdLogitsUnlabeled, teacherUnlabeled, temperature), one);
        var weightedCe = ce.mul(l);
        var weightedKd = kd.mul(rest);
        return new ObjectiveLoss(weightedCe.add(weightedKd, one), ce, kd, weightedCe, weightedKd);
    }
}
