using System.Diagnostics;
using System.Globalization;

namespace Microsoft.ML.DualHeadDistillation.Training.Recipes;

/// <summary>
/// <see cref="DualHeadDistillOptions.TimeBudget"/>: the number of epochs that fits in the budget, chosen before training
/// from a probe, a few steps of the run's own recipe (precision, channels-last, frozen stages, resolution schedule,
/// data workers, teacher on crops) on a throwaway student, so the run itself is exactly the run with that
/// NumberOfEpochs (same seed, same weights). The plan counts what each epoch costs besides its steps (Precise BatchNorm,
/// validation: forward passes at about a third of a training step per row) and that epochs after the first read the
/// frozen stages' outputs from their cache instead of computing them. At the end of every epoch the run stops early
/// (keeping the epochs so far) when the next epoch, at the pace measured so far, would end after the budget.
/// </summary>
internal sealed record TimeBudget(TimeSpan Budget, long StartedAt)
{
    /// <summary>Steps of the probe; the first is not timed (libtorch builds its kernels then).</summary>
    public const int ProbeSteps = 8;

    /// <summary>Share of the time left that the plan fills (the rest absorbs the pace moving between runs).</summary>
    public const double Fill = 0.92;

    /// <summary>A forward pass over a row costs about this share of a training step's (forward and backward) per row.</summary>
    public const double ForwardShare = 1.0 / 3;

    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(StartedAt);

    /// <summary>
    /// The epochs that fit: the first at <paramref name="firstStepSeconds"/> a step, later ones at <paramref name="laterStepSeconds"/>,
    /// each with <paramref name="extraRowsPerEpoch"/> rows of forward passes (validation, Precise BatchNorm) at
    /// <see cref="ForwardShare"/> of a step per batch of <paramref name="batchRows"/>. At least 1.
    /// </summary>
    public (int Epochs, string Why) Plan(int stepsPerEpoch, double firstStepSeconds, double laterStepSeconds, long extraRowsPerEpoch, int batchRows, int maxEpochs)
    {
        double extra = (double)extraRowsPerEpoch / Math.Max(1, batchRows) * laterStepSeconds * ForwardShare;
        double first = stepsPerEpoch * firstStepSeconds + extra, later = stepsPerEpoch * laterStepSeconds + extra;
        double left = (Budget - Elapsed).TotalSeconds * Fill;
        int epochs = left <= first ? 1 : (int)Math.Min(maxEpochs, 1 + Math.Floor((left - first) / later));
        string why = string.Create(CultureInfo.InvariantCulture,
            $"time budget {Budget}: {Elapsed.TotalSeconds:0.0}s spent before training; a step measured at {firstStepSeconds * 1000:0} ms{(laterStepSeconds < firstStepSeconds ? $" ({laterStepSeconds * 1000:0} ms once the frozen stages are cached)" : "")}, {stepsPerEpoch} steps an epoch, about {first:0.0}s for the first epoch and {later:0.0}s for each later one (validation and Precise BatchNorm included): {epochs} epoch{(epochs == 1 ? "" : "s")}");
        return (epochs, why);
    }

    /// <summary>True when another epoch as long as <paramref name="epochSeconds"/> would end after the budget.</summary>
    public bool NextEpochOverruns(double epochSeconds) => (Elapsed.TotalSeconds + epochSeconds) > Budget.TotalSeconds;
}

/// <summary>Step timings of the probe, reported synchronously (IProgress without a synchronisation context).</summary>
internal sealed class StepClock : IProgress<DualHeadStepReport>
{
    private readonly List<double> _seconds = [];

    public void Report(DualHeadStepReport value) => _seconds.Add(value.EpochSeconds);

    /// <summary>Mean seconds of the steps after the first, or of the only one.</summary>
    public double SecondsPerStep => _seconds.Count switch
    {
        0 => throw new InvalidOperationException("The time-budget probe ran no step."),
        1 => _seconds[0],
        _ => (_seconds[^1] - _seconds[0]) / (_seconds.Count - 1),
    };
}
