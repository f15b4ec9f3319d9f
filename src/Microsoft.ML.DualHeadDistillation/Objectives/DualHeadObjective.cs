using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Objectives;

/// <summary>
/// "DualHead" (DHO, Kang et al., arXiv 2505.07675, Eq. 3-5): h_CE learns from the labels, h_KD from the teacher,
/// on a shared backbone: L = lambda*CE(h_CE, labeled) + (1-lambda)*[KD(h_KD, labeled) + KD(h_KD, unlabeled)].
/// At inference p = alpha*softmax(h_CE) + (1-alpha)*softmax(h_KD/beta).
/// </summary>
[DualHeadComponent]
public sealed class DualHeadObjective : TrainingObjective
{
    public override string Name => "DualHead";
    public override string Summary => "DHO: h_CE on the labels, h_KD on the teacher, a shared backbone (the default).";
    public override string Reference => "Kang et al., Simple Semi-supervised Knowledge Distillation from Vision-Language Models via Dual-Head Optimization, arXiv 2505.07675, Eq. 3-5";
    public override int Heads => 2;

    public override string Describe(ObjectiveSpec spec) =>
        FormattableString.Invariant($"L = {spec.Lambda:0.###}*CE(h_CE, labeled) + {1 - spec.Lambda:0.###}*[KD(h_KD, labeled) + KD(h_KD, unlabeled)], {DhoLoss.DescribeKd(spec.Temperature)}");

    public override ObjectiveLoss Compute(ObjectiveInputs inputs, ObjectiveSpec spec) => DhoLoss.CeAndKd(inputs, spec);
}
