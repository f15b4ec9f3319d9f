using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>Class names a teacher is checked against, and the small text files that name them.</summary>
public static class TeacherClasses
{
    /// <summary>Every class of the data must be one of the teacher's (matched case-insensitively), and the teacher must have no others.</summary>
    public static void Check(IReadOnlyList<string> teacherClasses, IReadOnlyList<string> classes, string teacher, RunInputNames? names = null)
    {
        names ??= RunInputNames.Spec;
        var known = new HashSet<string>(teacherClasses.Select(c => c.Trim()), StringComparer.OrdinalIgnoreCase);
        var unknown = classes.Where(c => !known.Contains(c.Trim())).ToArray();
        if (unknown.Length > 0)
            throw DistillationRunException.BadData($"Class{(unknown.Length == 1 ? "" : "es")} {string.Join(", ", unknown.Select(c => $"'{c}'"))} of the data {(unknown.Length == 1 ? "is" : "are")} not among the classes of {teacher} ({string.Join(", ", teacherClasses)}). Rename the class folders to the teacher's class names, or give the teacher's names with {names["Teacher.ClassesFile"]}.");
        if (teacherClasses.Count != classes.Count)
        {
            var data = new HashSet<string>(classes.Select(c => c.Trim()), StringComparer.OrdinalIgnoreCase);
            var extra = teacherClasses.Where(c => !data.Contains(c.Trim())).ToArray();
            throw DistillationRunException.BadData($"{char.ToUpperInvariant(teacher[0])}{teacher[1..]} has {teacherClasses.Count} classes, the data {classes.Count}: {string.Join(", ", extra.Select(c => $"'{c}'"))} {(extra.Length == 1 ? "has" : "have")} no folder. Every teacher class needs labeled images (a class folder).");
        }
    }

    /// <summary>The non-empty lines of <paramref name="file"/> that are not comments ('#').</summary>
    public static string[] ReadLines(string file, string setting)
    {
        if (!File.Exists(file)) throw DistillationRunException.BadSettings($"{setting} '{file}' was not found.");
        var lines = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        if (lines.Length == 0) throw DistillationRunException.BadSettings($"{setting} '{file}' is empty.");
        return lines;
    }

    /// <summary>
    /// The text each class puts into CLIP's prompts: the folder name with '_' and '-' as spaces ("golden_retriever" gives
    /// "golden retriever"), or from a file of <c>folder=text</c> lines, which may name only some classes.
    /// </summary>
    public static string[] Prompts(IReadOnlyList<string> classes, string? file, string setting = "Teacher.ClassPromptsFile")
    {
        var prompts = classes.Select(c => c.Replace('_', ' ').Replace('-', ' ').Trim()).ToArray();
        if (file is null) return prompts;
        int n = 0;
        foreach (var line in ReadLines(file, setting))
        {
            n++;
            int eq = line.IndexOf('=');
            if (eq <= 0) throw DistillationRunException.BadSettings($"{setting} '{file}' line {n}: expected 'folder=text', got '{line}'.");
            string folder = line[..eq].Trim(), text = line[(eq + 1)..].Trim();
            int i = Array.FindIndex(classes.ToArray(), c => string.Equals(c, folder, StringComparison.OrdinalIgnoreCase));
            if (i < 0) throw DistillationRunException.BadData($"{setting} '{file}' line {n}: '{folder}' is not a class of the data (classes: {string.Join(", ", classes)}).");
            if (text.Length == 0) throw DistillationRunException.BadSettings($"{setting} '{file}' line {n}: the text for '{folder}' is empty.");
            prompts[i] = text;
        }
        return prompts;
    }

    /// <summary>ONNX Runtime threads and device of a teacher spec.</summary>
    internal static TeacherRuntimeOptions Runtime(TeacherSpec t) => new()
    {
        IntraOpThreads = t.Threads,
        UseCuda = t.Device == "cuda",
        FallbackToCpu = false, // a GPU job that quietly labels on the CPU would take a hundred times longer: fail instead
    };

    /// <summary>Runs <paramref name="open"/>, turning a teacher file's errors into a run error naming the teacher.</summary>
    internal static T Opening<T>(TeacherSpec t, RunInputNames names, Func<T> open)
    {
        try
        {
            return open();
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or InvalidDataException or OnnxRuntime.OnnxRuntimeException)
        {
            throw DistillationRunException.BadModel($"The teacher cannot be used: {e.Message}", e);
        }
        catch (InvalidOperationException e) when (t.Device == "cuda")
        {
            throw DistillationRunException.BadModel($"{names["Teacher.Device"]} cuda: {e.Message.Split(" Reference Microsoft.ML.OnnxRuntime.Gpu")[0]} Run the GPU build of the tool (deploy/docker/Dockerfile.gpu: ONNX Runtime's CUDA provider needs CUDA 13 and cuDNN 9) on a machine with an NVIDIA GPU, or use {names["Teacher.Device"]} cpu.", e);
        }
    }
}
