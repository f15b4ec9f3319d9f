using System.Globalization;
using Microsoft.ML.DualHeadDistillation.Students;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>
/// Nothing we write may hold NaN or infinity: training stops at the step whose loss or weights stop being
/// finite, and every writer (ONNX export, ML.NET save, checkpoint) refuses non-finite weights.
/// </summary>
internal static class NonFiniteGuard
{
    /// <summary>A 0-dim bool tensor: every parameter of <paramref name="module"/> is finite (read it with the step's other figures).</summary>
    public static Tensor AllFinite(nn.Module module)
    {
        using var noGrad = no_grad();
        var flags = module.parameters().Select(p => isfinite(p).all()).ToArray();
        return flags.Length == 0 ? tensor(true) : stack(flags).all(); // on the parameters' device
    }

    /// <summary>The name of the first parameter holding a NaN or an infinity, or null when every weight is finite.</summary>
    public static string? FirstNonFiniteParameter(nn.Module module)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var parameters = module.named_parameters().ToArray();
        if (parameters.Length == 0) return null;
        // One device-to-host read for the common case (all finite); the name is looked up only after a hit.
        if (stack(parameters.Select(p => isfinite(p.parameter).all()).ToArray()).all().item<bool>()) return null;
        foreach (var (name, p) in parameters)
            if (!isfinite(p).all().item<bool>()) return name;
        return null;
    }

    /// <summary>Throws when the student has a non-finite weight; <paramref name="action"/> says what was refused ("export", "save", ...).</summary>
    public static void EnsureFinite(DualHeadStudent student, string action)
    {
        if (FirstNonFiniteParameter(student) is { } name)
            throw new InvalidOperationException(
                $"Refusing to {action}: the student's parameter '{name}' holds NaN or infinity (the training run diverged). Train again with a lower LearningRate, WeightDecay or Temperature.");
    }

    /// <summary>The diverged-training error for one step, naming the options that most often cause it.</summary>
    public static DualHeadTrainingDivergedException Diverged(string what, int step, int epoch, double ce, double? kd, double loss, Specs.TrainingSpec spec, Exception? inner = null)
        => Diverged(what, step, epoch, ce, kd, loss, spec.Objective, spec.Optimizer, inner);

    public static DualHeadTrainingDivergedException Diverged(string what, int step, int epoch, double ce, double? kd, double loss, Specs.ObjectiveSpec objective, Specs.OptimizerSpec optimizer, Exception? inner = null)
    {
        static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
        var suspects = new List<string>();
        void Suspect(string name, double value, double byDefault, bool always = false)
        {
            if (always || value != byDefault) suspects.Add($"{name} = {F(value)} (default {F(byDefault)})");
        }
        Suspect(nameof(DualHeadDistillOptions.LearningRate), optimizer.LearningRate, DualHeadDefaults.LearningRate, always: true);
        Suspect(nameof(DualHeadDistillOptions.WeightDecay), optimizer.WeightDecay, DualHeadDefaults.WeightDecay);
        Suspect(nameof(DualHeadDistillOptions.Temperature), objective.Temperature, DualHeadDefaults.Temperature);
        Suspect(nameof(DualHeadDistillOptions.WarmupSteps), optimizer.WarmupSteps, DualHeadDefaults.WarmupSteps);
        string terms = kd is not { } kdValue
            ? $"loss {F(loss)} (CE {F(ce)})"
            : $"loss {F(loss)} = {F(objective.Lambda)}*CE {F(ce)} + {F(1 - objective.Lambda)}*KD {F(kdValue)}";
        string message = $"DualHeadDistill diverged at step {step} (epoch {epoch}): {what}; {terms}. Training stopped and no model was returned. " +
            $"The options most likely at fault: {string.Join(", ", suspects)}. Lower the learning rate (and weight decay or temperature if you raised them) and train again.";
        return new DualHeadTrainingDivergedException(message, step, epoch, ce, kd ?? double.NaN, loss, inner);
    }
}
