using Microsoft.ML.DualHeadDistillation.Specs;
namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>What a run's bad input is: its settings, its data, or a model, teacher or checkpoint file.</summary>
public enum RunErrorKind
{
    /// <summary>A setting is wrong or settings contradict each other.</summary>
    Settings,
    /// <summary>The data is wrong: a missing folder, an empty class, an unreadable image under Strict, a class the teacher does not know.</summary>
    Data,
    /// <summary>A model, teacher or checkpoint file is missing, damaged or does not fit.</summary>
    Model,
}

/// <summary>
/// A run refused its input: the message names the input (as the caller names it, <see cref="RunInputNames"/>) and what
/// was expected; nothing of the run is left behind.
/// </summary>
public sealed class DistillationRunException(RunErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public RunErrorKind Kind { get; } = kind;

    internal static DistillationRunException BadSettings(string message) => new(RunErrorKind.Settings, message);
    internal static DistillationRunException BadData(string message) => new(RunErrorKind.Data, message);
    internal static DistillationRunException BadModel(string message, Exception? inner = null) => new(RunErrorKind.Model, message, inner);
}
