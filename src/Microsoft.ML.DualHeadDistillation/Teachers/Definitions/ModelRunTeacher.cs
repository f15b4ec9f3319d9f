namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>A teacher model run by this process (ONNX or CLIP), with the run's soft-label cache.</summary>
public sealed class ModelRunTeacher(TeacherSoftLabelsTransformer teacher, string name) : RunTeacher
{
    public override string Name => name;
    public override string Summary => $"{teacher.ClassCount} classes, {teacher.ExecutionProvider}, preprocessing {teacher.Preprocessing?.Describe() ?? "none"}";
    public override IReadOnlyList<string>? ClassNames => teacher.ClassNames;
    public override IDataView Transform(IDataView data) => teacher.Transform(data);
    public override TeacherSoftLabelsTransformer Model => teacher;
    public override long RowsDone => teacher.Statistics.RowsComputed + teacher.Statistics.CacheHits;
    public override double Seconds => teacher.Statistics.Seconds;
    public override void ResetCounts() => teacher.Statistics.Reset();

    protected override void Dispose(bool disposing)
    {
        if (disposing) teacher.Dispose();
    }
}
