using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Objectives;

/// <summary>
/// "SingleHeadKd": one head trained on lambda*CE + (1-lambda)*KD (the DHO paper's "CE+KD (logit)" baseline,
/// Hinton et al.'s distillation with a labeled term).
/// </summary>
[DualHeadComponent]
public sealed class SingleHeadKdObjective : TrainingObjective
{
    public override string Name => "SingleHeadKd";
    public override string Summary => "One head trained on lambda*CE + (1-lambda)*KD (the paper's CE+KD baseline).";
    public override string Reference => "Hinton et al., Distilling the Knowledge in a Neural Network, arXiv 1503.02531; DHO paper baseline";
    public override int Heads => 1;

    public override string Describe(ObjectiveSpec spec) =>
        FormattableString.Invariant($"L = {spec.Lambda:0.###}*CE(h, labeled) + {1 - spec.Lambda:0.###}*[KD(h, labeled) + KD(h, unlabeled)], {DhoLoss.DescribeKd(spec.Temperature)} (one head)");

    public override ObjectiveLoss Compute(ObjectiveInputs inputs, ObjectiveSpec spec) => DhoLoss.CeAndKd(inputs, spec);
}
