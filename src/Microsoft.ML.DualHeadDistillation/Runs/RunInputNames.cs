using Microsoft.ML.DualHeadDistillation.Specs;
namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// How a caller names a run's inputs in messages. The keys are the spec's property paths ("Labeled",
/// "Teacher.OnnxPath"); a key without a name is written as it is. The CLI passes its flags ("--labeled",
/// "--teacher") from its option table, so an error names what the user typed.
/// </summary>
public sealed class RunInputNames(IReadOnlyDictionary<string, string>? names = null)
{
    /// <summary>The spec's own property names.</summary>
    public static RunInputNames Spec { get; } = new();

    /// <summary>The caller's name for the input at <paramref name="path"/>.</summary>
    public string this[string path] => names is not null && names.TryGetValue(path, out var name) ? name : path;
}
