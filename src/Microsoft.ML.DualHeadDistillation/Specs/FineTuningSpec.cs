using System.Globalization;

namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>
/// How the student starts and which parts of it learn: pretrained backbone weights (named by their file's name and
/// identified by a hash of its bytes, so a moved file is the same start and an edited one is not) and how they are
/// fine-tuned. Part of <see cref="TrainingSpec"/>: a checkpoint resumes only under the same fine-tuning.
/// </summary>
/// <param name="WeightsFile">File name of the pretrained backbone weights, or null (weights drawn from the seed).</param>
/// <param name="WeightsHash">XxHash128 of that file's bytes (hex), or null.</param>
/// <param name="BackboneLearningRateScale">The backbone's learning rate as a multiple of LearningRate (the heads keep LearningRate).</param>
/// <param name="FreezeBackboneEpochs">Epochs at the start during which the backbone's parameters do not change (only the heads learn).</param>
/// <param name="FreezeBatchNorm">True: BatchNorm layers keep their running statistics during training (they normalise as in inference); their affine weights still learn.</param>
/// <param name="FrozenStages">The backbone's first stages that never learn (no backward through them, their BatchNorm statistics kept); 0: none.</param>
public sealed record FineTuningSpec(
    [property: SpecOption(nameof(DualHeadDistillOptions.BackboneWeights))] string? WeightsFile,
    [property: SpecOption(nameof(DualHeadDistillOptions.BackboneWeights))] string? WeightsHash,
    [property: SpecOption(nameof(DualHeadDistillOptions.BackboneLearningRateScale))] float BackboneLearningRateScale,
    [property: SpecOption(nameof(DualHeadDistillOptions.FreezeBackboneEpochs))] int FreezeBackboneEpochs,
    [property: SpecOption(nameof(DualHeadDistillOptions.FreezeBatchNormStatistics))] bool FreezeBatchNorm,
    [property: SpecOption(nameof(DualHeadDistillOptions.FrozenStages))] int FrozenStages = 0)
{
    /// <summary>Weights from the seed, every parameter learning at LearningRate from the first step, BatchNorm statistics updated.</summary>
    public static FineTuningSpec None { get; } = new(null, null, 1f, 0, false);

    /// <summary>True when the run changes nothing of the default start and schedule.</summary>
    public bool IsNone => Equals(None);

    public override string ToString() => IsNone ? "from scratch" : string.Join(", ", new[]
    {
        WeightsFile is null ? "backbone from the seed" : $"backbone weights {WeightsFile} (xxh128 {WeightsHash})",
        BackboneLearningRateScale == 1f ? null : string.Create(CultureInfo.InvariantCulture, $"backbone lr x {BackboneLearningRateScale}"),
        FreezeBackboneEpochs == 0 ? null : $"backbone frozen for {FreezeBackboneEpochs} epoch{(FreezeBackboneEpochs == 1 ? "" : "s")}",
        FreezeBatchNorm ? "BatchNorm statistics frozen" : null,
        FrozenStages == 0 ? null : $"first {FrozenStages} backbone stage{(FrozenStages == 1 ? "" : "s")} frozen",
    }.Where(s => s is not null));
}
