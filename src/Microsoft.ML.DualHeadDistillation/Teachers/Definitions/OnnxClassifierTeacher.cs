using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>An ONNX classifier (<see cref="TeacherSpec.OnnxPath"/>): one image input, [N, K] logits or probabilities; its classes from its metadata or <see cref="TeacherSpec.ClassesFile"/>.</summary>
[DualHeadComponent]
public sealed class OnnxClassifierTeacher : TeacherDefinition
{
    public override string Name => "OnnxClassifier";
    public override string Summary => "an ONNX classifier: one image input, [N, K] logits (or probabilities)";
    public override bool Accepts(TeacherSpec spec) => spec.OnnxPath is not null;

    public override void Check(TeacherSpec spec, RunInputNames names)
    {
        if (spec.OnnxPath is null) throw DistillationRunException.BadSettings($"The {Name} teacher needs {names["Teacher.OnnxPath"]} model.onnx.");
        RequireFile(spec.OnnxPath, names["Teacher.OnnxPath"]);
        if (spec.InputSize is < 1) throw DistillationRunException.BadSettings($"{names["Teacher.InputSize"]} {spec.InputSize}: expected a side in pixels, at least 1.");
        if (spec.InputSize is null && spec.Normalize is not "none")
            throw DistillationRunException.BadSettings($"{names["Teacher.Normalize"]} applies with {names["Teacher.InputSize"]} (to a teacher without preprocessing metadata); give both, or neither.");
    }

    public override RunTeacher Open(TeacherContext context)
    {
        var (t, names) = (context.Spec, context.Names);
        Check(t, names);
        IReadOnlyList<string>? classNames = t.ClassesFile is { } file ? TeacherClasses.ReadLines(file, names["Teacher.ClassesFile"]) : null;
        var teacher = TeacherClasses.Opening(t, names, () => context.ML.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
        {
            InputColumnName = "Image",
            OutputColumnName = RunTeacher.OutputColumn,
            ModelPath = t.OnnxPath!,
            ModelOutputName = t.OnnxOutput,
            ClassNames = classNames,
            Preprocessing = Preprocessing(t, names),
            BatchSize = t.BatchSize,
            CacheDirectory = context.CacheDirectory,
            Runtime = TeacherClasses.Runtime(t),
        }).Fit(context.Data));
        try
        {
            var teacherClasses = teacher.ClassNames
                ?? throw DistillationRunException.BadModel($"Teacher '{t.OnnxPath}' has no class names in its metadata (key {TeacherMetadata.ClassNamesKey}); give them with {names["Teacher.ClassesFile"]} FILE (one class name per line, in the teacher's output order).");
            if (context.Classes is not null) TeacherClasses.Check(teacherClasses, context.Classes, $"teacher '{t.OnnxPath}'", names);
            return new ModelRunTeacher(teacher, $"ONNX {Path.GetFileName(t.OnnxPath)}");
        }
        catch
        {
            teacher.Dispose();
            throw;
        }
    }

    /// <summary>The preprocessing to give an ONNX teacher: none when its metadata says (null), else from InputSize/Normalize.</summary>
    private static TeacherPreprocessing? Preprocessing(TeacherSpec t, RunInputNames names)
    {
        if (t.InputSize is not { } size) return null; // the model's metadata, else the image as it is
        var (mean, std) = t.Normalize.ToLowerInvariant() switch
        {
            "none" => ((float[]?)null, (float[]?)null),
            "imagenet" => (TeacherPreprocessing.ImageNetMean, TeacherPreprocessing.ImageNetStd),
            "clip" => (TeacherPreprocessing.ClipMean, TeacherPreprocessing.ClipStd),
            _ => throw DistillationRunException.BadSettings($"{names["Teacher.Normalize"]} '{t.Normalize}' is not one of none, imagenet, clip."),
        };
        return new TeacherPreprocessing { ResizeShorterSide = size, CropHeight = size, CropWidth = size, Interpolation = ResizeInterpolation.Bilinear, Mean = mean, Std = std };
    }
}
