using System.Diagnostics;
using DualHeadML.Cli.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Cli.Teachers;

/// <summary>
/// Where a `dualhead train` run's teacher logits come from: a teacher model run here (ONNX or CLIP, with the local cache),
/// or a merged soft-label set a labeling job wrote (--soft-labels). The run sees the same column either way.
/// </summary>
public interface ITrainTeacher : IDisposable
{
    /// <summary>For the report: "ONNX teacher.onnx", "CLIP zero-shot (...)", "soft-label set /data/labels".</summary>
    string Name { get; }
    /// <summary>One line: classes, device, preprocessing or rows.</summary>
    string Summary { get; }
    IReadOnlyList<string>? ClassNames { get; }
    /// <summary>The training rows with the teacher's logits column (<see cref="TeacherFactory.OutputColumn"/>).</summary>
    IDataView Transform(IDataView data);
    /// <summary>The teacher model, when the trainer may run it on crops (same-crop, views); null for a soft-label set.</summary>
    TeacherSoftLabelsTransformer? Model { get; }
    /// <summary>Rows the teacher has answered so far (computed, cached or looked up).</summary>
    long RowsDone { get; }
    /// <summary>Seconds spent in the teacher.</summary>
    double Seconds { get; }
    void ResetCounts();
    /// <summary>The teacher's validation predictions in <paramref name="classes"/> order, or null when it cannot give them.</summary>
    float[][]? ValidationScores(IDataView validation, IReadOnlyList<string> classes, out string? why);
}

/// <summary>A teacher model run by this process.</summary>
public sealed class ModelTrainTeacher(TeacherSoftLabelsTransformer teacher, TeacherSettings settings) : ITrainTeacher
{
    public string Name => settings.IsClip ? $"CLIP zero-shot ({Path.GetFileName(settings.ClipImage)})" : $"ONNX {Path.GetFileName(settings.OnnxPath)}";
    public string Summary => $"{teacher.ClassCount} classes, {teacher.ExecutionProvider}, preprocessing {teacher.Preprocessing?.Describe() ?? "none"}";
    public IReadOnlyList<string>? ClassNames => teacher.ClassNames;
    public IDataView Transform(IDataView data) => teacher.Transform(data);
    public TeacherSoftLabelsTransformer? Model => teacher;
    public long RowsDone => teacher.Statistics.RowsComputed + teacher.Statistics.CacheHits;
    public double Seconds => teacher.Statistics.Seconds;
    public void ResetCounts() => teacher.Statistics.Reset();

    public float[][]? ValidationScores(IDataView validation, IReadOnlyList<string> classes, out string? why)
    {
        why = teacher.ClassNames is null ? "the teacher has no class names" : null;
        return teacher.ClassNames is { } names ? Reorder(teacher.Transform(validation), names, classes) : null;
    }

    internal static float[][] Reorder(IDataView scored, IReadOnlyList<string> names, IReadOnlyList<string> classes)
    {
        var slot = classes.Select(c => names.ToList().FindIndex(n => string.Equals(n.Trim(), c.Trim(), StringComparison.OrdinalIgnoreCase))).ToArray();
        return scored.GetColumn<float[]>(TeacherFactory.OutputColumn).Select(v => slot.Select(i => v[i]).ToArray()).ToArray();
    }

    public void Dispose() => teacher.Dispose();
}

/// <summary>A merged soft-label set (dualhead label, then label merge), looked up by each image's path relative to the labeled root.</summary>
public sealed class SetTrainTeacher : ITrainTeacher
{
    private readonly SoftLabelSetTransformer _set;
    private readonly string _root;
    private readonly Stopwatch _time = new();

    private SetTrainTeacher(SoftLabelSetTransformer set, string root)
    {
        _set = set;
        _root = root;
    }

    /// <summary>Opens the set in <paramref name="directory"/> (its checksums checked), for rows whose "Path" is under <paramref name="root"/>.</summary>
    public static SetTrainTeacher Open(MLContext ml, string directory, string root, IDataView data)
    {
        try
        {
            var set = ml.Transforms.SoftLabelsFromSet(new SoftLabelSetOptions
            {
                SetDirectory = directory, RowIdColumnName = "Path", OutputColumnName = TeacherFactory.OutputColumn, RowIdRoot = root,
            }).Fit(data);
            return new SetTrainTeacher(set, root);
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or DirectoryNotFoundException)
        {
            throw new UsageException(ExitCodes.DataError, $"--soft-labels: {e.Message}");
        }
    }

    public string Name => $"soft-label set {_set.Set.Directory}";
    public string Summary => $"{_set.ClassCount} classes, {_set.Set.Count} rows, teacher {_set.Set.TeacherFingerprint[..12]}…, row ids relative to {_root}";
    public IReadOnlyList<string>? ClassNames => _set.ClassNames;
    public TeacherSoftLabelsTransformer? Model => null;
    public long RowsDone => _set.Lookups;
    public double Seconds => _time.Elapsed.TotalSeconds;
    public void ResetCounts() { }

    public IDataView Transform(IDataView data) => _set.Transform(data);

    public float[][]? ValidationScores(IDataView validation, IReadOnlyList<string> classes, out string? why)
    {
        why = null;
        var paths = validation.GetColumn<string>("Path").ToArray();
        var buffer = new float[_set.ClassCount];
        int missing = paths.Count(p => !_set.Set.TryGet(SoftLabelRowIds.FromPath(_root, p), buffer));
        if (missing > 0)
        {
            why = $"{missing} of {paths.Length} validation images are not in the soft-label set";
            return null;
        }
        _time.Start();
        try
        {
            return ModelTrainTeacher.Reorder(_set.Transform(validation), _set.ClassNames, classes);
        }
        finally
        {
            _time.Stop();
        }
    }

    public void Dispose() => _set.Dispose();
}
