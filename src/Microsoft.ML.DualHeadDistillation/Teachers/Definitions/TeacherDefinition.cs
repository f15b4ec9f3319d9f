using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// A kind of teacher, registered in <see cref="DualHeadRegistry.Teachers"/> (as backbones and objectives are): it says
/// which <see cref="TeacherSpec"/> it takes, checks its files before a run lists a large folder, and opens the
/// teacher. Built in: <see cref="OnnxClassifierTeacher"/>, <see cref="ClipZeroShotTeacher"/>, <see cref="SoftLabelSetTeacher"/>.
/// Yours is one class marked <see cref="DualHeadComponentAttribute"/> (or registered by hand).
/// </summary>
public abstract class TeacherDefinition : IDualHeadComponent
{
    public abstract string Name { get; }
    public abstract string Summary { get; }

    /// <summary>True when <paramref name="spec"/> (without a <see cref="TeacherSpec.Kind"/>) is meant for this kind.</summary>
    public virtual bool Accepts(TeacherSpec spec) => false;

    /// <summary>True when the teacher can run on training crops (same-crop, views), not only once per image.</summary>
    public virtual bool RunsOnCrops => true;

    /// <summary>Refuses settings that do not fit this kind, and missing files, before anything else is done.</summary>
    public virtual void Check(TeacherSpec spec, RunInputNames names) { }

    /// <summary>The open teacher; errors are <see cref="DistillationRunException"/>s naming the setting.</summary>
    public abstract RunTeacher Open(TeacherContext context);

    /// <summary>The registered kind <paramref name="spec"/> names, or the one that accepts it; an error naming the choices otherwise.</summary>
    public static TeacherDefinition For(TeacherSpec spec, RunInputNames? names = null)
    {
        names ??= RunInputNames.Spec;
        if (spec.Kind is { } kind)
            return DualHeadRegistry.Teachers.TryGet(kind, out var named) ? named
                : throw DistillationRunException.BadSettings($"{names["Teacher.Kind"]} '{kind}' is not a registered teacher kind; choose one of: {string.Join(", ", DualHeadRegistry.Teachers.Names)}.");
        var accepting = DualHeadRegistry.Teachers.All.Where(t => t.Accepts(spec)).ToArray();
        return accepting.Length switch
        {
            1 => accepting[0],
            0 => throw DistillationRunException.BadSettings($"Give one teacher: {names["Teacher.OnnxPath"]} model.onnx (an ONNX classifier), {names["Teacher.ClipImage"]} image.onnx with {names["Teacher.ClipText"]}, {names["Teacher.ClipVocab"]} and {names["Teacher.ClipMerges"]} (a CLIP zero-shot teacher), or {names["Teacher.SoftLabels"]} DIR (a labeling job's merged set)."),
            _ => throw DistillationRunException.BadSettings($"Give one source of soft labels, not {string.Join(" and ", accepting.Select(a => a.Name))}: {names["Teacher.SoftLabels"]} DIR (a labeling job's merged set), {names["Teacher.OnnxPath"]} (an ONNX classifier) or {names["Teacher.ClipImage"]} (CLIP)."),
        };
    }

    /// <summary>A file a setting names must exist.</summary>
    protected static void RequireFile(string? path, string setting)
    {
        if (path is not null && !File.Exists(path)) throw DistillationRunException.BadModel($"{setting} '{path}' was not found.");
    }
}
