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

/// <summary>Two workloads timed in alternation (A, B, A, B, ...) so that machine noise hits both alike.</summary>
internal static class PairedHarness
{
    public static (double A, double B) MedianSeconds(Action a, Action b, int warmups = 1, int repetitions = 7)
        => Measure(a, b, warmups, repetitions) is var m ? (m.A, m.B) : default;

    /// <summary>Medians of A and B, and the median of the per-pair ratios B/A (robust to slow drifts of the machine's speed).</summary>
    public static (double A, double B, double MedianRatioBOverA) Measure(Action a, Action b, int warmups = 1, int repetitions = 7)
    {
        for (int i = 0; i < warmups; i++) { a(); b(); }
        var ta = new double[repetitions];
        var tb = new double[repetitions];
        for (int i = 0; i < repetitions; i++)
        {
            Settle();
            var watch = Stopwatch.StartNew();
            a();
            ta[i] = watch.Elapsed.TotalSeconds;
            Settle();
            watch.Restart();
            b();
            tb[i] = watch.Elapsed.TotalSeconds;
        }
        var ratios = tb.Zip(ta, (y, x) => y / x).Order().ToArray();
        Array.Sort(ta);
        Array.Sort(tb);
        return (ta[repetitions / 2], tb[repetitions / 2], ratios[repetitions / 2]);
    }

    /// <summary>Several workloads timed in rotation; returns each one's median seconds.</summary>
    public static double[] MedianSecondsRotating(Action[] workloads, int warmups = 1, int repetitions = 9)
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
        return times.Select(t => t.Order().ElementAt(repetitions / 2)).ToArray();
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
