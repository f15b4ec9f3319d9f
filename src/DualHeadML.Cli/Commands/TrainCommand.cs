using System.CommandLine;
using System.Globalization;
using DualHeadML.Cli.Console;
using DualHeadML.Cli.Training;
using Microsoft.ML.DualHeadDistillation;

namespace DualHeadML.Cli.Commands;

/// <summary>`dualhead train`: the options (names users know from Model Builder and timm) and their defaults.</summary>
public static class TrainCommand
{
    public static Command Build(Option<bool> plain)
    {
        var labeled = new Option<string?>("--labeled") { Description = "Folder of labeled images: one subfolder per class, named by the class.", HelpName = "DIR" };
        var unlabeled = new Option<string?>("--unlabeled") { Description = "Folder of unlabeled images (any depth).", HelpName = "DIR" };
        var validation = new Option<string?>("--validation") { Description = "Folder of validation images (one subfolder per class). Default: carved from --labeled, stratified.", HelpName = "DIR" };
        var manifest = new Option<string?>("--manifest") { Description = "CSV/TSV of path,label lines instead of folders (an empty label = unlabeled; paths relative to the file).", HelpName = "FILE" };
        var validationFraction = new Option<double>("--validation-fraction") { Description = "Share of each class's labeled images kept for validation when --validation is not given.", DefaultValueFactory = _ => 0.2 };
        var strict = new Option<bool>("--strict") { Description = "Fail on an unreadable image instead of skipping it (skipped files are counted in the report)." };
        var output = new Option<string?>("--output", "-o") { Description = "Folder for model.zip, student.onnx, checkpoint.zip, metrics.json, report.html/.md and the consumption project.", HelpName = "DIR" };
        var force = new Option<bool>("--force") { Description = "Replace a previous run in --output." };
        var resume = new Option<string?>("--resume") { Description = "Continue the interrupted run in DIR (its own settings and checkpoint).", HelpName = "DIR" };

        var teacherOptions = new TeacherOptionSet();
        var softLabels = new Option<string?>("--soft-labels") { Description = "Train from a merged soft-label set (dualhead label, label merge) instead of running a teacher; images are looked up by their path relative to --soft-labels-root.", HelpName = "DIR" };
        var softLabelsRoot = new Option<string?>("--soft-labels-root") { Description = "The folder the set's row ids are relative to, the one that was labeled (default: the common parent of --labeled and --unlabeled, or the manifest's folder).", HelpName = "DIR" };
        var teacherMode = new Option<string>("--teacher-mode") { Description = "cached (teacher once per image), same-crop (on every training crop, as the DHO paper), views:V (V cached augmented views).", DefaultValueFactory = _ => "cached" };

        var student = new Option<string>("--student") { Description = "The student backbone (any registered; see the list below).", DefaultValueFactory = _ => "SmallCnn" };
        var studentSetting = new Option<string[]>("--student-setting") { Description = "A backbone setting key=value (repeatable), e.g. stem=small.", HelpName = "KEY=VALUE", AllowMultipleArgumentsPerToken = false };
        var pretrained = new Option<string?>("--pretrained") { Description = "Pretrained backbone weights: a PyTorch state dict (.pt, .pth, .safetensors) with the backbone's parameter names.", HelpName = "FILE" };
        var objective = new Option<string>("--objective") { Description = "The training objective (any registered; see below).", DefaultValueFactory = _ => "DualHead" };
        var imageSize = new Option<int>("--image-size") { Description = "The student's input side in pixels (images are resized and cropped to it).", DefaultValueFactory = _ => 64 };
        var channels = new Option<int>("--channels") { Description = "1 (grey) or 3 (RGB) input channels.", DefaultValueFactory = _ => 3 };
        var epochs = new Option<int?>("--epochs") { Description = $"Passes over the unlabeled images (default {DualHeadDefaults.Epochs}, or chosen by --time-budget).", HelpName = "N" };
        var timeBudget = new Option<TimeSpan?>("--time-budget")
        {
            Description = "Wall-time budget, e.g. 90s, 10m, 1.5h, for the whole run: a few steps of the run's recipe are timed and the epochs that fit are chosen; no epoch starts that would end after it.",
            HelpName = "DURATION",
            CustomParser = r =>
            {
                string text = r.Tokens.Single().Value;
                if (Durations.TryParse(text, out var span)) return span;
                r.AddError($"--time-budget '{text}' is not a duration; use e.g. 90s, 10m, 1.5h.");
                return null;
            },
        };
        var seed = new Option<int>("--seed") { Description = "Seed of the weights, the shuffling, the augmentation and the validation split.", DefaultValueFactory = _ => 1 };
        var device = new Option<string>("--device") { Description = "auto, cpu or cuda.", DefaultValueFactory = _ => "auto" };
        device.AcceptOnlyFromAmong("auto", "cpu", "cuda");
        var labeledBatch = new Option<int>("--labeled-batch") { Description = "Labeled images per step.", DefaultValueFactory = _ => DualHeadDefaults.LabeledBatchSize };
        var unlabeledBatch = new Option<int>("--unlabeled-batch") { Description = "Unlabeled images per step.", DefaultValueFactory = _ => DualHeadDefaults.UnlabeledBatchSize };
        var learningRate = new Option<float>("--learning-rate", "--lr") { Description = "AdamW peak learning rate.", DefaultValueFactory = _ => DualHeadDefaults.LearningRate };
        var noAugment = new Option<bool>("--no-augment") { Description = "Train on center crops (default: RandomResizedCrop(0.5-1) + horizontal flip)." };
        var gradientCosine = new Option<bool>("--gradient-cosine") { Description = "Measure cos(grad CE, grad KD) on the backbone once per epoch (plotted in the report)." };
        var precision = new Option<string>("--precision") { Description = "auto (bfloat16 where the CPU does it natively, float32 elsewhere), float32 or bfloat16.", DefaultValueFactory = _ => "auto" };
        var earlyStopping = new Option<int>("--early-stopping") { Description = "Stop after N epochs without a better validation accuracy and keep the best epoch (0: off).", DefaultValueFactory = _ => 0, HelpName = "N" };
        var resolutionSchedule = new Option<string?>("--resolution-schedule") { Description = "Image sizes visited in order, each for an equal share of the steps, ending at --image-size, e.g. 48,48,48,64.", HelpName = "SIZES" };
        var preciseBn = new Option<int>("--precise-bn-batches") { Description = "Batches over which BatchNorm statistics are recomputed after every epoch (0: off).", DefaultValueFactory = _ => DualHeadDefaults.PreciseBatchNormBatches, HelpName = "N" };
        var frozenStages = new Option<int>("--frozen-stages") { Description = "Keep the student's first N stages as loaded from --pretrained (ResNet: stem, layer1..4; MobileNet: features.i): no backward through them, their outputs cached with --no-augment or views:V (0: none).", DefaultValueFactory = _ => 0, HelpName = "N" };
        var packageSource = new Option<string?>("--package-source") { Description = "A folder holding the DualHeadML package: written into the consumption project's nuget.config.", HelpName = "DIR" };

        var command = new Command("train", "Distil a teacher into a small student from folders (or a manifest) of labeled and unlabeled images.")
        {
            labeled, unlabeled, validation, manifest, validationFraction, strict, output, force, resume,
            teacherMode, softLabels, softLabelsRoot,
            student, studentSetting, pretrained, objective, imageSize, channels, epochs, timeBudget, seed, device,
            labeledBatch, unlabeledBatch, learningRate, noAugment, gradientCosine, precision, earlyStopping, resolutionSchedule, preciseBn, frozenStages, packageSource,
        };
        teacherOptions.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                string? resumeDir = parse.GetValue(resume);
                string? outputDir = parse.GetValue(output) ?? resumeDir;
                if (outputDir is null) throw new UsageException(ExitCodes.UsageError, "Give --output DIR (where the model and the report go), or --resume DIR.");
                if (parse.GetValue(epochs) is not null && parse.GetValue(timeBudget) is not null)
                    throw new UsageException(ExitCodes.UsageError, "Give --epochs or --time-budget, not both.");
                var settings = new TrainSettings
                {
                    Labeled = Full(parse.GetValue(labeled)),
                    Unlabeled = Full(parse.GetValue(unlabeled)),
                    Validation = Full(parse.GetValue(validation)),
                    Manifest = Full(parse.GetValue(manifest)),
                    ValidationFraction = parse.GetValue(validationFraction),
                    Strict = parse.GetValue(strict),
                    Output = Path.GetFullPath(outputDir),
                    Teacher = teacherOptions.Read(parse),
                    SoftLabels = Full(parse.GetValue(softLabels)),
                    SoftLabelsRoot = Full(parse.GetValue(softLabelsRoot)),
                    TeacherMode = TeacherMode.Parse(parse.GetValue(teacherMode)!).ToString(),
                    Student = parse.GetValue(student)!,
                    StudentSettings = Settings(parse.GetValue(studentSetting)),
                    Pretrained = Full(parse.GetValue(pretrained)),
                    Objective = parse.GetValue(objective)!,
                    ImageSize = parse.GetValue(imageSize),
                    Channels = parse.GetValue(channels),
                    Epochs = parse.GetValue(epochs) is int e ? Positive(e, "--epochs") : null,
                    TimeBudget = parse.GetValue(timeBudget),
                    Seed = parse.GetValue(seed),
                    Device = parse.GetValue(device)!,
                    LabeledBatchSize = Positive(parse.GetValue(labeledBatch), "--labeled-batch"),
                    UnlabeledBatchSize = Positive(parse.GetValue(unlabeledBatch), "--unlabeled-batch"),
                    LearningRate = parse.GetValue(learningRate),
                    Augment = !parse.GetValue(noAugment),
                    GradientCosine = parse.GetValue(gradientCosine),
                    Precision = TrainSettings.ParsePrecision(parse.GetValue(precision)!).ToString(),
                    EarlyStoppingPatience = parse.GetValue(earlyStopping) is var patience and >= 0 ? patience : throw new UsageException(ExitCodes.UsageError, $"--early-stopping {parse.GetValue(earlyStopping)}: expected 0 (off) or a number of epochs."),
                    ResolutionSchedule = TrainSettings.ParseSizes(parse.GetValue(resolutionSchedule)),
                    PreciseBatchNormBatches = parse.GetValue(preciseBn) is var bn and >= 0 ? bn : throw new UsageException(ExitCodes.UsageError, $"--precise-bn-batches {parse.GetValue(preciseBn)}: expected 0 (off) or a number of batches."),
                    FrozenStages = parse.GetValue(frozenStages) is var frozen and >= 0 ? frozen : throw new UsageException(ExitCodes.UsageError, $"--frozen-stages {parse.GetValue(frozenStages)}: expected 0 (none) or a number of stages."),
                    PackageSource = Full(parse.GetValue(packageSource)),
                };
                return new TrainRun(ui).Execute(settings, resumeDir is null ? null : Path.GetFullPath(resumeDir), parse.GetValue(force), cancel);
            }, cancel);
        });
        return command;
    }

    internal static string? Full(string? path) => path is null ? null : Path.GetFullPath(path);

    internal static int Positive(int value, string option) =>
        value >= 1 ? value : throw new UsageException(ExitCodes.UsageError, $"{option} must be at least 1; got {value}.");

    private static Dictionary<string, string> Settings(string[]? pairs)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in pairs ?? [])
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0) throw new UsageException(ExitCodes.UsageError, $"--student-setting '{pair}' is not KEY=VALUE.");
            settings[pair[..eq].Trim()] = pair[(eq + 1)..].Trim();
        }
        return settings;
    }
}

