using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;

namespace DualHeadML.Bench;

/// <summary>
/// Cancellation latency: the time from <c>CancellationTokenSource.Cancel()</c> to Fit's return, cancelled at a
/// random moment of each phase — reading the rows (a slow upstream column, as a teacher is), training (MLP and
/// small CNN) and the alpha/beta search — over many trials, as p50/p95 milliseconds and in units of that phase's
/// work item (one row, one training step, one grid point). Goal: p95 within 2 steps.
/// </summary>
internal static class CancelBenchmark
{
    private const int K = 10;

    public static Dictionary<string, object> Run(string[] args)
    {
        int trials = int.TryParse(Arg(args, "--trials"), out var t) ? t : 40;
        Console.WriteLine($"cancel: {trials} trials per phase, Cancel() at a random moment of the phase; latency = Cancel() -> Fit returns");
        var results = new Dictionary<string, object> { ["trials"] = trials, ["threads"] = TorchSharp.torch.get_num_threads() };
        results["reading"] = Reading(trials);
        results["training_mlp"] = Training(trials, DualHeadBackbone.Mlp);
        results["training_cnn"] = Training(trials, DualHeadBackbone.SmallCnn);
        results["alpha_beta_search"] = Search(trials);
        return results;
    }

    /// <summary>Reading: every row of the feature column costs ~0.5 ms (a stand-in for a teacher computed upstream).</summary>
    private static Dictionary<string, object> Reading(int trials)
    {
        const double rowMs = 0.5;
        var rows = Rows(4000, 784, seed: 1);
        var latencies = new List<double>();
        var random = new Random(1);
        for (int i = -1; i < trials; i++) // trial -1 warms up (JIT): reported apart, not counted
        {
            var ml = new MLContext(seed: 1);
            var slow = ml.Data.LoadFromEnumerable(rows.Select(r => { SpinFor(rowMs); return r; }), Definition(784));
            var options = Options(DualHeadBackbone.Mlp);
            double ms = CancelAt(options, ml, slow, started: null, delayMs: 20 + random.Next(200));
            if (i < 0) Console.WriteLine($"  reading: warm-up trial {ms:0.0} ms (not counted)");
            else latencies.Add(ms);
        }
        return Summary("reading", latencies, rowMs, "rows");
    }

