using DualHeadML.Cli.Training;
using Microsoft.ML;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Cli.Teachers;

/// <summary>Builds and fits the teacher transform a command line asks for, checking it against the folder's classes.</summary>
public static class TeacherFactory
{
    public const string OutputColumn = "TeacherLogits";

    /// <summary>
    /// The teacher fitted on <paramref name="data"/> (its "Image" column). With <paramref name="classes"/> (a training run), an
    /// ONNX teacher's classes must be those classes; a CLIP teacher's classes are those classes.
    /// </summary>
    public static TeacherSoftLabelsTransformer Create(MLContext ml, TeacherSettings t, IReadOnlyList<string>? classes, string? cacheDirectory, IDataView data, string? embeddingColumn = null)
    {
        if (t.IsClip == (t.OnnxPath is not null))
            throw new UsageException(ExitCodes.UsageError, "Give one teacher: --teacher model.onnx (an ONNX classifier), or --clip-image image.onnx with --clip-text, --clip-vocab and --clip-merges (a CLIP zero-shot teacher).");
        try
        {
            return t.IsClip ? Clip(ml, t, classes, cacheDirectory, data, embeddingColumn) : Onnx(ml, t, classes, cacheDirectory, data);
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or InvalidDataException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
        {
            throw new UsageException(ExitCodes.ModelError, $"The teacher cannot be used: {e.Message}");
        }
        catch (InvalidOperationException e) when (t.Device == "cuda")
        {
            throw new UsageException(ExitCodes.ModelError, $"--teacher-device cuda: {e.Message.Split(" Reference Microsoft.ML.OnnxRuntime.Gpu")[0]} Run the GPU build of the tool (deploy/docker/Dockerfile.gpu: ONNX Runtime's CUDA provider needs CUDA 13 and cuDNN 9) on a machine with an NVIDIA GPU, or use --teacher-device cpu.");
        }
    }

    /// <summary>Checks the teacher's files exist before anything else is done (listing a large folder takes time).</summary>
    public static void CheckFiles(TeacherSettings t)
    {
        if (t.IsClip == (t.OnnxPath is not null))
            throw new UsageException(ExitCodes.UsageError, "Give one teacher: --teacher model.onnx (an ONNX classifier), or --clip-image image.onnx with --clip-text, --clip-vocab and --clip-merges (a CLIP zero-shot teacher).");
        foreach (var (path, option) in new[] { (t.OnnxPath, "--teacher"), (t.ClipImage, "--clip-image"), (t.ClipText, "--clip-text"), (t.ClipVocab, "--clip-vocab"), (t.ClipMerges, "--clip-merges") })
            if (path is not null) RequireFile(path, option);
    }

    private static TeacherSoftLabelsTransformer Onnx(MLContext ml, TeacherSettings t, IReadOnlyList<string>? classes, string? cacheDirectory, IDataView data)
    {
        RequireFile(t.OnnxPath!, "--teacher");
        IReadOnlyList<string>? names = t.ClassesFile is { } file ? ReadLines(file, "--teacher-classes") : null;
        var estimator = ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
        {
            InputColumnName = "Image",
            OutputColumnName = OutputColumn,
            ModelPath = t.OnnxPath!,
            ModelOutputName = t.OnnxOutput,
            ClassNames = names,
            Preprocessing = Preprocessing(t, t.OnnxPath!),
            BatchSize = t.BatchSize,
            CacheDirectory = cacheDirectory,
            Runtime = Runtime(t),
        });
        var teacher = estimator.Fit(data);
        try
        {
            var teacherClasses = teacher.ClassNames
                ?? throw new UsageException(ExitCodes.ModelError, $"Teacher '{t.OnnxPath}' has no class names in its metadata (key {TeacherMetadata.ClassNamesKey}); give them with --teacher-classes FILE (one class name per line, in the teacher's output order).");
            if (classes is not null) CheckClasses(teacherClasses, classes, $"teacher '{t.OnnxPath}'");
            return teacher;
        }
        catch
        {
            teacher.Dispose();
            throw;
        }
    }

    /// <summary>ONNX Runtime threads and device from --teacher-threads and --teacher-device.</summary>
    private static TeacherRuntimeOptions Runtime(TeacherSettings t) => new()
    {
        IntraOpThreads = t.Threads,
        UseCuda = t.Device == "cuda",
        FallbackToCpu = false, // a GPU job that quietly labels on the CPU would take a hundred times longer: fail instead
    };

    /// <summary>The preprocessing to give an ONNX teacher: none when its metadata says (null), else from --teacher-size/--teacher-normalize.</summary>
    private static TeacherPreprocessing? Preprocessing(TeacherSettings t, string path)
    {
        if (t.InputSize is not { } size) return null; // the model's metadata, else the image as it is
        var (mean, std) = t.Normalize.ToLowerInvariant() switch
        {
            "none" => ((float[]?)null, (float[]?)null),
            "imagenet" => (TeacherPreprocessing.ImageNetMean, TeacherPreprocessing.ImageNetStd),
            "clip" => (TeacherPreprocessing.ClipMean, TeacherPreprocessing.ClipStd),
            _ => throw new UsageException(ExitCodes.UsageError, $"--teacher-normalize '{t.Normalize}' is not one of none, imagenet, clip."),
        };
        return new TeacherPreprocessing { ResizeShorterSide = size, CropHeight = size, CropWidth = size, Interpolation = ResizeInterpolation.Bilinear, Mean = mean, Std = std };
    }

