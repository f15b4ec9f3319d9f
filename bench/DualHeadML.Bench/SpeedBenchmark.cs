using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Specs;

namespace DualHeadML.Bench;

/// <summary>
/// `bench speed`: our DHO training step against PyTorch's on the same CPU, alternating in one run
/// (ours small CNN, PyTorch small CNN, ours ResNet-18 fp32, PyTorch ResNet-18, ours ResNet-18 bfloat16, ours small CNN
/// bfloat16, ours ResNet-18 fp32 without channels-last, ours MobileNetV3 small, PyTorch MobileNetV3 small, ours MobileNetV3
/// small bfloat16; round after round). Ours runs with its defaults (channels-last convolutions) but for the explicit
/// precision and the one NCHW workload; Precise BatchNorm is off (it is not part of a step). Our step is Fit's: a DualHeadDistill Fit over fixed random rows (64 labeled + 64 unlabeled
/// per step), timed from its epochs after the first (the first pays for libtorch's kernel set-up); PyTorch's
/// is bench/speed/dho_step_pytorch.py, the same model, batch, loss and AdamW, timed after its warm-up steps.
/// Ratios are per round (ours over PyTorch's in the same round), summarised by median and spread.
/// </summary>
internal static class SpeedBenchmark
{
    private const int Classes = 10, Labeled = 64, Unlabeled = 64;
    private static string? s_pytorchBlas;

    public static Dictionary<string, object> Run(string[] args)
    {
        int rounds = int.Parse(Arg(args, "--rounds") ?? "3", CultureInfo.InvariantCulture);
        int cnnSteps = int.Parse(Arg(args, "--cnn-steps") ?? "20", CultureInfo.InvariantCulture);
        int resnetSteps = int.Parse(Arg(args, "--resnet-steps") ?? "4", CultureInfo.InvariantCulture);
        int bf16Steps = int.Parse(Arg(args, "--bf16-steps") ?? "2", CultureInfo.InvariantCulture);
        int mobileSteps = int.Parse(Arg(args, "--mobilenet-steps") ?? "6", CultureInfo.InvariantCulture);
        int threads = int.Parse(Arg(args, "--threads") ?? "2", CultureInfo.InvariantCulture);
        string python = Arg(args, "--python") ?? "/usr/bin/python3";
        string script = Arg(args, "--script") ?? ParityBenchmark.LocateScript("bench/speed/dho_step_pytorch.py");
        if (!File.Exists(script)) throw new FileNotFoundException($"--script: the PyTorch step script '{script}' was not found.", script);
        TorchSharp.torch.set_num_threads(threads);
        string openBlas = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
        bool blas = Directory.Exists(openBlas);
        Console.WriteLine($"bench speed: {rounds} rounds; steps timed per run: small CNN {cnnSteps}, ResNet-18 {resnetSteps}, ResNet-18 bf16 {bf16Steps}; " +
            $"{threads} threads each side; PyTorch {(blas ? "with OpenBLAS (" + openBlas + ")" : "with its default BLAS (install libopenblas0-openmp for a fair one)")}; " +
            $"native bfloat16 on this CPU: {CpuFlags("avx512_bf16") || CpuFlags("amx_bf16")}");

        var ml = new MLContext(seed: 1);
        var cnnData = Data(ml, 1 * 28 * 28, cnnSteps);
        var resnetData = Data(ml, 3 * 64 * 64, resnetSteps);
        var bf16Data = Data(ml, 3 * 64 * 64, bf16Steps);
        var mobileData = Data(ml, 3 * 64 * 64, mobileSteps);
        DualHeadDistillOptions Options(string backbone, int[] shape, DualHeadPrecision precision, bool channelsLast = true) => new()
        {
            Backbone = backbone, ImageShape = shape, Precision = precision, NumberOfEpochs = 2, Seed = 1,
            InputNormalization = DualHeadInputNormalization.None, Device = DualHeadDevice.Cpu,
            LabeledBatchSize = Labeled, UnlabeledBatchSize = Unlabeled, ChannelsLast = channelsLast, PreciseBatchNormBatches = 0,
        };
        var workloads = new (string Key, Func<double> MsPerStep)[]
        {
            ("small_cnn_ours_ms", () => Ours(ml, cnnData, Options("SmallCnn", [1, 28, 28], DualHeadPrecision.Float32), cnnSteps)),
            ("small_cnn_pytorch_ms", () => PyTorch(python, script, "small_cnn", cnnSteps, threads, blas ? openBlas : null)),
            ("resnet18_ours_ms", () => Ours(ml, resnetData, Options("ResNet18", [3, 64, 64], DualHeadPrecision.Float32), resnetSteps)),
            ("resnet18_pytorch_ms", () => PyTorch(python, script, "resnet18", resnetSteps, threads, blas ? openBlas : null)),
            ("resnet18_bf16_ours_ms", () => Ours(ml, bf16Data, Options("ResNet18", [3, 64, 64], DualHeadPrecision.BFloat16), bf16Steps)),
            ("small_cnn_bf16_ours_ms", () => Ours(ml, cnnData, Options("SmallCnn", [1, 28, 28], DualHeadPrecision.BFloat16), cnnSteps)),
            ("resnet18_nchw_ours_ms", () => Ours(ml, resnetData, Options("ResNet18", [3, 64, 64], DualHeadPrecision.Float32, channelsLast: false), resnetSteps)),
            ("mobilenet_v3_small_ours_ms", () => Ours(ml, mobileData, Options("MobileNetV3Small", [3, 64, 64], DualHeadPrecision.Float32), mobileSteps)),
            ("mobilenet_v3_small_pytorch_ms", () => PyTorch(python, script, "mobilenet_v3_small", mobileSteps, threads, blas ? openBlas : null)),
            ("mobilenet_v3_small_bf16_ours_ms", () => Ours(ml, mobileData, Options("MobileNetV3Small", [3, 64, 64], DualHeadPrecision.BFloat16), mobileSteps)),
        };
        var times = workloads.Select(_ => new List<double>()).ToArray();
        for (int r = 1; r <= rounds; r++)
            for (int w = 0; w < workloads.Length; w++)
            {
                double ms = workloads[w].MsPerStep();
                times[w].Add(ms);
                Console.WriteLine(FormattableString.Invariant($"  round {r}: {workloads[w].Key,-22} {ms,9:0.0} ms/step"));
            }

        var results = new Dictionary<string, object>
        {
            ["rounds"] = rounds, ["threads"] = threads, ["labeled_batch"] = Labeled, ["unlabeled_batch"] = Unlabeled,
            ["pytorch_blas"] = blas ? "openblas-openmp" : "default", ["native_bfloat16"] = CpuFlags("avx512_bf16") || CpuFlags("amx_bf16"),
            ["cpu"] = CpuModel(), ["protocol"] = "ours: DualHeadDistill Fit, 2 epochs, ms/step of epoch 2; PyTorch: bench/speed/dho_step_pytorch.py, median step after 3 warm-up steps; alternating in each round",
        };
        for (int w = 0; w < workloads.Length; w++)
        {
            Spread.Of(times[w]).WriteTo(results, workloads[w].Key);
            results[workloads[w].Key + "_rounds"] = times[w].ToArray();
        }
        void RatioOf(string key, int ours, int theirs)
        {
            var ratio = Spread.Of(times[ours].Zip(times[theirs], (a, b) => a / b));
            ratio.WriteTo(results, key);
            Console.WriteLine($"{key}: {ratio}");
        }
        RatioOf("small_cnn_ours_over_pytorch", 0, 1);
        RatioOf("resnet18_ours_over_pytorch", 2, 3);
        RatioOf("resnet18_bf16_ours_over_pytorch", 4, 3);
        RatioOf("resnet18_bf16_over_fp32_ours", 4, 2);
        RatioOf("small_cnn_bf16_ours_over_pytorch", 5, 1);
        RatioOf("resnet18_channels_last_over_nchw_ours", 2, 6);
        RatioOf("mobilenet_v3_small_ours_over_pytorch", 7, 8);
        RatioOf("mobilenet_v3_small_bf16_over_fp32_ours", 9, 7);
        results["pytorch_blas_loaded"] = s_pytorchBlas ?? "unknown";
        return results;
    }