/// <summary>The teacher options, shared by train and label.</summary>
public sealed class TeacherOptionSet
{
    private readonly Option<string?> _teacher = new("--teacher") { Description = "The teacher: an ONNX classifier (one image input, [N, K] logits).", HelpName = "MODEL.onnx" };
    private readonly Option<string?> _classes = new("--teacher-classes") { Description = "The teacher's class names, one per line in output order (default: its metadata).", HelpName = "FILE" };
    private readonly Option<string?> _output = new("--teacher-output") { Description = "The teacher output to read (default: its only output).", HelpName = "NAME" };
    private readonly Option<bool> _probabilities = new("--teacher-probabilities") { Description = "The teacher outputs probabilities (e.g. a softmax), not logits." };
    private readonly Option<int?> _size = new("--teacher-size") { Description = "For a teacher without preprocessing metadata: resize the shorter side to N and center-crop N x N.", HelpName = "N" };
    private readonly Option<string> _normalize = new("--teacher-normalize") { Description = "Mean/std of a teacher without preprocessing metadata: none, imagenet, clip.", DefaultValueFactory = _ => "none" };
    private readonly Option<string?> _clipImage = new("--clip-image") { Description = "CLIP zero-shot teacher: the image encoder ONNX.", HelpName = "FILE" };
    private readonly Option<string?> _clipText = new("--clip-text") { Description = "CLIP: the text encoder ONNX.", HelpName = "FILE" };
    private readonly Option<string?> _clipVocab = new("--clip-vocab") { Description = "CLIP: vocab.json.", HelpName = "FILE" };
    private readonly Option<string?> _clipMerges = new("--clip-merges") { Description = "CLIP: merges.txt.", HelpName = "FILE" };
    private readonly Option<string?> _clipTemplates = new("--clip-templates") { Description = "CLIP: prompt templates, one per line with {} for the class (default: \"a photo of a {}.\").", HelpName = "FILE" };
    private readonly Option<string?> _classPrompts = new("--class-prompts") { Description = "CLIP: folder=text lines naming classes in the prompts (default: folder names with _ and - as spaces).", HelpName = "FILE" };
    private readonly Option<int> _batch = new("--teacher-batch") { Description = "Images per teacher call.", DefaultValueFactory = _ => 64 };
    private readonly Option<int?> _threads = new("--teacher-threads") { Description = "ONNX Runtime threads for the teacher (default: one per core; 1 per process when several label shards share a machine).", HelpName = "N" };
    private readonly Option<string> _device = new("--teacher-device") { Description = "cpu, or cuda (ONNX Runtime's CUDA provider; the GPU image of the tool).", DefaultValueFactory = _ => "cpu" };