    private static TeacherSoftLabelsTransformer Clip(MLContext ml, TeacherSettings t, IReadOnlyList<string>? classes, string? cacheDirectory, IDataView data, string? embeddingColumn)
    {
        if (classes is null) throw new UsageException(ExitCodes.UsageError, "A CLIP zero-shot teacher needs the class names: --classes FILE (one per line).");
        RequireFile(t.ClipImage!, "--clip-image");
        if (t.ClipText is null || t.ClipVocab is null || t.ClipMerges is null)
            throw new UsageException(ExitCodes.UsageError, "A CLIP teacher needs --clip-text (the text encoder ONNX), --clip-vocab (vocab.json) and --clip-merges (merges.txt) besides --clip-image.");
        RequireFile(t.ClipText, "--clip-text");
        RequireFile(t.ClipVocab, "--clip-vocab");
        RequireFile(t.ClipMerges, "--clip-merges");
        var templates = t.ClipTemplatesFile is { } file ? ReadLines(file, "--clip-templates") : ClipPromptTemplates.Default;
        foreach (var template in templates)
            if (!template.Contains("{}", StringComparison.Ordinal))
                throw new UsageException(ExitCodes.UsageError, $"--clip-templates '{t.ClipTemplatesFile}': template '{template}' has no {{}} for the class name.");
        var prompts = ClassPrompts(classes, t.ClassPromptsFile);
        return ml.Transforms.ZeroShotTeacher(new ZeroShotTeacherOptions
        {
            InputColumnName = "Image",
            OutputColumnName = OutputColumn,
            ClassNames = classes,
            ClassPrompts = prompts,
            ImageEncoderPath = t.ClipImage!,
            TextEncoderPath = t.ClipText,
            VocabPath = t.ClipVocab,
            MergesPath = t.ClipMerges,
            PromptTemplates = templates,
            BatchSize = t.BatchSize,
            CacheDirectory = cacheDirectory,
            EmbeddingColumnName = embeddingColumn,
            Runtime = Runtime(t),
        }).Fit(data);
    }

    /// <summary>
    /// The text each class puts into the prompts: the folder name with '_' and '-' as spaces ("golden_retriever" gives
    /// "golden retriever"), or from a file of <c>folder=text</c> lines, which may name only some classes.
    /// </summary>
    public static string[] ClassPrompts(IReadOnlyList<string> classes, string? file)
    {
        var prompts = classes.Select(c => c.Replace('_', ' ').Replace('-', ' ').Trim()).ToArray();
        if (file is null) return prompts;
        int n = 0;
        foreach (var line in ReadLines(file, "--class-prompts"))
        {
            n++;
            int eq = line.IndexOf('=');
            if (eq <= 0) throw new UsageException(ExitCodes.UsageError, $"--class-prompts '{file}' line {n}: expected 'folder=text', got '{line}'.");
            string folder = line[..eq].Trim(), text = line[(eq + 1)..].Trim();
            int i = Array.FindIndex(classes.ToArray(), c => string.Equals(c, folder, StringComparison.OrdinalIgnoreCase));
            if (i < 0) throw new UsageException(ExitCodes.DataError, $"--class-prompts '{file}' line {n}: '{folder}' is not a class of the data (classes: {string.Join(", ", classes)}).");
            if (text.Length == 0) throw new UsageException(ExitCodes.UsageError, $"--class-prompts '{file}' line {n}: the text for '{folder}' is empty.");
            prompts[i] = text;
        }
        return prompts;
    }

    /// <summary>Every class of the data must be one of the teacher's (matched case-insensitively), and the teacher must have no others.</summary>
    public static void CheckClasses(IReadOnlyList<string> teacherClasses, IReadOnlyList<string> classes, string teacher)
    {
        var known = new HashSet<string>(teacherClasses.Select(c => c.Trim()), StringComparer.OrdinalIgnoreCase);
        var unknown = classes.Where(c => !known.Contains(c.Trim())).ToArray();
        if (unknown.Length > 0)
            throw new UsageException(ExitCodes.DataError, $"Class{(unknown.Length == 1 ? "" : "es")} {string.Join(", ", unknown.Select(c => $"'{c}'"))} of the data {(unknown.Length == 1 ? "is" : "are")} not among the classes of {teacher} ({string.Join(", ", teacherClasses)}). Rename the class folders to the teacher's class names, or give the teacher's names with --teacher-classes.");
        if (teacherClasses.Count != classes.Count)
        {
            var data = new HashSet<string>(classes.Select(c => c.Trim()), StringComparer.OrdinalIgnoreCase);
            var extra = teacherClasses.Where(c => !data.Contains(c.Trim())).ToArray();
            throw new UsageException(ExitCodes.DataError, $"{char.ToUpperInvariant(teacher[0])}{teacher[1..]} has {teacherClasses.Count} classes, the data {classes.Count}: {string.Join(", ", extra.Select(c => $"'{c}'"))} {(extra.Length == 1 ? "has" : "have")} no folder. Every teacher class needs labeled images (a class folder).");
        }
    }

    public static string[] ReadLines(string file, string option)
    {
        if (!File.Exists(file)) throw new UsageException(ExitCodes.UsageError, $"{option} '{file}' was not found.");
        var lines = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        if (lines.Length == 0) throw new UsageException(ExitCodes.UsageError, $"{option} '{file}' is empty.");
        return lines;
    }

    private static void RequireFile(string path, string option)
    {
        if (!File.Exists(path)) throw new UsageException(ExitCodes.ModelError, $"{option} '{path}' was not found.");
    }
}
