using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>What a <see cref="TeacherDefinition"/> opens a teacher with.</summary>
public sealed record TeacherContext
{
    public required MLContext ML { get; init; }
    public required TeacherSpec Spec { get; init; }
    /// <summary>The rows the teacher is fitted on: an "Image" column of encoded bytes and a "Path" column.</summary>
    public required IDataView Data { get; init; }
    /// <summary>The data's class names (a training run), or null (labeling without names).</summary>
    public IReadOnlyList<string>? Classes { get; init; }
    /// <summary>The soft-label cache's folder, or null for none.</summary>
    public string? CacheDirectory { get; init; }
    /// <summary>Also write the teacher's image embeddings to this column (CLIP), or null.</summary>
    public string? EmbeddingColumn { get; init; }
    /// <summary>The folder a soft-label set's row ids are relative to when the spec gives none.</summary>
    public string? DefaultRowIdRoot { get; init; }
    /// <summary>How errors name the spec's settings.</summary>
    public RunInputNames Names { get; init; } = RunInputNames.Spec;
}
