using Microsoft.ML.DualHeadDistillation.Teachers;
using DualHeadML.Cli.Commands;
using static DualHeadML.Cli.Options.ValueParsers;

namespace DualHeadML.Cli.Options;

/// <summary>`dualhead label`'s settings, one entry each (flag, LabelJobSpec setting, help, mapping); the shard options are ShardSelection's.</summary>
public static class LabelOptions
{
    private static SpecOption<LabelJobSpec, T> O<T>(string flag, string path, string help, Func<LabelJobSpec, T, LabelJobSpec> set, string? helpName = null) =>
        new(flag, path, help, set, helpName: helpName);

    public static SpecOptionTable<LabelJobSpec> Create() =>
    [
        O<string?>("--input", nameof(LabelJobSpec.Input), "Folder of images to label (any depth); row ids are paths relative to it.", (s, v) => s with { Input = Full(v) }, "DIR"),
        O<string?>("--manifest", nameof(LabelJobSpec.Manifest), "CSV/TSV of path[,label] lines instead of a folder; row ids are paths relative to its folder.", (s, v) => s with { Manifest = Full(v) }, "FILE"),
        O<string?>("--classes", "Classes", "Class names, one per line (required for a CLIP teacher; an ONNX teacher has its own).", (s, v) => s with { ClassesFile = Full(v) }, "FILE"),
        O<bool>("--strict", nameof(LabelJobSpec.Strict), "Fail on an unreadable image instead of skipping it.", (s, v) => s with { Strict = v }),
        O<bool>("--embeddings", nameof(LabelJobSpec.Embeddings), "CLIP teacher: also keep each image's L2-normalised embedding (float16), so class names or prompts can change without running the image encoder again.", (s, v) => s with { Embeddings = v }),
        O<int?>("--row-group", nameof(LabelJobSpec.RowGroup), "Rows per Parquet row group (default: about 4 MB of values, at most 8,192 rows).", (s, v) => s with { RowGroup = v is { } g ? TrainCommandChecks.Positive(g, "--row-group") : null }, "N"),
    ];
}
