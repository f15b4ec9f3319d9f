using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>A teacher's answers on labeled images, in a model's class order: what `dualhead evaluate --teacher` shows beside the student.</summary>
public static class TeacherScoring
{
    /// <summary>True when <paramref name="spec"/> names a teacher (a kind, or settings some registered kind accepts).</summary>
    public static bool NamesATeacher(TeacherSpec spec) => spec.Kind is not null || DualHeadRegistry.Teachers.All.Any(t => t.Accepts(spec));

    /// <summary>
    /// The teacher's logits on <paramref name="items"/>, one row per item with its slots in <paramref name="classes"/> order.
    /// A teacher without class names, or without one of <paramref name="classes"/>, is a <see cref="DistillationRunException"/>.
    /// </summary>
    public static float[][] Score(TeacherSpec spec, IReadOnlyList<ImageItem> items, IReadOnlyList<string> classes, RunInputNames? names = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        names ??= RunInputNames.Spec;
        var ml = new MLContext(seed: 1);
        var definition = TeacherDefinition.For(spec, names);
        definition.Check(spec, names);
        var view = ImageRows.Load(ml, items, classes);
        using var teacher = definition.Open(new TeacherContext { ML = ml, Spec = spec, Data = view, Classes = classes, Names = names });
        cancel.ThrowIfCancellationRequested();
        var scores = teacher.ValidationScores(view, classes, out string? why)
            ?? throw DistillationRunException.BadSettings($"The teacher ({teacher.Name}) cannot score these images: {why}.");
        cancel.ThrowIfCancellationRequested();
        return scores;
    }
}
