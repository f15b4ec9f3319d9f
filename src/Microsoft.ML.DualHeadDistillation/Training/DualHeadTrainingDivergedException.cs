namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// Training produced a non-finite loss or non-finite weights. Thrown at the step where it happened; no model,
/// checkpoint or export is produced from such weights. The message names the step, the loss terms and the
/// options most likely at fault (with their values and defaults).
/// </summary>
public sealed class DualHeadTrainingDivergedException : InvalidOperationException
{
    internal DualHeadTrainingDivergedException(string message, int step, int epoch, double ceLoss, double kdLoss, double loss, Exception? inner = null)
        : base(message, inner)
    {
        Step = step;
        Epoch = epoch;
        CeLoss = ceLoss;
        KdLoss = kdLoss;
        Loss = loss;
    }

    /// <summary>The 1-based optimisation step (counted over the whole run) at which training diverged.</summary>
    public int Step { get; }
    /// <summary>The 1-based epoch of that step.</summary>
    public int Epoch { get; }
    /// <summary>The step's cross-entropy term (NaN when not computed).</summary>
    public double CeLoss { get; }
    /// <summary>The step's distillation term (NaN when not computed or in SupervisedOnly mode).</summary>
    public double KdLoss { get; }
    /// <summary>The step's total loss.</summary>
    public double Loss { get; }
}
