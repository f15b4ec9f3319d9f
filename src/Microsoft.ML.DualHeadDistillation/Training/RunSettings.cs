namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>What a run needs besides its <see cref="Specs.TrainingSpec"/>: how long, what to report, how validation scores.</summary>
internal sealed record RunSettings(int Epochs, float Alpha, float Beta, int ScoringBatchSize, bool GradientConflictDiagnostic, IProgress<DualHeadEpochReport>? Progress, int DataWorkers = 1,
    string? BackboneWeights = null, IProgress<DualHeadStepReport>? StepProgress = null, int PreciseBatchNormBatches = 0, int EarlyStoppingPatience = 0)
{
    /// <summary>The resolved precision and why (set by Fit; the spec holds the precision itself).</summary>
    public PrecisionChoice? Precision { get; init; }
    /// <summary>Whether the training steps run convolutions channels-last (in a compute copy of the student); on unless turned off.</summary>
    public bool ChannelsLast { get; init; } = true;
    /// <summary>Whether the outputs of frozen stages are cached when the rows' inputs repeat (<see cref="DualHeadDistillOptions.CacheFrozenStageOutputs"/>).</summary>
    public bool CacheFrozenStages { get; init; } = true;
    /// <summary>The time budget, counted from when Fit started; null: <see cref="Epochs"/>.</summary>
    public Recipes.TimeBudget? TimeBudget { get; init; }
    /// <summary>At most this many steps an epoch (the time-budget probe); null: every batch of the source.</summary>
    public int? MaxStepsPerEpoch { get; init; }

    public static RunSettings From(DualHeadDistillOptions o) => new(o.NumberOfEpochs, o.Alpha, o.Beta, o.ScoringBatchSize, o.GradientConflictDiagnostic, o.Progress,
        o.DataWorkers ?? Environment.ProcessorCount, o.BackboneWeights, o.StepProgress, o.PreciseBatchNormBatches, o.EarlyStoppingPatience)
    {
        ChannelsLast = o.ChannelsLast,
        CacheFrozenStages = o.CacheFrozenStageOutputs,
        TimeBudget = o.TimeBudget is { } budget ? new Recipes.TimeBudget(budget, System.Diagnostics.Stopwatch.GetTimestamp()) : null,
    };
}
