using System.Diagnostics;

namespace DualHeadML.Bench;

/// <summary>Median and spread (min, quartiles, max) of a sample, e.g. the per-pair ratios of interleaved runs.</summary>
internal readonly record struct Spread(double Median, double Min, double Q1, double Q3, double Max, int Count)
{
    public static Spread Of(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        if (v.Length == 0) throw new ArgumentException("no values", nameof(values));
        return new(Quantile(v, 0.5), v[0], Quantile(v, 0.25), Quantile(v, 0.75), v[^1], v.Length);
    }

    /// <summary>Linear interpolation between order statistics (type 7, as numpy's default).</summary>
    private static double Quantile(double[] sorted, double q)
    {
        double h = (sorted.Length - 1) * q;
        int lo = (int)Math.Floor(h), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    /// <summary>For the JSON: median, min, q1, q3, max and the number of pairs.</summary>
    public Dictionary<string, object> ToJson() => new()
    {
        ["median"] = Median, ["min"] = Min, ["q1"] = Q1, ["q3"] = Q3, ["max"] = Max, ["pairs"] = Count,
    };

    public override string ToString() => FormattableString.Invariant($"{Median:0.00} (min {Min:0.00}, IQR {Q1:0.00}-{Q3:0.00}, max {Max:0.00}, {Count} pairs)");

    /// <summary>Writes the median under <paramref name="key"/> and the spread under <paramref name="key"/>_spread.</summary>
    public void WriteTo(Dictionary<string, object> results, string key)
    {
        results[key] = Median;
        results[key + "_spread"] = ToJson();
    }
}

/// <summary>
/// Workloads timed in alternation (A, B, A, B, ... or A, B, C, A, B, C, ...) so that machine noise hits all
/// alike. Ratios are taken per round (the runs of one round are next to each other in time) and summarised by
/// their median and spread: never as a ratio of two medians measured at different times.
/// </summary>
internal static class PairedHarness
{
    /// <summary>Each workload's seconds per round: times[w][round].</summary>
    public static double[][] Rotate(Action[] workloads, int warmups = 1, int repetitions = 9)
    {
        for (int i = 0; i < warmups; i++) foreach (var w in workloads) w();
        var times = workloads.Select(_ => new double[repetitions]).ToArray();
        for (int r = 0; r < repetitions; r++)
            for (int w = 0; w < workloads.Length; w++)
            {
                Settle();
                var watch = Stopwatch.StartNew();
                workloads[w]();
                times[w][r] = watch.Elapsed.TotalSeconds;
            }
        return times;
    }

    /// <summary>Median seconds of each workload in <paramref name="times"/>.</summary>
    public static double[] Medians(double[][] times) => times.Select(t => Spread.Of(t).Median).ToArray();

    /// <summary>The per-round ratios times[numerator] / times[denominator].</summary>
    public static Spread Ratio(double[][] times, int numerator, int denominator)
        => Spread.Of(times[numerator].Zip(times[denominator], (n, d) => n / d));

    /// <summary>A and B in alternation: their median seconds and the per-pair ratio A/B (A's time over B's: B's speed-up over A).</summary>
    public static (double A, double B, Spread AOverB) Compare(Action a, Action b, int warmups = 1, int repetitions = 9)
    {
        var times = Rotate([a, b], warmups, repetitions);
        return (Spread.Of(times[0]).Median, Spread.Of(times[1]).Median, Ratio(times, 0, 1));
    }

    /// <summary>Starts each timed run alike: no garbage left from the previous run, idle worker threads.</summary>
    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Thread.Sleep(20);
    }
}
