namespace Microsoft.ML.DualHeadDistillation.Training.Loop;

/// <summary>
/// Where a run starts: epoch 1, or after a checkpoint's last finished epoch (its batch order replayed, AdamW's state
/// loaded), possibly some steps into that epoch (those steps replayed without training, their loss sums kept).
/// </summary>
internal sealed record ResumePoint(int FirstEpoch, int Step, int StepsIntoEpoch, double[]? EpochSums)
{
    public static readonly ResumePoint Start = new(1, 0, 0, null);

    /// <summary>The point <paramref name="resume"/> left off at; the optimizer and batch source are brought there.</summary>
    public static ResumePoint From(DualHeadCheckpoint? resume, int stepsPerEpoch, TrainingOptimizer optimizer, Batches.BatchSource source, Action<string> log)
    {
        if (resume is null) return Start;
        if (resume.State.OptimizerState is { } saved) optimizer.Load(saved);
        int firstEpoch = resume.CompletedEpochs + 1;
        for (int e = 1; e < firstEpoch; e++) source.SkipEpoch(); // replay the batch order of the finished epochs
        log($"DualHeadDistill: resuming after epoch {resume.CompletedEpochs}{(resume.StepsIntoEpoch > 0 ? $" and {resume.StepsIntoEpoch} steps of epoch {resume.CompletedEpochs + 1}" : "")} (step {resume.CompletedSteps}){(resume.HasOptimizerState ? "" : "; the checkpoint has no optimizer state, AdamW starts afresh")}");
        int skip = resume.State.StepsIntoEpoch;
        if (skip > 0 && (skip > stepsPerEpoch || resume.CompletedSteps != (long)resume.CompletedEpochs * stepsPerEpoch + skip))
            throw new ArgumentException($"The checkpoint stopped {skip} steps into epoch {firstEpoch} at step {resume.CompletedSteps}, which does not fit this run's {stepsPerEpoch} steps per epoch: resume on the same data with the same batch sizes.", "resumeFrom");
        return new ResumePoint(firstEpoch, resume.CompletedSteps, skip, skip > 0 && resume.State.EpochSums is [_, _, _] sums ? sums : null);
    }
}
