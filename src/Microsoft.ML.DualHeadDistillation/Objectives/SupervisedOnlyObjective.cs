using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Objectives;

/// <summary>"SupervisedOnly": one head, CE on the labeled rows only, for the same number of steps; no teacher needed.</summary>
[DualHeadComponent]
public sealed class SupervisedOnlyObjective : TrainingObjective
{
    public override string Name => "SupervisedOnly";
    public override string Summary => "One head, CE on the labeled rows only, same steps; no teacher.";
    public override int Heads => 1;
    public override bool UsesTeacher => false;

    public override string Describe(ObjectiveSpec spec) => "L = CE(h, labeled) (one head, labels only)";

    public override ObjectiveLoss Compute(ObjectiveInputs inputs, ObjectiveSpec spec)
    {
        var ce = DhoLoss.CrossEntropy(inputs.CeLogitsLabeled, inputs.Labels);
        return new ObjectiveLoss(ce, ce, null);
    }
}
