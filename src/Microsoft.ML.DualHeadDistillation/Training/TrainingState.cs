namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>Where a training run stands: what resuming it needs besides the weights.</summary>
/// <param name="Seed">The seed the run was started with (sampler and initialisation).</param>
/// <param name="CompletedEpochs">Epochs finished.</param>
/// <param name="CompletedSteps">Optimizer steps taken (the learning-rate schedule's position).</param>
/// <param name="OptimizerState">AdamW's state (TorchSharp's optimizer state format), or null when not kept.</param>
/// <param name="StepsIntoEpoch">Steps already taken in epoch CompletedEpochs + 1 (a run stopped mid-epoch); 0 at an epoch boundary.</param>
/// <param name="EpochSums">With StepsIntoEpoch: the sums of CE, KD and total loss over those steps, so the resumed epoch reports the same means.</param>
internal sealed record TrainingState(int Seed, int CompletedEpochs, int CompletedSteps, byte[]? OptimizerState, int StepsIntoEpoch = 0, double[]? EpochSums = null)
{
    /// <summary>The epochs the run's schedules span (a TimeBudget's choice is kept by a resumed run); 0 when not recorded.</summary>
    public int PlannedEpochs { get; init; }
}