    private static Dictionary<string, object> Training(int trials, DualHeadBackbone backbone)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows(6000, 784, seed: 2), Definition(784));
        // The step time of this very setup, from an uncancelled epoch.
        var probe = Options(backbone);
        probe.NumberOfEpochs = 1;
        double stepMs;
        using (var model = ml.MulticlassClassification.Trainers.DualHeadDistill(probe).Fit(data))
            stepMs = model.TrainingReport.MeanStepMilliseconds;
        var latencies = new List<double>();
        var delays = new List<int>();
        var random = new Random(2);
        for (int i = 0; i < trials; i++)
        {
            var options = Options(backbone);
            options.NumberOfEpochs = 50;
            int delay = 10 + random.Next(300);
            delays.Add(delay);
            latencies.Add(CancelAt(options, ml, data, started: "DualHeadDistill: mode", delayMs: delay));
        }
        var summary = Summary($"training {backbone}", latencies, stepMs, "steps");
        summary["delays_after_training_start_ms"] = delays;
        Console.WriteLine("    (delay after training start -> latency, ms) " + string.Join(" ", delays.Zip(latencies, (d, l) => $"{d}->{l:0}")));
        return summary;
    }

    /// <summary>The alpha/beta search over 10,000 validation rows and a 21 x 13 grid; cancelled after the last epoch.</summary>
    private static Dictionary<string, object> Search(int trials)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows(600, 784, seed: 3), Definition(784));
        var validation = ml.Data.LoadFromEnumerable(Rows(10000, 784, seed: 4, labeledEvery: 1), Definition(784));
        float[] alphas = Enumerable.Range(0, 21).Select(i => i / 20f).ToArray();
        float[] betas = Enumerable.Range(1, 13).Select(i => i * 0.25f).ToArray();
        DualHeadDistillOptions Make()
        {
            var o = Options(DualHeadBackbone.Mlp);
            o.NumberOfEpochs = 1;
            o.ValidationData = validation;
            o.AlphaGrid = alphas;
            o.BetaGrid = betas;
            return o;
        }
        double searchSeconds;
        using (var model = ml.MulticlassClassification.Trainers.DualHeadDistill(Make()).Fit(data))
            searchSeconds = model.TrainingReport.AlphaBetaSeconds;
        double pointMs = 1000 * searchSeconds / (alphas.Length * betas.Length);
        Console.WriteLine($"  alpha/beta search alone: {searchSeconds * 1000:0} ms for {alphas.Length * betas.Length} grid points");
        var latencies = new List<double>();
        var random = new Random(3);
        for (int i = 0; i < trials; i++)
            latencies.Add(CancelAt(Make(), ml, data, started: "search", delayMs: random.Next((int)Math.Max(1, searchSeconds * 900))));
        var summary = Summary("alpha/beta search", latencies, pointMs, "grid points");
        summary["search_ms"] = searchSeconds * 1000;
        return summary;
    }

    /// <summary>Runs Fit, cancels <paramref name="delayMs"/> after the phase starts, returns ms from Cancel() to Fit's return.</summary>
    private static double CancelAt(DualHeadDistillOptions options, MLContext ml, IDataView data, string? started, int delayMs)
    {
        // Every trial starts alike: no garbage of the previous one left to collect during this one.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var cts = new CancellationTokenSource();
        using var phase = new ManualResetEventSlim(started is null);
        options.CancellationToken = cts.Token;
        void OnLog(object? sender, LoggingEventArgs e)
        {
            if (started is not null && started != "search" && e.Message.Contains(started)) phase.Set();
        }
        if (started == "search")
            options.Progress = new Progress(r => { if (r.Epoch == r.NumberOfEpochs) phase.Set(); });
        ml.Log += OnLog;
        long cancelledAt = 0;
        var canceller = new Thread(() =>
        {
            phase.Wait();
            Thread.Sleep(delayMs);
            cancelledAt = Stopwatch.GetTimestamp();
            cts.Cancel();
        }) { IsBackground = true };
        canceller.Start();
        try
        {
            using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data);
            throw new InvalidOperationException($"Fit finished before it was cancelled ({delayMs} ms after the phase started); lengthen the phase.");
        }
        catch (OperationCanceledException)
        {
            long returned = Stopwatch.GetTimestamp();
            canceller.Join();
            return Stopwatch.GetElapsedTime(cancelledAt, returned).TotalMilliseconds;
        }
        finally
        {
            ml.Log -= OnLog;
            phase.Set();      // let the canceller finish before cts and phase are disposed
            canceller.Join();
        }
    }

    private static Dictionary<string, object> Summary(string phase, List<double> latencies, double unitMs, string unit)
    {
        var sorted = latencies.Order().ToArray();
        double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
        double p50 = P(0.5), p95 = P(0.95);
        Console.WriteLine($"  {phase}: p50 {p50:0.0} ms, p95 {p95:0.0} ms, max {sorted[^1]:0.0} ms; one {unit[..^1]} {unitMs:0.00} ms -> p95 = {p95 / unitMs:0.00} {unit} (goal <= 2)");
        return new Dictionary<string, object>
        {
            ["p50_ms"] = p50, ["p95_ms"] = p95, ["max_ms"] = sorted[^1], ["unit"] = unit, ["unit_ms"] = unitMs,
            ["p50_units"] = p50 / unitMs, ["p95_units"] = p95 / unitMs, ["latencies_ms"] = latencies,
        };
    }

    private static DualHeadDistillOptions Options(DualHeadBackbone backbone) => new()
    {
        Backbone = backbone,
        ImageShape = backbone == DualHeadBackbone.SmallCnn ? [1, 28, 28] : null,
        NumberOfEpochs = 20,
        Seed = 1,
        Device = DualHeadDevice.Cpu,
    };

    private static void SpinFor(double ms)
    {
        long end = Stopwatch.GetTimestamp() + (long)(ms * Stopwatch.Frequency / 1000);
        while (Stopwatch.GetTimestamp() < end) Thread.SpinWait(20);
    }

    private sealed class Row
    {
        public uint Label { get; set; }
        public float[] Features { get; set; } = [];
        public float[] TeacherLogits { get; set; } = [];
    }

    private static SchemaDefinition Definition(int d)
    {
        var definition = SchemaDefinition.Create(typeof(Row));
        definition["Label"].ColumnType = new KeyDataViewType(typeof(uint), K);
        definition["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, d);
        definition["TeacherLogits"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, K);
        return definition;
    }

    /// <summary>Gaussian blobs; one row in <paramref name="labeledEvery"/> labeled (key 1..K), the others unlabeled (key 0).</summary>
    private static List<Row> Rows(int n, int d, int seed, int labeledEvery = 10)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(i =>
        {
            int c = i % K;
            var x = new float[d];
            for (int j = 0; j < d; j++) x[j] = (float)r.NextDouble() + (j % K == c ? 0.5f : 0f);
            var logits = new float[K];
            logits[c] = 3;
            return new Row { Label = i % labeledEvery == 0 ? (uint)(c + 1) : 0, Features = x, TeacherLogits = logits };
        }).ToList();
    }

    private sealed class Progress(Action<DualHeadEpochReport> report) : IProgress<DualHeadEpochReport>
    {
        public void Report(DualHeadEpochReport value) => report(value);
    }

    private static string? Arg(string[] args, string name) => BenchArgs.Value(args, name);
}