    private sealed class Row
    {
        public string Label { get; set; } = "";
        public float[] Features { get; set; } = [];
        public float[] TeacherLogits { get; set; } = [];
    }

    private sealed class ClassName { public string Label { get; set; } = ""; }

    /// <summary>Random rows for <paramref name="steps"/> steps an epoch: 64 labeled + 64 unlabeled each (label key 0 = unlabeled).</summary>
    private static IDataView Data(MLContext ml, int size, int steps)
    {
        var random = new Random(7);
        var rows = Enumerable.Range(0, (Labeled + Unlabeled) * steps).Select(i => new Row
        {
            Label = i % 2 == 0 ? "c" + random.Next(Classes).ToString(CultureInfo.InvariantCulture) : "",
            Features = Enumerable.Range(0, size).Select(_ => (float)random.NextDouble()).ToArray(),
            TeacherLogits = Enumerable.Range(0, Classes).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray(),
        }).ToList();
        var schema = SchemaDefinition.Create(typeof(Row));
        schema["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        schema["TeacherLogits"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, Classes);
        var data = ml.Data.LoadFromEnumerable(rows, schema);
        var classes = ml.Data.LoadFromEnumerable(Enumerable.Range(0, Classes).Select(c => new ClassName { Label = "c" + c.ToString(CultureInfo.InvariantCulture) }));
        // "" is not among the keys: it becomes key 0 (missing), an unlabeled row.
        return ml.Data.Cache(ml.Transforms.Conversion.MapValueToKey("Label", keyData: classes).Fit(data).Transform(data));
    }

    /// <summary>Fit, and the ms/step of its second epoch.</summary>
    private static double Ours(MLContext ml, IDataView data, DualHeadDistillOptions options, int steps)
    {
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data);
        var epoch = model.TrainingReport.Epochs[^1];
        if (epoch.Steps != steps) throw new InvalidOperationException($"Expected {steps} steps an epoch, the Fit took {epoch.Steps} ({model.TrainingReport.LabeledRows} labeled, {model.TrainingReport.UnlabeledRows} unlabeled rows).");
        return 1000 * epoch.Seconds / epoch.Steps;
    }

    private static double PyTorch(string python, string script, string model, int steps, int threads, string? blas)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { script, "--model", model, "--steps", steps.ToString(CultureInfo.InvariantCulture), "--warmup", "3", "--threads", threads.ToString(CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(a);
        if (blas is not null) start.Environment["LD_LIBRARY_PATH"] = blas;
        start.Environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {python}.");
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{python} {script} --model {model} exited with {process.ExitCode}: {stderr.Result}");
        using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        if (json.RootElement.TryGetProperty("blas", out var loaded)) s_pytorchBlas = loaded.GetString();
        return json.RootElement.GetProperty("ms_per_step").GetDouble();
    }

    internal static bool CpuFlags(string flag) =>
        File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) is { } line
        && line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(flag);

    internal static string CpuModel() =>
        File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) is { } line
            ? line[(line.IndexOf(':') + 1)..].Trim() : "unknown";

    private static string? Arg(string[] args, string name) => BenchArgs.Value(args, name);
}
