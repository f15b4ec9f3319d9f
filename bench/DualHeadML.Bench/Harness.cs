using System.Diagnostics;

namespace DualHeadML.Bench;

/// <summary>A plain Stopwatch harness: warm-up runs, then the median of timed runs.</summary>
internal static class Harness
{
    public static double MedianSeconds(Action run, int warmups = 1, int repetitions = 5)
    {
        for (int i = 0; i < warmups; i++) run();
        var times = new double[repetitions];
        for (int i = 0; i < repetitions; i++)
        {
            var watch = Stopwatch.StartNew();
            run();
            times[i] = watch.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        return times[repetitions / 2];
    }
}
