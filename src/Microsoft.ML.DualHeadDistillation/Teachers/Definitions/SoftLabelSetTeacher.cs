using Microsoft.ML.Data;
using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// A merged soft-label set (<see cref="TeacherSpec.SoftLabels"/>: a labeling job's output), looked up by each image's
/// path relative to <see cref="TeacherSpec.SoftLabelsRoot"/>. One label per image, so the teacher runs once per image.
/// </summary>
[DualHeadComponent]
public sealed class SoftLabelSetTeacher : TeacherDefinition
{
    public override string Name => "SoftLabelSet";
    public override string Summary => "a merged soft-label set (dualhead label, label merge): the logits of a teacher run elsewhere";
    public override bool Accepts(TeacherSpec spec) => spec.SoftLabels is not null;
    public override bool RunsOnCrops => false;

    public override void Check(TeacherSpec t, RunInputNames names)
    {
        if (t.SoftLabels is null) throw DistillationRunException.BadSettings($"The {Name} teacher needs {names["Teacher.SoftLabels"]} DIR.");
        if (t.Probabilities)
            throw DistillationRunException.BadSettings($"{names["Teacher.Probabilities"]} does not apply to {names["Teacher.SoftLabels"]}: a set holds the teacher's logits as labeled.");
        if (!Directory.Exists(t.SoftLabels)) throw DistillationRunException.BadData($"{names["Teacher.SoftLabels"]} '{t.SoftLabels}' was not found.");
    }

    public override RunTeacher Open(TeacherContext context)
    {
        var (t, names) = (context.Spec, context.Names);
        Check(t, names);
        string root = t.SoftLabelsRoot ?? context.DefaultRowIdRoot
            ?? throw DistillationRunException.BadSettings($"{names["Teacher.SoftLabelsRoot"]}: give the folder the set's row ids are relative to.");
        SoftLabelSetTransformer set;
        try
        {
            set = context.ML.Transforms.SoftLabelsFromSet(new SoftLabelSetOptions
            {
                SetDirectory = t.SoftLabels!,
                RowIdColumnName = "Path",
                OutputColumnName = RunTeacher.OutputColumn,
                RowIdRoot = root,
            }).Fit(context.Data);
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or DirectoryNotFoundException)
        {
            throw DistillationRunException.BadData($"{names["Teacher.SoftLabels"]}: {e.Message}");
        }
        var teacher = new SetRunTeacher(set, root);
        try
        {
            if (context.Classes is not null) TeacherClasses.Check(teacher.ClassNames, context.Classes, $"soft-label set '{t.SoftLabels}'", names);
            return teacher;
        }
        catch
        {
            teacher.Dispose();
            throw;
        }
    }

    private sealed class SetRunTeacher(SoftLabelSetTransformer set, string root) : RunTeacher
    {
        private readonly Stopwatch _time = new();

        public override string Name => $"soft-label set {set.Set.Directory}";
        public override string Summary => $"{set.ClassCount} classes, {set.Set.Count} rows, teacher {set.Set.TeacherFingerprint[..12]}…, row ids relative to {root}";
        public override IReadOnlyList<string> ClassNames => set.ClassNames;
        public override long RowsDone => set.Lookups;
        public override double Seconds => _time.Elapsed.TotalSeconds;
        public override IDataView Transform(IDataView data) => set.Transform(data);

        public override float[][]? ValidationScores(IDataView validation, IReadOnlyList<string> classes, out string? why)
        {
            why = null;
            var paths = validation.GetColumn<string>("Path").ToArray();
            var buffer = new float[set.ClassCount];
            int missing = paths.Count(p => !set.Set.TryGet(SoftLabelRowIds.FromPath(root, p), buffer));
            if (missing > 0)
            {
                why = $"{missing} of {paths.Length} validation images are not in the soft-label set";
                return null;
            }
            _time.Start();
            try
            {
                return Reorder(set.Transform(validation), set.ClassNames, classes);
            }
            finally
            {
                _time.Stop();
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) set.Dispose();
        }
    }
}
