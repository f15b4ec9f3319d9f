namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// One labeling job's shard (or the whole input in one process): which images, which teacher, where the soft-label set
/// goes. Row ids are the images' paths relative to <see cref="Input"/> (or to the manifest's folder).
/// </summary>
public sealed record LabelJobSpec
{
    /// <summary>The folder of images to label (any depth).</summary>
    public string? Input { get; init; }
    /// <summary>A CSV/TSV of path[,label] lines instead of a folder.</summary>
    public string? Manifest { get; init; }
    /// <summary>Class names, one per line (a CLIP teacher needs them; an ONNX teacher has its own).</summary>
    public string? ClassesFile { get; init; }
    /// <summary>The soft-label set's folder.</summary>
    public required string Output { get; init; }
    /// <summary>Fail on an unreadable image instead of skipping it.</summary>
    public bool Strict { get; init; }
    /// <summary>The shard this process labels (<see cref="SoftLabelShard.Whole"/>: everything, then the set is merged).</summary>
    public SoftLabelShard Shard { get; init; } = SoftLabelShard.Whole;
    /// <summary>True for one shard of a job (no local teacher cache, no merge, a finished shard is not labeled again).</summary>
    public bool Sharded { get; init; }
    /// <summary>CLIP: also keep each image's L2-normalised embedding (float16).</summary>
    public bool Embeddings { get; init; }
    /// <summary>Rows per Parquet row group (null: about 4 MB of values).</summary>
    public int? RowGroup { get; init; }
    public TeacherSpec Teacher { get; init; } = new();
}

/// <summary>What a labeling job's shard did.</summary>
/// <param name="ShardFile">The shard's Parquet file.</param>
/// <param name="Rows">Images labeled.</param>
/// <param name="Skipped">Images skipped as unreadable.</param>
/// <param name="Computed">Rows the teacher computed.</param>
/// <param name="CacheHits">Rows read from the teacher cache.</param>
/// <param name="Seconds">Seconds spent labeling.</param>
/// <param name="AlreadyDone">True when the shard was already labeled by the same teacher from the same input (nothing done).</param>
/// <param name="TsvFile">soft-labels.tsv of a single-process job, else null.</param>
/// <param name="Merged">The merged set of a single-process job, else null.</param>
public sealed record LabelJobResult(string ShardFile, int Rows, int Skipped, long Computed, long CacheHits, double Seconds, bool AlreadyDone, string? TsvFile, SoftLabelSetManifest? Merged);
