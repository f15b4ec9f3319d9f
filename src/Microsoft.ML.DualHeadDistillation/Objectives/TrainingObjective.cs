using Microsoft.ML.DualHeadDistillation.Specs;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Objectives;

/// <summary>
/// One training step's logits and targets, as an objective sees them. The batch holds
/// <see cref="LabeledRows"/> labeled rows first, then the unlabeled ones.
/// </summary>
public sealed class ObjectiveInputs
{
    internal ObjectiveInputs(Tensor ceLogitsLabeled, Tensor kdLogits, Tensor labels, Tensor? teacher, int labeledRows)
    {
        CeLogitsLabeled = ceLogitsLabeled;
        KdLogits = kdLogits;
        Labels = labels;
        Teacher = teacher;
        LabeledRows = labeledRows;
    }

    /// <summary>h_CE's logits on the labeled rows [labeled, K].</summary>
    public Tensor CeLogitsLabeled { get; }
    /// <summary>h_KD's logits on every row [rows, K] (one head: that head's logits).</summary>
    public Tensor KdLogits { get; }
    /// <summary>The labeled rows' classes [labeled] (int64, 0-based).</summary>
    public Tensor Labels { get; }
    /// <summary>Teacher logits on every row [rows, K] in class order; null when the objective does not use the teacher.</summary>
    public Tensor? Teacher { get; }
    public int LabeledRows { get; }
    /// <summary>Rows of the batch (labeled + unlabeled).</summary>
    public long Rows => KdLogits.shape[0];
    public long UnlabeledRows => Rows - LabeledRows;

    /// <summary>Teacher logits, or an error naming the objective that needs them.</summary>
    public Tensor RequireTeacher(string objective) => Teacher ?? throw new InvalidOperationException($"Objective '{objective}' needs teacher logits but the batch has none (its UsesTeacher is false?).");
}

/// <summary>One step's loss. <see cref="Total"/> is minimised; the terms are reported per epoch (null when the objective has none).</summary>
/// <param name="Total">The scalar loss L.</param>
/// <param name="Ce">The CE term (unweighted), for reports.</param>
/// <param name="Kd">The KD term (unweighted), for reports.</param>
/// <param name="WeightedCe">lambda*CE as it enters L (for the gradient-conflict diagnostic).</param>
/// <param name="WeightedKd">(1-lambda)*KD as it enters L.</param>
public sealed record ObjectiveLoss(Tensor Total, Tensor? Ce, Tensor? Kd, Tensor? WeightedCe = null, Tensor? WeightedKd = null);

/// <summary>
/// A training objective (torchdistill's loss registry is the model): how many heads the student has, whether
/// it needs the teacher and the unlabeled rows, its formula (<see cref="Describe"/>, printed once at the start of
/// training) and the loss of a step. Objectives are stateless; one instance is registered per name in
/// <see cref="DualHeadRegistry.Objectives"/> and named by <see cref="DualHeadDistillOptions.Objective"/>.
/// </summary>
public abstract class TrainingObjective : IDualHeadComponent
{
    /// <inheritdoc/>
    public abstract string Name { get; }
    /// <inheritdoc/>
    public abstract string Summary { get; }
    /// <summary>Where the objective comes from (paper, equation), for documentation.</summary>
    public virtual string Reference => "";
    /// <summary>Heads of the student: 2 (h_CE and h_KD, combined at inference with alpha and beta) or 1.</summary>
    public abstract int Heads { get; }
    /// <summary>True when the loss reads teacher logits (the teacher column is then required).</summary>
    public virtual bool UsesTeacher => true;
    /// <summary>True when batches carry unlabeled rows; false gives labeled rows only (same steps per epoch).</summary>
    public virtual bool UsesUnlabeledRows => UsesTeacher;

    /// <summary>The spec from the options; override to check or fold settings.</summary>
    public virtual ObjectiveSpec Resolve(float lambda, float temperature, SpecSettings settings) => new(Name, lambda, temperature, settings);

    /// <summary>The effective formula with the spec's weights.</summary>
    public abstract string Describe(ObjectiveSpec spec);

    /// <summary>The loss of one step. Tensors made here are disposed by the loop's scope.</summary>
    public abstract ObjectiveLoss Compute(ObjectiveInputs inputs, ObjectiveSpec spec);

    public override string ToString() => $"{Name}: {Summary}";
}
