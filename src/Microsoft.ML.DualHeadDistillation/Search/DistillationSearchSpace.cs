using Microsoft.ML.DualHeadDistillation.Runs;
using Microsoft.ML.DualHeadDistillation.Students.Onnx;

namespace Microsoft.ML.DualHeadDistillation.Search;

/// <summary>
/// The configurations a search tries: every combination of its lists (a small space, on purpose), plus the ImageNet
/// ResNet-18 as a second student when <see cref="PretrainedResNet18"/> allows it.
/// </summary>
public sealed record DistillationSearchSpace
{
    public IReadOnlyList<DualHeadTrainingMode> Objectives { get; init; } = [DualHeadTrainingMode.DualHead, DualHeadTrainingMode.SingleHeadKd, DualHeadTrainingMode.SupervisedOnly];
    /// <summary>Student backbones; empty: the spec's.</summary>
    public IReadOnlyList<DualHeadBackbone> Backbones { get; init; } = [];
    /// <summary>Learning rates; empty: the spec's and three times it.</summary>
    public IReadOnlyList<float> LearningRates { get; init; } = [];
    /// <summary>Temperatures; empty: the spec's and twice it (SupervisedOnly has none: one configuration).</summary>
    public IReadOnlyList<float> Temperatures { get; init; } = [];
    /// <summary>
    /// With no <see cref="Backbones"/> given, RGB images of at least <see cref="PretrainedMinImageSize"/> px, and NuGet package
    /// Microsoft.ML.DnnImageFeaturizer.ResNet18 in the NuGet cache (<see cref="DnnImageFeaturizerResNet18.Locate"/>; restoring it is
    /// the one download), the search also tries its ImageNet ResNet-18 as the student, at a tenth of the learning rates (fine-tuning).
    /// </summary>
    public bool PretrainedResNet18 { get; init; } = true;
    public const int PretrainedMinImageSize = 64;
    /// <summary>Paired standard errors by which the best must beat <see cref="Reference"/> to be kept (<see cref="SearchChoice"/>; 0: the plain best).</summary>
    public double NoiseMargin { get; init; } = DualHeadDefaults.AlphaBetaNoiseMargin;

    /// <summary>The configuration without a search: the spec's objective, backbone, learning rate and temperature (SupervisedOnly: the first temperature).</summary>
    public SearchConfiguration Reference(DistillationRunSpec spec)
    {
        var all = Configurations(spec);
        float temperature = spec.Objective == DualHeadTrainingMode.SupervisedOnly ? all.FirstOrDefault(c => c.Objective == spec.Objective)?.Temperature ?? spec.Temperature : spec.Temperature;
        var own = new SearchConfiguration(spec.Objective, spec.Backbone, spec.LearningRate, temperature);
        return all.Contains(own) ? own : all[0];
    }

    /// <summary>The configurations around <paramref name="spec"/>, in a fixed order.</summary>
    public IReadOnlyList<SearchConfiguration> Configurations(DistillationRunSpec spec)
    {
        var backbones = Backbones.Count > 0 ? Backbones : [spec.Backbone];
        var rates = LearningRates.Count > 0 ? LearningRates : [spec.LearningRate, spec.LearningRate * 3];
        var temperatures = Temperatures.Count > 0 ? Temperatures : [spec.Temperature, spec.Temperature * 2];
        var students = backbones.Select(b => (Backbone: b, Pretrained: (string?)null, Scale: 1f)).ToList();
        if (PretrainedStudent(spec) is null) students.Add((DualHeadBackbone.FromName("OnnxCnn"), SearchConfiguration.ImageNetResNet18, 0.1f));
        return (from o in Objectives
                from s in students
                from lr in rates
                from t in o == DualHeadTrainingMode.SupervisedOnly ? [temperatures[0]] : temperatures
                select new SearchConfiguration(o, s.Backbone, lr * s.Scale, t, s.Pretrained)).Distinct().ToList();
    }

    /// <summary>Null when the ImageNet ResNet-18 is in the space for <paramref name="spec"/>; else why not (for the log).</summary>
    public string? PretrainedStudent(DistillationRunSpec spec)
    {
        if (!PretrainedResNet18) return "turned off";
        if (Backbones.Count > 0) return "the search's backbones were given";
        if (spec.ImageSize < PretrainedMinImageSize || spec.Channels != 3) return $"it needs RGB images of at least {PretrainedMinImageSize} px (the run uses {spec.ImageSize} px, {spec.Channels} channel{(spec.Channels == 1 ? "" : "s")})";
        try
        {
            DnnImageFeaturizerResNet18.Locate();
            return null;
        }
        catch (FileNotFoundException e)
        {
            return e.Message;
        }
    }
}
