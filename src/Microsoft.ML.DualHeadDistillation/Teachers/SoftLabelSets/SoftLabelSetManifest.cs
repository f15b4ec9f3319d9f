using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// <c>manifest.json</c> of a merged soft-label set (written by <see cref="SoftLabelSetMerger"/>): the teacher, the classes,
/// the input it labeled, every shard file with its SHA-256, and the index the trainer reads.
/// </summary>
public sealed record SoftLabelSetManifest
{
    public const string FileName = "manifest.json";
    public const string CurrentFormat = "dualhead-soft-label-set/1";

    public string Format { get; init; } = CurrentFormat;
    public required string TeacherFingerprint { get; init; }
    public required string Teacher { get; init; }
    public required IReadOnlyList<string> Classes { get; init; }
    public int EmbeddingSize { get; init; }
    /// <summary>Labeled rows (in the index).</summary>
    public required long Rows { get; init; }
    /// <summary>Rows of the input listing: <see cref="Rows"/> plus <see cref="Skipped"/>.</summary>
    public required long InputRows { get; init; }
    public required string InputFingerprint { get; init; }
    public required IReadOnlyList<SoftLabelSkippedRow> Skipped { get; init; }
    public required IReadOnlyList<ShardEntry> Shards { get; init; }
    public required IndexEntry Index { get; init; }

    /// <summary>One shard file of the set: its name, index, rows, skipped rows and SHA-256.</summary>
    public sealed record ShardEntry(string File, int Index, long Rows, int Skipped, string Sha256);
    /// <summary>The set's row-id index file: its name, size and SHA-256.</summary>
    public sealed record IndexEntry(string File, long Bytes, string Sha256);

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Reads <c>manifest.json</c> of the set in <paramref name="directory"/>.</summary>
    public static SoftLabelSetManifest Read(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Soft-label set '{directory}' has no {FileName}: merge its shards first (dualhead label merge {directory}).", path);
        SoftLabelSetManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<SoftLabelSetManifest>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not a soft-label set manifest ({e.Message}). Merge the shards again (dualhead label merge {directory}).", e);
        }
        if (manifest is null || manifest.Format != CurrentFormat)
            throw new InvalidDataException($"'{path}' has format '{manifest?.Format}'; this version reads '{CurrentFormat}'.");
        return manifest;
    }
}
