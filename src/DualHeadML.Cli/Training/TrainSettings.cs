using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.DualHeadDistillation;

namespace DualHeadML.Cli.Training;

/// <summary>How the teacher is run: once per image (cached), on every training crop (same-crop), or on V cached views.</summary>
public sealed record TeacherMode(string Kind, int Views = 1)
{
    public static TeacherMode Parse(string text)
    {
        string t = text.Trim().ToLowerInvariant();
        if (t == "cached") return new("cached");
        if (t is "same-crop" or "samecrop") return new("same-crop");
        if (t.StartsWith("views:", StringComparison.Ordinal) && int.TryParse(t[6..], out int v) && v >= 1) return new("views", v);
        if (t == "views") return new("views", 4);
        throw new UsageException(ExitCodes.UsageError, $"--teacher-mode '{text}' is not one of cached, same-crop, views:V (V >= 1, e.g. views:4).");
    }

    public override string ToString() => Kind == "views" ? $"views:{Views}" : Kind;
}

/// <summary>The teacher of a run: an ONNX classifier or a CLIP zero-shot teacher, and how to prepare its input.</summary>
public sealed record TeacherSettings
{
    public string? OnnxPath { get; init; }
    public string? OnnxOutput { get; init; }
    public string? ClassesFile { get; init; }
    public bool Probabilities { get; init; }
    /// <summary>Square input side for an ONNX teacher without preprocessing metadata (shorter side resized, center crop).</summary>
    public int? InputSize { get; init; }
    /// <summary>none, imagenet or clip: mean/std for an ONNX teacher without preprocessing metadata.</summary>
    public string Normalize { get; init; } = "none";
    public string? ClipImage { get; init; }
    public string? ClipText { get; init; }
    public string? ClipVocab { get; init; }
    public string? ClipMerges { get; init; }
    public string? ClipTemplatesFile { get; init; }
    public string? ClassPromptsFile { get; init; }
    public int BatchSize { get; init; } = 64;
    /// <summary>ONNX Runtime intra-op threads of the teacher (null: one per core).</summary>
    public int? Threads { get; init; }
    /// <summary>cpu or cuda (ONNX Runtime's CUDA provider: the GPU build of the tool).</summary>
    public string Device { get; init; } = "cpu";

    [JsonIgnore] public bool IsClip => ClipImage is not null;
}

/// <summary>
/// Everything a `dualhead train` run is, as given on the command line (paths absolute). Saved as run.json in the
/// output folder; `--resume DIR` reads it back, so a resumed run is the same run.
/// </summary>
public sealed record TrainSettings
{
    public string? Labeled { get; init; }
    public string? Unlabeled { get; init; }
    public string? Validation { get; init; }
    public string? Manifest { get; init; }
    public double ValidationFraction { get; init; } = 0.2;
    public bool Strict { get; init; }
    public required string Output { get; init; }
    public required TeacherSettings Teacher { get; init; }
    /// <summary>A merged soft-label set to train from instead of running a teacher (--soft-labels).</summary>
    public string? SoftLabels { get; init; }
    /// <summary>The folder the set's row ids are relative to (--soft-labels-root; default: the common parent of the image folders, or the manifest's folder).</summary>
    public string? SoftLabelsRoot { get; init; }
    public string Student { get; init; } = "SmallCnn";
    public Dictionary<string, string> StudentSettings { get; init; } = new();
    public string? Pretrained { get; init; }
    public string Objective { get; init; } = "DualHead";
    public int ImageSize { get; init; } = 64;
    public int Channels { get; init; } = 3;
    public int? Epochs { get; init; }
    public TimeSpan? TimeBudget { get; init; }
    public string TeacherMode { get; init; } = "cached";
    public int Seed { get; init; } = 1;
    public string Device { get; init; } = "auto";
    public int LabeledBatchSize { get; init; } = DualHeadDefaults.LabeledBatchSize;
    public int UnlabeledBatchSize { get; init; } = DualHeadDefaults.UnlabeledBatchSize;
    public float LearningRate { get; init; } = DualHeadDefaults.LearningRate;
    /// <summary>Auto, Float32 or BFloat16 (DualHeadDistillOptions.Precision).</summary>
    public string Precision { get; init; } = nameof(DualHeadPrecision.Auto);
    /// <summary>Epochs without a better validation accuracy before training stops (0: off).</summary>
    public int EarlyStoppingPatience { get; init; }
    /// <summary>Image sizes of the resolution schedule, or null for none.</summary>
    public int[]? ResolutionSchedule { get; init; }
    /// <summary>Batches of Precise BatchNorm after every epoch (0: off).</summary>
    public int PreciseBatchNormBatches { get; init; } = DualHeadDefaults.PreciseBatchNormBatches;
    /// <summary>The backbone's first stages kept as loaded from --pretrained (0: none).</summary>
    public int FrozenStages { get; init; }

    /// <summary>--precision: auto, float32 (fp32) or bfloat16 (bf16).</summary>
    public static DualHeadPrecision ParsePrecision(string text) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => DualHeadPrecision.Auto,
        "float32" or "fp32" => DualHeadPrecision.Float32,
        "bfloat16" or "bf16" => DualHeadPrecision.BFloat16,
        _ => throw new UsageException(ExitCodes.UsageError, $"--precision '{text}' is not one of auto, float32, bfloat16."),
    };

    /// <summary>--resolution-schedule: comma-separated sizes ("48,48,64"), or null.</summary>
    public static int[]? ParseSizes(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var sizes = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out sizes[i]) || sizes[i] < 8)
                throw new UsageException(ExitCodes.UsageError, $"--resolution-schedule '{text}': '{parts[i]}' is not a size of at least 8 pixels; expected sizes like 48,48,64 ending at --image-size.");
        return sizes;
    }
    public bool Augment { get; init; } = true;
    public bool GradientCosine { get; init; }
    public string? PackageSource { get; init; }

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public int ResolvedEpochs => Epochs ?? DualHeadDefaults.Epochs;
}
