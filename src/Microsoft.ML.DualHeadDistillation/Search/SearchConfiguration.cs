using Microsoft.ML.DualHeadDistillation.Runs;
using Microsoft.ML.DualHeadDistillation.Students.Onnx;

namespace Microsoft.ML.DualHeadDistillation.Search;

/// <summary>
/// One point of the search space: what a trial changes in the run's spec. <paramref name="Pretrained"/> names a
/// pretrained student that replaces the spec's backbone settings and weights (<see cref="ImageNetResNet18"/>), or is null.
/// </summary>
public sealed record SearchConfiguration(DualHeadTrainingMode Objective, DualHeadBackbone Backbone, float LearningRate, float Temperature, string? Pretrained = null)
{
    /// <summary>The ImageNet ResNet-18 of NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18, as an OnnxCnn student (<see cref="DnnImageFeaturizerResNet18"/>).</summary>
    public const string ImageNetResNet18 = "ImageNet ResNet-18";

    /// <summary>"DualHead, SmallCnn, lr 0.001, T 2" ("DualHead, ImageNet ResNet-18, ..." for a pretrained student).</summary>
    public override string ToString() => FormattableString.Invariant($"{Objective}, {(Pretrained ?? Backbone.ToString())}, lr {LearningRate:0.#####}, T {Temperature:0.##}");

    /// <summary>The spec of a trial of this configuration.</summary>
    public DistillationRunSpec Apply(DistillationRunSpec spec)
    {
        var applied = spec with { Objective = Objective, Backbone = Backbone, LearningRate = LearningRate, Temperature = Temperature };
        return Pretrained switch
        {
            null => applied,
            ImageNetResNet18 => applied with { Backbone = DualHeadBackbone.FromName("OnnxCnn"), BackboneSettings = DnnImageFeaturizerResNet18.BackboneSettings(), BackboneWeights = null, FrozenStages = 0 },
            _ => throw new InvalidDataException($"Unknown pretrained student '{Pretrained}' in a search configuration; known: {ImageNetResNet18}."),
        };
    }
}
