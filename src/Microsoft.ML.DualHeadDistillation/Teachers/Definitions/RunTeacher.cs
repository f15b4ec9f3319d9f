using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// A run's open teacher: gives the training rows its logits column (<see cref="OutputColumn"/>), and, where it can,
/// the model the trainer runs on crops and its predictions on validation images. Made by a <see cref="TeacherDefinition"/>.
/// </summary>
public abstract class RunTeacher : IDisposable
{
    /// <summary>The column a run teacher writes its logits to.</summary>
    public const string OutputColumn = "TeacherLogits";

    /// <summary>For the report: "ONNX teacher.onnx", "CLIP zero-shot (...)", "soft-label set /data/labels".</summary>
    public abstract string Name { get; }
    /// <summary>One line: classes, device, preprocessing or rows.</summary>
    public abstract string Summary { get; }
    /// <summary>The teacher's class names in output order, when it has them.</summary>
    public abstract IReadOnlyList<string>? ClassNames { get; }
    /// <summary>The rows with the teacher's logits column.</summary>
    public abstract IDataView Transform(IDataView data);
    /// <summary>The teacher model, when the trainer may run it on crops (same-crop, views); null for a soft-label set.</summary>
    public virtual TeacherSoftLabelsTransformer? Model => null;
    /// <summary>Rows the teacher has answered so far (computed, cached or looked up).</summary>
    public abstract long RowsDone { get; }
    /// <summary>Seconds spent in the teacher.</summary>
    public abstract double Seconds { get; }
    /// <summary>Starts <see cref="RowsDone"/> and <see cref="Seconds"/> again.</summary>
    public virtual void ResetCounts() { }

    /// <summary>The teacher's validation predictions in <paramref name="classes"/> order, or null (and why) when it cannot give them.</summary>
    public virtual float[][]? ValidationScores(IDataView validation, IReadOnlyList<string> classes, out string? why)
    {
        why = ClassNames is null ? "the teacher has no class names" : null;
        return ClassNames is { } names ? Reorder(Transform(validation), names, classes) : null;
    }

    /// <summary>The logits column of <paramref name="scored"/>, its slots moved from <paramref name="names"/> order to <paramref name="classes"/> order.</summary>
    protected static float[][] Reorder(IDataView scored, IReadOnlyList<string> names, IReadOnlyList<string> classes)
    {
        var slot = classes.Select(c => names.ToList().FindIndex(n => string.Equals(n.Trim(), c.Trim(), StringComparison.OrdinalIgnoreCase))).ToArray();
        return scored.GetColumn<float[]>(OutputColumn).Select(v => slot.Select(i => v[i]).ToArray()).ToArray();
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }
}
