using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>A CLIP zero-shot teacher: image and text encoders (ONNX) and the tokenizer files; its classes are the data's, put into prompts.</summary>
[DualHeadComponent]
public sealed class ClipZeroShotTeacher : TeacherDefinition
{
    public override string Name => "ClipZeroShot";
    public override string Summary => "CLIP zero-shot: the image and text encoders (ONNX), vocab.json, merges.txt; prompts from the class names";
    public override bool Accepts(TeacherSpec spec) => spec.ClipImage is not null;

    public override void Check(TeacherSpec t, RunInputNames names)
    {
        if (t.ClipImage is null) throw DistillationRunException.BadSettings($"The {Name} teacher needs {names["Teacher.ClipImage"]} image.onnx.");
        RequireFile(t.ClipImage, names["Teacher.ClipImage"]);
        if (t.ClipText is null || t.ClipVocab is null || t.ClipMerges is null)
            throw DistillationRunException.BadSettings($"A CLIP teacher needs {names["Teacher.ClipText"]} (the text encoder ONNX), {names["Teacher.ClipVocab"]} (vocab.json) and {names["Teacher.ClipMerges"]} (merges.txt) besides {names["Teacher.ClipImage"]}.");
        RequireFile(t.ClipText, names["Teacher.ClipText"]);
        RequireFile(t.ClipVocab, names["Teacher.ClipVocab"]);
        RequireFile(t.ClipMerges, names["Teacher.ClipMerges"]);
    }

    /// <summary>The prompt templates of <paramref name="t"/>: its file's lines (each with {} for the class), or the default.</summary>
    public static IReadOnlyList<string> Templates(TeacherSpec t, RunInputNames names)
    {
        var templates = t.ClipTemplatesFile is { } file ? TeacherClasses.ReadLines(file, names["Teacher.ClipTemplatesFile"]) : ClipPromptTemplates.Default;
        foreach (var template in templates)
            if (!template.Contains("{}", StringComparison.Ordinal))
                throw DistillationRunException.BadSettings($"{names["Teacher.ClipTemplatesFile"]} '{t.ClipTemplatesFile}': template '{template}' has no {{}} for the class name.");
        return templates;
    }

    public override RunTeacher Open(TeacherContext context)
    {
        var (t, names) = (context.Spec, context.Names);
        var classes = context.Classes ?? throw DistillationRunException.BadSettings($"A CLIP zero-shot teacher needs the class names: {names["Classes"]} FILE (one per line).");
        Check(t, names);
        var templates = Templates(t, names);
        var prompts = TeacherClasses.Prompts(classes, t.ClassPromptsFile, names["Teacher.ClassPromptsFile"]);
        var teacher = TeacherClasses.Opening(t, names, () => context.ML.Transforms.ZeroShotTeacher(new ZeroShotTeacherOptions
        {
            InputColumnName = "Image",
            OutputColumnName = RunTeacher.OutputColumn,
            ClassNames = classes,
            ClassPrompts = prompts,
            ImageEncoderPath = t.ClipImage!,
            TextEncoderPath = t.ClipText!,
            VocabPath = t.ClipVocab!,
            MergesPath = t.ClipMerges!,
            PromptTemplates = templates,
            BatchSize = t.BatchSize,
            CacheDirectory = context.CacheDirectory,
            EmbeddingColumnName = context.EmbeddingColumn,
            Runtime = TeacherClasses.Runtime(t),
        }).Fit(context.Data));
        return new ModelRunTeacher(teacher, $"CLIP zero-shot ({Path.GetFileName(t.ClipImage)})");
    }
}
