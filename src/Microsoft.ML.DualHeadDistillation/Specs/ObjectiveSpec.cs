namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>The training objective: its registered name, lambda, temperature and its own settings.</summary>
/// <param name="Name">The registered objective (<see cref="DualHeadRegistry.Objectives"/>).</param>
/// <param name="Lambda">lambda in L = lambda*CE + (1-lambda)*KD.</param>
/// <param name="Temperature">The distillation temperature T.</param>
/// <param name="Settings">The objective's own settings.</param>
public sealed record ObjectiveSpec(
    [property: SpecOption(nameof(DualHeadDistillOptions.Objective))] string Name,
    [property: SpecOption(nameof(DualHeadDistillOptions.Lambda))] float Lambda,
    [property: SpecOption(nameof(DualHeadDistillOptions.Temperature))] float Temperature,
    [property: SpecOption(nameof(DualHeadDistillOptions.ObjectiveSettings))] SpecSettings Settings)
{
    public override string ToString() => FormattableString.Invariant($"{Name}(lambda {Lambda}, T {Temperature}{(Settings.Count > 0 ? $", {Settings}" : "")})");
}

/// <summary>Where each step's rows come from: the registered batch source and the batch sizes.</summary>
public sealed record BatchSpec(
    [property: SpecOption(nameof(DualHeadDistillOptions.BatchSource))] string Source,
    [property: SpecOption(nameof(DualHeadDistillOptions.LabeledBatchSize))] int LabeledBatchSize,
    [property: SpecOption(nameof(DualHeadDistillOptions.UnlabeledBatchSize))] int UnlabeledBatchSize,
    [property: SpecOption(nameof(DualHeadDistillOptions.BatchSourceSettings))] SpecSettings Settings)
{
    public override string ToString() => $"{Source}({LabeledBatchSize} labeled + {UnlabeledBatchSize} unlabeled{(Settings.Count > 0 ? $", {Settings}" : "")})";
}

/// <summary>AdamW and its schedule (linear warm-up, cosine decay to zero over the run).</summary>
public sealed record OptimizerSpec(
    [property: SpecOption(nameof(DualHeadDistillOptions.LearningRate))] float LearningRate,
    [property: SpecOption(nameof(DualHeadDistillOptions.WeightDecay))] float WeightDecay,
    [property: SpecOption(nameof(DualHeadDistillOptions.WarmupSteps))] int WarmupSteps,
    [property: SpecOption(nameof(DualHeadDistillOptions.Precision))] DualHeadPrecision Precision = DualHeadPrecision.Float32)
{
    public override string ToString() => FormattableString.Invariant($"AdamW(lr {LearningRate}, weight decay {WeightDecay}, warm-up {WarmupSteps}, cosine)") +
        (Precision == DualHeadPrecision.BFloat16 ? "; bfloat16 compute over float32 master weights" : "");
}

/// <summary>
/// What a training run is, fixed once when Fit starts: the student, the objective, the batches and the
/// optimizer. The loop and the checkpoint see only this (never the options), and resuming requires an equal
/// spec: <see cref="TrainingSpec.FirstDifference"/> names the field that differs. The number of epochs is not
/// part of it (a resumed run may train further). <see cref="Images"/> is set when the feature column holds images.
/// </summary>
public sealed record TrainingSpec(StudentSpec Student, ObjectiveSpec Objective, BatchSpec Batches, OptimizerSpec Optimizer, ImageInputSpec? Images = null,
    [property: SpecOption("BackboneWeights, BackboneLearningRateScale, FreezeBackboneEpochs, FreezeBatchNormStatistics, FrozenStages")] FineTuningSpec? FineTuning = null,
    [property: SpecOption(nameof(DualHeadDistillOptions.ResolutionSchedule))] ResolutionScheduleSpec? Resolution = null)
{
    /// <summary>The fine-tuning of the run (<see cref="FineTuningSpec.None"/> when not set).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public FineTuningSpec Tuning => FineTuning ?? FineTuningSpec.None;

    /// <summary>The first field that differs from <paramref name="other"/>, or null when the specs are equal.</summary>
    internal SpecDifference? FirstDifference(TrainingSpec other) => SpecDifference.First(this, other);
}
