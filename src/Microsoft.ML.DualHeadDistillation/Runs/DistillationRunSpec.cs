using Microsoft.ML.DualHeadDistillation.Specs;
using System.Text.Json.Serialization;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// Everything a distillation run on image files is: the images (class folders or a manifest), the teacher, the
/// student and its recipe, and the budget. Immutable; saved as run.json in the run's folder, so a resumed run is the
/// same run. Defaults come from <see cref="DualHeadDefaults"/>. <see cref="DistillationRun"/> carries it out.
/// </summary>
public sealed record DistillationRunSpec
{
    /// <summary>Labeled images: one subfolder per class, named by the class.</summary>
    public string? Labeled { get; init; }
    /// <summary>Unlabeled images, at any depth.</summary>
    public string? Unlabeled { get; init; }
    /// <summary>Validation images (one subfolder per class); null: carved from <see cref="Labeled"/>, stratified.</summary>
    public string? Validation { get; init; }
    /// <summary>A CSV/TSV of path,label lines instead of folders (an empty label: unlabeled).</summary>
    public string? Manifest { get; init; }
    /// <summary>Share of each class's labeled images kept for validation when <see cref="Validation"/> is not given.</summary>
    public double ValidationFraction { get; init; } = 0.2;
    /// <summary>Fail on an unreadable image instead of skipping it.</summary>
    public bool Strict { get; init; }

    /// <summary>Where the soft labels come from.</summary>
    public TeacherSpec Teacher { get; init; } = new();
    /// <summary>How the teacher sees the images.</summary>
    public TeacherViewChoice TeacherView { get; init; } = TeacherViewChoice.Cached;

    /// <summary>The student backbone (a name in <see cref="DualHeadRegistry.Backbones"/>).</summary>
    public DualHeadBackbone Backbone { get; init; } = DualHeadBackbone.SmallCnn;
    /// <summary>The backbone's settings (key=value).</summary>
    public IReadOnlyDictionary<string, string> BackboneSettings { get; init; } = new Dictionary<string, string>();
    /// <summary>Pretrained backbone weights (a PyTorch state dict).</summary>
    public string? BackboneWeights { get; init; }
    /// <summary>The training objective (a name in <see cref="DualHeadRegistry.Objectives"/>).</summary>
    public DualHeadTrainingMode Objective { get; init; } = DualHeadTrainingMode.DualHead;
    /// <summary>The student's input side in pixels.</summary>
    public int ImageSize { get; init; } = 64;
    /// <summary>1 (grey) or 3 (RGB).</summary>
    public int Channels { get; init; } = 3;
    /// <summary>Passes over the unlabeled images; null: <see cref="DualHeadDefaults.Epochs"/>, or chosen by <see cref="TimeBudget"/>.</summary>
    public int? Epochs { get; init; }
    /// <summary>Wall time of the whole run (listing and teacher included); the library chooses the epochs that fit.</summary>
    public TimeSpan? TimeBudget { get; init; }
    public int Seed { get; init; } = 1;
    public DualHeadDevice Device { get; init; } = DualHeadDevice.Auto;
    public int LabeledBatchSize { get; init; } = DualHeadDefaults.LabeledBatchSize;
    public int UnlabeledBatchSize { get; init; } = DualHeadDefaults.UnlabeledBatchSize;
    public float LearningRate { get; init; } = DualHeadDefaults.LearningRate;
    /// <summary>The distillation temperature T of the KD term.</summary>
    public float Temperature { get; init; } = DualHeadDefaults.Temperature;
    /// <summary>
    /// The folder of the teacher's soft-label cache and the sample store; null: the run's own work/ (removed when it
    /// finishes). Runs that share one (a search's trials) label and decode each image once; the caller removes it.
    /// </summary>
    public string? WorkFolder { get; init; }
    public DualHeadPrecision Precision { get; init; } = DualHeadDefaults.Precision;
    /// <summary>Epochs without a better validation accuracy before training stops (0: off).</summary>
    public int EarlyStoppingPatience { get; init; }
    /// <summary>Image sizes of the resolution schedule, or null for none.</summary>
    public int[]? ResolutionSchedule { get; init; }
    /// <summary>Batches of Precise BatchNorm after every epoch (0: off).</summary>
    public int PreciseBatchNormBatches { get; init; } = DualHeadDefaults.PreciseBatchNormBatches;
    /// <summary>The backbone's first stages kept as loaded from <see cref="BackboneWeights"/> (0: none).</summary>
    public int FrozenStages { get; init; }
    /// <summary>Train on augmented crops (RandomResizedCrop 0.5-1 + horizontal flip); false: center crops.</summary>
    public bool Augment { get; init; } = true;
    /// <summary>Measure cos(grad CE, grad KD) on the backbone once per epoch.</summary>
    public bool GradientCosine { get; init; }
    /// <summary>The caller's own values, kept with the run (the CLI keeps its --package-source here).</summary>
    public IReadOnlyDictionary<string, string>? Annotations { get; init; }

    /// <summary>The epochs of a run without a time budget.</summary>
    [JsonIgnore] public int ResolvedEpochs => Epochs ?? DualHeadDefaults.Epochs;

    // Names of run.json files written before 0.6 (TrainSettings): read, never written.
    [JsonInclude, JsonPropertyName("Student"), Obsolete("Use Backbone.")]
    private DualHeadBackbone? LegacyStudent { get => null; init { if (value is { } v) Backbone = v; } }
    [JsonInclude, JsonPropertyName("StudentSettings"), Obsolete("Use BackboneSettings.")]
    private Dictionary<string, string>? LegacyStudentSettings { get => null; init { if (value is not null) BackboneSettings = value; } }
    [JsonInclude, JsonPropertyName("Pretrained"), Obsolete("Use BackboneWeights.")]
    private string? LegacyPretrained { get => null; init { if (value is not null) BackboneWeights = value; } }
    [JsonInclude, JsonPropertyName("TeacherMode"), Obsolete("Use TeacherView.")]
    private TeacherViewChoice? LegacyTeacherMode { get => null; init { if (value is { } v) TeacherView = v; } }
    [JsonInclude, JsonPropertyName("SoftLabels"), Obsolete("Use Teacher.SoftLabels.")]
    private string? LegacySoftLabels { get => null; init => _legacySoftLabels = value; }
    [JsonInclude, JsonPropertyName("SoftLabelsRoot"), Obsolete("Use Teacher.SoftLabelsRoot.")]
    private string? LegacySoftLabelsRoot { get => null; init => _legacySoftLabelsRoot = value; }
    [JsonInclude, JsonPropertyName("PackageSource"), Obsolete("Use Annotations.")]
    private string? LegacyPackageSource { get => null; init => _legacyPackageSource = value; }
    private readonly string? _legacySoftLabels, _legacySoftLabelsRoot, _legacyPackageSource;

    /// <summary>This spec with the values of a run.json of an earlier version moved to where they are now.</summary>
    internal DistillationRunSpec Upgraded()
    {
        var spec = this;
        if (_legacySoftLabels is not null || _legacySoftLabelsRoot is not null)
            spec = spec with { Teacher = Teacher with { SoftLabels = Teacher.SoftLabels ?? _legacySoftLabels, SoftLabelsRoot = Teacher.SoftLabelsRoot ?? _legacySoftLabelsRoot } };
        if (_legacyPackageSource is not null && Annotations?.ContainsKey("PackageSource") != true)
            spec = spec with { Annotations = new Dictionary<string, string>(Annotations ?? new Dictionary<string, string>()) { ["PackageSource"] = _legacyPackageSource } };
        return spec;
    }
}
