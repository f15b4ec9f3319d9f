using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training.Batches;

namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>The components of a run, looked up once, with its spec.</summary>
internal sealed record ResolvedRun(TrainingSpec Spec, BackboneDefinition Backbone, TrainingObjective Objective, BatchSourceDefinition Batches);

/// <summary>Turns the user's options into the immutable specs of a run, once, when Fit starts.</summary>
internal static class RunSpecs
{
    /// <summary>The objective the options name (its heads and whether it needs a teacher are known before any data is read).</summary>
    public static TrainingObjective Objective(DualHeadDistillOptions o) => DualHeadRegistry.Objectives.Get(o.Objective.Name);

    /// <summary>The run's specs; <paramref name="images"/> when the feature column holds images (they are stored, cropped to ImageShape and augmented).</summary>
    public static ResolvedRun Resolve(DualHeadDistillOptions o, int featureSize, int classCount, bool images = false)
    {
        var objective = Objective(o);
        if (objective.Heads is not (1 or 2))
            throw new InvalidOperationException($"Objective '{objective.Name}' ({objective.GetType().FullName}) declares {objective.Heads} heads; a student has 1 or 2.");
        var backbone = DualHeadRegistry.Backbones.Get(o.Backbone.Name);
        var batches = DualHeadRegistry.BatchSources.Get(o.BatchSource);
        var backboneSpec = backbone.Resolve(new BackboneRequest(featureSize, o.EmbeddingSize, o.ImageShape, o.MlpHiddenLayers, SpecSettings.From(o.BackboneSettings), o.FeatureColumnName));
        if (backboneSpec.InputSize != featureSize)
            throw new InvalidOperationException($"Backbone '{backbone.Name}' resolved a spec reading {backboneSpec.InputSize} values; feature column '{o.FeatureColumnName}' has {featureSize}.");
        var student = new StudentSpec(backboneSpec with { Name = backbone.Name }, classCount, objective.Heads, o.InputNormalization);
        var spec = new TrainingSpec(
            student,
            objective.Resolve(o.Lambda, o.Temperature, SpecSettings.From(o.ObjectiveSettings)) with { Name = objective.Name },
            batches.Resolve(o.LabeledBatchSize, o.UnlabeledBatchSize, SpecSettings.From(o.BatchSourceSettings)) with { Source = batches.Name },
            new OptimizerSpec(o.LearningRate, o.WeightDecay, o.WarmupSteps, o.Precision),
            images ? ImageSpec(o) : null,
            FineTuning(o) is { IsNone: false } tuning ? tuning : null,
            Resolution(o, backboneSpec));
        return new ResolvedRun(spec, backbone, objective, batches);
    }

    /// <summary>The fine-tuning options as a spec: the weights file is identified by its name and the hash of its bytes.</summary>
    private static FineTuningSpec FineTuning(DualHeadDistillOptions o)
    {
        string? name = null, hash = null;
        if (o.BackboneWeights is { } path)
        {
            if (!File.Exists(path))
                throw new FileNotFoundException($"BackboneWeights file '{path}' does not exist; expected a PyTorch state dict (.pt, .pth or .safetensors).", path);
            name = Path.GetFileName(path);
            hash = WeightsHash(path);
        }
        return new FineTuningSpec(name, hash, o.BackboneLearningRateScale, o.FreezeBackboneEpochs, o.FreezeBatchNormStatistics, o.FrozenStages);
    }

    /// <summary>The resolution schedule, or null when there is none (or it is only the full height).</summary>
    private static ResolutionScheduleSpec? Resolution(DualHeadDistillOptions o, BackboneSpec backbone)
    {
        if (o.ResolutionSchedule is not { } heights) return null;
        var shape = backbone.ImageShape ?? throw new ArgumentOutOfRangeException(nameof(o.ResolutionSchedule), $"ResolutionSchedule resizes images; backbone '{backbone.Name}' reads feature vectors.");
        var schedule = ResolutionScheduleSpec.Create(heights, shape);
        return heights.All(h => h == shape.Height) ? null : schedule;
    }

    /// <summary>XxHash128 of a file's bytes, as lowercase hex.</summary>
    internal static string WeightsHash(string path)
    {
        var hash = new System.IO.Hashing.XxHash128();
        using (var stream = File.OpenRead(path)) hash.Append(stream);
        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    private static ImageInputSpec ImageSpec(DualHeadDistillOptions o)
    {
        var shape = o.ImageShape ?? throw new ArgumentOutOfRangeException(nameof(o.ImageShape), "An image feature column needs ImageShape, the [C, H, W] the student reads.");
        var crop = new InputImageShape(shape[0], shape[1], shape[2]);
        int storage = o.ImageStorageSize ?? ImageInputSpec.DefaultStorageSize(crop);
        if (storage < Math.Max(crop.Height, crop.Width))
            throw new ArgumentOutOfRangeException(nameof(o.ImageStorageSize), o.ImageStorageSize, $"ImageStorageSize {storage} is smaller than the student's input {crop.Height}x{crop.Width} (ImageShape); the stored square must hold the crop.");
        return new ImageInputSpec(crop, storage, o.Augmentation, o.TeacherView, o.TeacherView == DualHeadTeacherView.CachedViews ? o.TeacherViews : 1);
    }

    /// <summary>The components of a saved spec (resume, checkpoints).</summary>
    public static ResolvedRun Components(TrainingSpec spec) => new(spec,
        DualHeadRegistry.Backbones.Get(spec.Student.Backbone.Name),
        DualHeadRegistry.Objectives.Get(spec.Objective.Name),
        DualHeadRegistry.BatchSources.Get(spec.Batches.Source));
}