    public TeacherOptionSet()
    {
        _normalize.AcceptOnlyFromAmong("none", "imagenet", "clip");
        _device.AcceptOnlyFromAmong("cpu", "cuda");
    }

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { _teacher, _classes, _output, _probabilities, _size, _normalize, _clipImage, _clipText, _clipVocab, _clipMerges, _clipTemplates, _classPrompts, _batch, _threads, _device })
            command.Add(o);
    }

    public TeacherSettings Read(ParseResult parse) => new()
    {
        OnnxPath = TrainCommand.Full(parse.GetValue(_teacher)),
        ClassesFile = TrainCommand.Full(parse.GetValue(_classes)),
        OnnxOutput = parse.GetValue(_output),
        Probabilities = parse.GetValue(_probabilities),
        InputSize = parse.GetValue(_size),
        Normalize = parse.GetValue(_normalize)!,
        ClipImage = TrainCommand.Full(parse.GetValue(_clipImage)),
        ClipText = TrainCommand.Full(parse.GetValue(_clipText)),
        ClipVocab = TrainCommand.Full(parse.GetValue(_clipVocab)),
        ClipMerges = TrainCommand.Full(parse.GetValue(_clipMerges)),
        ClipTemplatesFile = TrainCommand.Full(parse.GetValue(_clipTemplates)),
        ClassPromptsFile = TrainCommand.Full(parse.GetValue(_classPrompts)),
        BatchSize = TrainCommand.Positive(parse.GetValue(_batch), "--teacher-batch"),
        Threads = parse.GetValue(_threads) is { } n ? TrainCommand.Positive(n, "--teacher-threads") : null,
        Device = parse.GetValue(_device)!,
    };
}

/// <summary>Durations as users write them: 90s, 10m, 1.5h, 1h30m, or hh:mm:ss.</summary>
public static class Durations
{
    public static bool TryParse(string text, out TimeSpan span)
    {
        span = default;
        text = text.Trim().ToLowerInvariant();
        if (text.Contains(':')) return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out span) && span > TimeSpan.Zero;
        var match = System.Text.RegularExpressions.Regex.Match(text, @"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$");
        if (!match.Success || text.Length == 0) return false;
        double Part(int i) => match.Groups[i].Success ? double.Parse(match.Groups[i].Value, CultureInfo.InvariantCulture) : 0;
        span = TimeSpan.FromHours(Part(1)) + TimeSpan.FromMinutes(Part(2)) + TimeSpan.FromSeconds(Part(3));
        return span > TimeSpan.Zero;
    }
}
