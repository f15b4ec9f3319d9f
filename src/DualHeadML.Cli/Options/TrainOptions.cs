using System.CommandLine.Parsing;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Runs;
using static DualHeadML.Cli.Options.ValueParsers;

namespace DualHeadML.Cli.Options;

/// <summary>
/// `dualhead train`'s settings, one entry each: flag, the DistillationRunSpec setting, help, the default (from a default
/// spec, so from DualHeadDefaults) and the mapping. System.CommandLine's options, the spec and the names in error
/// messages all come from this table; a new option is one entry.
/// </summary>
public static class TrainOptions
{
    private static readonly DistillationRunSpec Default = new();

    private static SpecOption<DistillationRunSpec, T> O<T>(string flag, string path, string help, Func<DistillationRunSpec, T, DistillationRunSpec> set,
        Func<T>? defaultValue = null, string? helpName = null, Func<ArgumentResult, T?>? parse = null, string[]? aliases = null, string[]? only = null) =>
        new(flag, path is "" ? null : path, help, set, defaultValue, helpName, parse, aliases, only);

    public static SpecOptionTable<DistillationRunSpec> Create() =>
    [
        O<string?>("--labeled", nameof(DistillationRunSpec.Labeled), "Folder of labeled images: one subfolder per class, named by the class.", (s, v) => s with { Labeled = Full(v) }, helpName: "DIR"),
        O<string?>("--unlabeled", nameof(DistillationRunSpec.Unlabeled), "Folder of unlabeled images (any depth).", (s, v) => s with { Unlabeled = Full(v) }, helpName: "DIR"),
        O<string?>("--validation", nameof(DistillationRunSpec.Validation), "Folder of validation images (one subfolder per class). Default: carved from --labeled, stratified.", (s, v) => s with { Validation = Full(v) }, helpName: "DIR"),
        O<string?>("--manifest", nameof(DistillationRunSpec.Manifest), "CSV/TSV of path,label lines instead of folders (an empty label = unlabeled; paths relative to the file).", (s, v) => s with { Manifest = Full(v) }, helpName: "FILE"),
        O("--validation-fraction", nameof(DistillationRunSpec.ValidationFraction), "Share of each class's labeled images kept for validation when --validation is not given.", (s, v) => s with { ValidationFraction = v }, () => Default.ValidationFraction),
        O<bool>("--strict", nameof(DistillationRunSpec.Strict), "Fail on an unreadable image instead of skipping it (skipped files are counted in the report).", (s, v) => s with { Strict = v }),
        O<string?>("--soft-labels", "Teacher.SoftLabels", "Train from a merged soft-label set (dualhead label, label merge) instead of running a teacher; images are looked up by their path relative to --soft-labels-root.", (s, v) => s with { Teacher = s.Teacher with { SoftLabels = Full(v) } }, helpName: "DIR"),
        O<string?>("--soft-labels-root", "Teacher.SoftLabelsRoot", "The folder the set's row ids are relative to, the one that was labeled (default: the common parent of --labeled and --unlabeled, or the manifest's folder).", (s, v) => s with { Teacher = s.Teacher with { SoftLabelsRoot = Full(v) } }, helpName: "DIR"),
        O("--teacher-view", nameof(DistillationRunSpec.TeacherView), "cached (teacher once per image), same-crop (on every training crop, as the DHO paper), views:V (V cached augmented views).", (s, v) => s with { TeacherView = v }, () => Default.TeacherView, "MODE", TeacherView, aliases: ["--teacher-mode"]),
        O("--backbone", nameof(DistillationRunSpec.Backbone), "The student backbone (any registered; see the list below).", (s, v) => s with { Backbone = v }, () => Default.Backbone.Name, "NAME", aliases: ["--student"]),
        O("--backbone-setting", nameof(DistillationRunSpec.BackboneSettings), "A backbone setting key=value (repeatable), e.g. stem=small.", (s, v) => s with { BackboneSettings = v }, null, "KEY=VALUE", Settings, aliases: ["--student-setting"]),
        O<string?>("--pretrained", nameof(DistillationRunSpec.BackboneWeights), "Pretrained backbone weights: a PyTorch state dict (.pt, .pth, .safetensors) with the backbone's parameter names.", (s, v) => s with { BackboneWeights = Full(v) }, helpName: "FILE"),
        O("--objective", nameof(DistillationRunSpec.Objective), "The training objective (any registered; see below).", (s, v) => s with { Objective = v }, () => Default.Objective.Name, "NAME"),
        O("--image-size", nameof(DistillationRunSpec.ImageSize), "The student's input side in pixels (images are resized and cropped to it).", (s, v) => s with { ImageSize = v }, () => Default.ImageSize),
        O("--channels", nameof(DistillationRunSpec.Channels), "1 (grey) or 3 (RGB) input channels.", (s, v) => s with { Channels = v }, () => Default.Channels),
        O<int?>("--epochs", nameof(DistillationRunSpec.Epochs), $"Passes over the unlabeled images (default {DualHeadDefaults.Epochs}, or chosen by --time-budget).", (s, v) => s with { Epochs = v }, helpName: "N"),
        O("--time-budget", nameof(DistillationRunSpec.TimeBudget), "Wall-time budget, e.g. 90s, 10m, 1.5h, for the whole run: a few steps of the run's recipe are timed and the epochs that fit are chosen; no epoch starts that would end after it.", (s, v) => s with { TimeBudget = v }, null, "DURATION", Duration),
        O("--seed", nameof(DistillationRunSpec.Seed), "Seed of the weights, the shuffling, the augmentation and the validation split.", (s, v) => s with { Seed = v }, () => Default.Seed),
        O("--device", nameof(DistillationRunSpec.Device), "auto, cpu or cuda.", (s, v) => s with { Device = v }, () => Default.Device),
        O("--labeled-batch", nameof(DistillationRunSpec.LabeledBatchSize), "Labeled images per step.", (s, v) => s with { LabeledBatchSize = v }, () => Default.LabeledBatchSize),
        O("--unlabeled-batch", nameof(DistillationRunSpec.UnlabeledBatchSize), "Unlabeled images per step.", (s, v) => s with { UnlabeledBatchSize = v }, () => Default.UnlabeledBatchSize),
        O("--learning-rate", nameof(DistillationRunSpec.LearningRate), "AdamW peak learning rate.", (s, v) => s with { LearningRate = v }, () => Default.LearningRate, aliases: ["--lr"]),
        O("--temperature", nameof(DistillationRunSpec.Temperature), "The distillation temperature T of the KD term.", (s, v) => s with { Temperature = v }, () => Default.Temperature),
        O<bool>("--no-augment", nameof(DistillationRunSpec.Augment), "Train on center crops (default: RandomResizedCrop(0.5-1) + horizontal flip).", (s, v) => s with { Augment = !v }),
        O<bool>("--gradient-cosine", nameof(DistillationRunSpec.GradientCosine), "Measure cos(grad CE, grad KD) on the backbone once per epoch (plotted in the report).", (s, v) => s with { GradientCosine = v }),
        O("--precision", nameof(DistillationRunSpec.Precision), "auto (bfloat16 where the CPU does it natively, float32 elsewhere), float32 or bfloat16.", (s, v) => s with { Precision = v }, () => Default.Precision, "auto|float32|bfloat16", Precision),
        O("--early-stopping", nameof(DistillationRunSpec.EarlyStoppingPatience), "Stop after N epochs without a better validation accuracy and keep the best epoch (0: off).", (s, v) => s with { EarlyStoppingPatience = v }, () => Default.EarlyStoppingPatience, "N"),
        O("--resolution-schedule", nameof(DistillationRunSpec.ResolutionSchedule), "Image sizes visited in order, each for an equal share of the steps, ending at --image-size, e.g. 48,48,48,64.", (s, v) => s with { ResolutionSchedule = v }, null, "SIZES", Sizes),
        O("--precise-bn-batches", nameof(DistillationRunSpec.PreciseBatchNormBatches), "Batches over which BatchNorm statistics are recomputed after every epoch (0: off).", (s, v) => s with { PreciseBatchNormBatches = v }, () => Default.PreciseBatchNormBatches, "N"),
        O("--frozen-stages", nameof(DistillationRunSpec.FrozenStages), "Keep the student's first N stages as loaded from --pretrained (ResNet: stem, layer1..4; MobileNet: features.i): no backward through them, their outputs cached with --no-augment or views:V (0: none).", (s, v) => s with { FrozenStages = v }, () => Default.FrozenStages, "N"),
        O<string?>("--package-source", "", "A folder holding the DualHeadML package: written into the consumption project's nuget.config.", (s, v) => v is null ? s : s with { Annotations = new Dictionary<string, string>(s.Annotations ?? new Dictionary<string, string>()) { [PackageSource] = Full(v)! } }, helpName: "DIR"),
    ];

    /// <summary>The annotation the run keeps --package-source in.</summary>
    public const string PackageSource = "PackageSource";
}
