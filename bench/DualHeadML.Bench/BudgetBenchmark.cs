using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Students.Onnx;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Bench;

/// <summary>
/// Time to accuracy (DAWNBench's measure): test accuracy against wall-clock seconds of training within the same budget,
/// ours and PyTorch's, in one run. Fashion-MNIST at 1 % labels as 3x64x64 (grey replicated), the ImageNet ResNet-18 of
/// Microsoft.ML.DnnImageFeaturizer.ResNet18 as the student on both sides (ours: OnnxCnn from the ONNX file; PyTorch:
/// bench/budget/dho_budget_pytorch.py builds the same graph from the same file with python3-onnx and its weights), the
/// confused teacher (or <c>--teacher probe</c>, the ResNet-18 linear probe). Three runs, one after the other, never at the
/// same time: ours DHO with its recipe (Precision Auto, channels-last, Precise BatchNorm, TimeBudget, frozen first
/// stages with cached outputs), PyTorch DHO (fp32 eager, the same hyperparameters and budget policy), ours single-head
/// KD with the same recipe. Each curve is [seconds, test accuracy] at every epoch end (alpha/beta on validation for
/// DHO); <c>ours_seconds_to_pytorch_final</c> is when ours first reaches PyTorch's accuracy at the budget.
/// </summary>
internal static class BudgetBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        var total = Stopwatch.StartNew();
        bool quick = BenchArgs.Has(args, "--quick");
        int Int(string name, int fallback, int min) => BenchArgs.Int(args, name, fallback, min);
        double minutes = double.Parse(BenchArgs.Value(args, "--minutes") ?? (quick ? "6" : "20"), CultureInfo.InvariantCulture);
        if (!(minutes > 0)) throw new ArgumentOutOfRangeException("--minutes", minutes, "--minutes must be > 0.");
        int size = Int("--size", 64, 32), unlabeledCount = Int("--unlabeled", quick ? 8_000 : 20_000, 64), testCount = Int("--test", quick ? 2_000 : 5_000, 100);
        int seed = Int("--seed", 1, 0), frozenStages = Int("--frozen-stages", 3, 0), threads = Int("--threads", 2, 1), patience = Int("--patience", 0, 0);
        string teacher = BenchArgs.Value(args, "--teacher") ?? "confused";
        if (teacher is not ("confused" or "probe")) throw new ArgumentException($"--teacher takes confused or probe; got '{teacher}'.");
        string python = BenchArgs.Value(args, "--python") ?? "/usr/bin/python3";
        string script = BenchArgs.Value(args, "--script") ?? Path.Combine(RepoRoot(), "bench", "budget", "dho_budget_pytorch.py");
        string[] runs = (BenchArgs.Value(args, "--runs") ?? "ours_dho,pytorch_dho,ours_kd").Split(',', StringSplitOptions.RemoveEmptyEntries);
        if (runs.Except(["ours_dho", "pytorch_dho", "ours_kd"]).FirstOrDefault() is { } unknown) throw new ArgumentException($"--runs takes a subset of ours_dho,pytorch_dho,ours_kd; got '{unknown}'.");
        string confuse = BenchArgs.Value(args, "--confuse") ?? "0-6,2-4";
        string models = DnnImageModels;
        var onnxSettings = DnnImageFeaturizerResNet18.BackboneSettings(models);

        var ml = new MLContext(seed: 1);
        string dir = FashionMnist.Locate();
        var train = FashionMnist.Load(dir, train: true);
        var test = FashionMnist.Load(dir, train: false);
        var split = FashionMnistProtocol.Split(train, poolSize: 10_000, labeledPerClass: 50, validationPerClass: 20, seed: 13, maxUnlabeled: unlabeledCount);
        testCount = Math.Min(testCount, test.Count);
        bool nativeBf16 = SpeedBenchmark.CpuFlags("avx512_bf16") || SpeedBenchmark.CpuFlags("amx_bf16");
        Console.WriteLine(FormattableString.Invariant(
            $"budget benchmark{(quick ? " (--quick)" : "")}: {minutes} min per run; {size}x{size} RGB, {split.Labeled.Length} labeled, {split.Unlabeled.Length} unlabeled, {split.Validation.Length} validation, {testCount} test; teacher {teacher}; seed {seed}; {threads} threads; CPU {SpeedBenchmark.CpuModel()}, native bfloat16 {nativeBf16}"));

        var schema = SchemaDefinition.Create(typeof(PixelRow));
        schema[nameof(PixelRow.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3 * size * size);
        IEnumerable<PixelRow> Rows(FashionMnistSplit images, IEnumerable<int> indices, bool labeled) => indices.Select(i => new PixelRow
        {
            Label = labeled ? FashionMnist.ClassNames[images.Labels[i]] : "",
            Features = images.Pixels.AsSpan(i * 784, 784).ToArray(),
            Pixels = GreyImages.ToRgb(images.Pixels.AsSpan(i * 784, 784), size),
        });
        IDataView Load(IEnumerable<PixelRow> rows) => ml.Data.LoadFromEnumerable(rows, schema);
        var keyTransform = ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml)).Fit(Load(Rows(train, split.Validation, labeled: true)));

        string work = Path.Combine(Path.GetTempPath(), "dualhead-budget-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        try
        {
            // The teacher's probabilities of every row, once, before any clock starts (both sides get the same).
            var watch = Stopwatch.StartNew();
            string teacherPath = Path.Combine(work, "teacher.onnx");
            var teacherOptions = StudentTeachers.Build(ml, teacher, train, split.TeacherPool, confuse,
                () => ml.Data.Cache(keyTransform.Transform(Load(Rows(train, split.TeacherPool, labeled: true)))), size, probeEpochs: 2, seed, models, teacherPath).Options;
            string teacherDescription = teacher == "confused"
                ? $"confused: ML.NET L-BFGS maximum entropy on the 10,000-image pool (28x28), labels confused within pairs {confuse}"
                : "probe: the ImageNet ResNet-18 (frozen) + a linear probe trained on the 10,000 pool images";
            teacherOptions.OutputColumnName = "Teacher";
            using var teacherTransform = ml.Transforms.TeacherSoftLabels(teacherOptions).Fit(Load(Rows(train, split.Validation, labeled: true)));
            IDataView Prepare(IEnumerable<PixelRow> rows)
            {
                var cached = ml.Data.Cache(teacherTransform.Transform(keyTransform.Transform(Load(rows))));
                cached.GetColumn<float[]>("Teacher").Count(); // fill the cache now
                return cached;
            }
            var trainData = Prepare(Rows(train, split.Labeled, labeled: true).Concat(Rows(train, split.Unlabeled, labeled: false)));
            var validation = Prepare(Rows(train, split.Validation, labeled: true));
            var testData = Prepare(Rows(test, Enumerable.Range(0, testCount), labeled: true));
            var testLabels = Labels(testData);
            double teacherAccuracy = PaperBenchmark.Accuracy(testData.GetColumn<float[]>("Teacher").Select(PaperBenchmark.ArgMax).ToArray(), testLabels);
            Console.WriteLine(FormattableString.Invariant($"teacher {teacherDescription}: test {teacherAccuracy:P2}; logits of every row in {watch.Elapsed.TotalSeconds:0} s"));

            var results = new Dictionary<string, object>
            {
                ["minutes"] = minutes, ["quick"] = quick, ["image_size"] = size, ["labeled"] = split.Labeled.Length, ["unlabeled"] = split.Unlabeled.Length,
                ["validation"] = split.Validation.Length, ["test"] = testCount, ["seed"] = seed, ["teacher"] = teacherDescription, ["teacher_test_accuracy"] = teacherAccuracy,
                ["native_bfloat16"] = nativeBf16, ["cpu"] = SpeedBenchmark.CpuModel(),
                ["cpu_flags"] = string.Join(" ", new[] { "avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni" }.Where(SpeedBenchmark.CpuFlags)),
                ["student"] = "the ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0 on both sides: ours OnnxCnn from the ONNX file, PyTorch the same graph built from the same file with python3-onnx (its weights)",
                ["ours_recipe"] = $"Precision Auto, channels-last, Precise BatchNorm {DualHeadDefaults.PreciseBatchNormBatches} batches, TimeBudget {minutes} min, FrozenStages {frozenStages} (outputs cached), EarlyStoppingPatience {patience}",
                ["runs"] = runs,
            };

            // Ours: one Fit per method within the budget; a copy of the checkpoint at every epoch end is scored afterwards.
            List<double[]> Ours(DualHeadTrainingMode mode, string key)
            {
                string checkpoint = Path.Combine(work, key + ".ckpt");
                var snapshots = new List<(double Seconds, string File)>();
                var clock = new Stopwatch();
                double paused = 0, lastEpoch = 0;
                var progress = new Synchronous<DualHeadEpochReport>(r =>
                {
                    double now = clock.Elapsed.TotalSeconds;
                    // The checkpoint of epoch e is written right after epoch e is reported: copy it at the next report.
                    if (r.Epoch > 1 && File.Exists(checkpoint))
                    {
                        string copy = Path.Combine(work, $"{key}.epoch{r.Epoch - 1}.ckpt");
                        File.Copy(checkpoint, copy, overwrite: true);
                        snapshots.Add((lastEpoch, copy));
                    }
                    lastEpoch = now - paused;
                    paused += clock.Elapsed.TotalSeconds - now;
                    Console.WriteLine(FormattableString.Invariant($"{key}: epoch {r.Epoch}/{r.NumberOfEpochs} at {lastEpoch:0} s, validation {r.ValidationAccuracy:P2}"));
                });
                var options = new DualHeadDistillOptions
                {
                    FeatureColumnName = "Pixels", ImageShape = [3, size, size], Objective = mode, TeacherColumnName = "Teacher", TeacherOutput = TeacherOutputKind.Probabilities,
                    Backbone = "OnnxCnn", BackboneSettings = new(onnxSettings), Seed = seed, TimeBudget = TimeSpan.FromMinutes(minutes), FrozenStages = frozenStages,
                    EarlyStoppingPatience = patience, CheckpointPath = checkpoint, Progress = progress,
                };
                clock.Start();
                using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(trainData, validation);
                double fitSeconds = clock.Elapsed.TotalSeconds - paused;
                var report = model.TrainingReport;
                Console.WriteLine($"{key}: {report.TimeBudgetPlan}; {report.Epochs.Count} epochs, {report.MeanStepMilliseconds:0} ms/step, Fit {fitSeconds:0} s; precision {report.Precision} ({report.PrecisionReason})");
                var curve = new List<double[]>();
                foreach (var (seconds, file) in snapshots)
                {
                    using var saved = DualHeadCheckpoint.Load(file).ToModel();
                    var search = mode == DualHeadTrainingMode.DualHead ? saved.TuneAlphaBeta(validation) : null;
                    var scored = search is null ? saved : saved.WithAlphaBeta(search.Alpha, search.Beta); // shares the student of `saved`
                    curve.Add([seconds, Accuracy(scored, testData, testLabels)]);
                    File.Delete(file);
                }
                curve.Add([fitSeconds, Accuracy(model, testData, testLabels)]); // the returned model (alpha/beta tuned by Fit)
                foreach (var point in curve) Console.WriteLine(FormattableString.Invariant($"{key}: {point[0]:0} s -> test {point[1]:P2}"));
                results[key + "_ms_per_step"] = report.MeanStepMilliseconds;
                results[key + "_epochs"] = report.Epochs.Count;
                results[key + "_plan"] = report.TimeBudgetPlan ?? "";
                results[key + "_precision"] = $"{report.Precision}: {report.PrecisionReason}";
                return curve;
            }

            List<double[]> PyTorch()
            {
                string bundle = Path.Combine(work, "bundle");
                WriteBundle(bundle, trainData, validation, testData, size, minutes, seed, onnxSettings);
                string output = Path.Combine(work, "pytorch.json");
                var start = new ProcessStartInfo(python) { RedirectStandardOutput = false, RedirectStandardError = false, UseShellExecute = false };
                foreach (var a in new[] { script, bundle, output, "--threads", threads.ToString(CultureInfo.InvariantCulture) }) start.ArgumentList.Add(a);
                const string openBlas = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
                if (Directory.Exists(openBlas)) start.Environment["LD_LIBRARY_PATH"] = openBlas;
                using (var process = Process.Start(start)!)
                {
                    process.WaitForExit();
                    if (process.ExitCode != 0) throw new InvalidOperationException($"{script} exited with {process.ExitCode}.");
                }
                using var json = JsonDocument.Parse(File.ReadAllText(output));
                var root = json.RootElement;
                results["pytorch_ms_per_step"] = root.GetProperty("ms_per_step").GetDouble();
                results["pytorch_epochs"] = root.GetProperty("epochs_run").GetInt32();
                results["pytorch_blas_loaded"] = root.GetProperty("blas").GetString() ?? "";
                results["pytorch_version"] = root.GetProperty("torch_version").GetString() ?? "";
                Directory.Delete(bundle, recursive: true);
                return root.GetProperty("curve").EnumerateArray().Select(p => new[] { p[0].GetDouble(), p[1].GetDouble() }).ToList();
            }

            foreach (var run in runs)
            {
                var curve = run switch
                {
                    "ours_dho" => Ours(DualHeadTrainingMode.DualHead, "ours_dho"),
                    "ours_kd" => Ours(DualHeadTrainingMode.SingleHeadKd, "ours_kd"),
                    _ => PyTorch(),
                };
                results[run + "_curve"] = curve;
                Console.WriteLine($"{run} done at {total.Elapsed.TotalMinutes:0.0} min");
            }

            // Accuracy at every 2 minutes (the last epoch end before it), and when ours reaches PyTorch's final accuracy.
            double[] marks = Enumerable.Range(1, (int)Math.Floor(minutes / 2)).Select(m => m * 120.0).Append(minutes * 60).Distinct().ToArray();
            double? At(List<double[]> curve, double t) => curve.LastOrDefault(p => p[0] <= t) is { } p ? p[1] : null;
            var table = new List<Dictionary<string, object?>>();
            foreach (var t in marks)
                table.Add(new() { ["seconds"] = t, ["ours_dho"] = Curve("ours_dho") is { } a ? At(a, t) : null, ["pytorch_dho"] = Curve("pytorch_dho") is { } b ? At(b, t) : null, ["ours_kd"] = Curve("ours_kd") is { } c ? At(c, t) : null });
            results["every_2_minutes"] = table;
            if (Curve("ours_dho") is { } ours && Curve("pytorch_dho") is { } pytorch)
            {
                double target = pytorch[^1][1];
                results["pytorch_final_accuracy"] = target;
                results["ours_dho_final_accuracy"] = ours[^1][1];
                results["ours_seconds_to_pytorch_final"] = ours.FirstOrDefault(p => p[1] >= target) is { } hit ? hit[0] : double.NaN;
                results["pytorch_seconds_to_pytorch_final"] = pytorch.First(p => p[1] >= target)[0];
            }
            if (Curve("ours_dho") is { } dho && Curve("ours_kd") is { } kd) results["ours_dho_minus_kd_at_budget_points"] = (dho[^1][1] - kd[^1][1]) * 100;
            results["total_seconds"] = total.Elapsed.TotalSeconds;
            foreach (var row in table)
                Console.WriteLine(FormattableString.Invariant($"| {(double)row["seconds"]! / 60:0.#} min | ours DHO {row["ours_dho"]:P2} | PyTorch DHO {row["pytorch_dho"]:P2} | ours KD {row["ours_kd"]:P2} |"));
            foreach (var k in new[] { "ours_seconds_to_pytorch_final", "pytorch_final_accuracy", "ours_dho_final_accuracy", "ours_dho_minus_kd_at_budget_points" })
                if (results.TryGetValue(k, out var v)) Console.WriteLine($"{k}: {v}");
            return results;

            List<double[]>? Curve(string run) => results.TryGetValue(run + "_curve", out var c) ? (List<double[]>)c : null;
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }

    private static int[] Labels(IDataView data) => data.GetColumn<uint>("Label").Select(k => (int)k - 1).ToArray();

    private static double Accuracy(DualHeadDistillTransformer model, IDataView test, int[] labels) =>
        PaperBenchmark.Accuracy(model.Transform(test).GetColumn<uint>("PredictedLabel").Select(k => (int)k - 1).ToArray(), labels);

    /// <summary>The rows, labels (-1: unlabeled) and teacher logits (log of the probabilities, as TrainingSet reads them) for the PyTorch side.</summary>
    private static void WriteBundle(string dir, IDataView train, IDataView validation, IDataView test, int size, double minutes, int seed, Dictionary<string, string> onnx)
    {
        Directory.CreateDirectory(dir);
        var arrays = new Dictionary<string, object>();
        object Write(string name, float[][] rows)
        {
            using (var file = new BinaryWriter(File.Create(Path.Combine(dir, name + ".bin"))))
                foreach (var row in rows)
                    foreach (var v in row) file.Write(v);
            return new Dictionary<string, object> { ["file"] = name + ".bin", ["dtype"] = "float32", ["shape"] = new[] { rows.Length, rows.Length == 0 ? 0 : rows[0].Length } };
        }
        object WriteInts(string name, int[] values)
        {
            using (var file = new BinaryWriter(File.Create(Path.Combine(dir, name + ".bin"))))
                foreach (var v in values) file.Write(v);
            return new Dictionary<string, object> { ["file"] = name + ".bin", ["dtype"] = "int32", ["shape"] = new[] { values.Length } };
        }
        float[][] Logits(IDataView data) => data.GetColumn<float[]>("Teacher").Select(p => p.Select(v => MathF.Log(MathF.Max(v, 1e-12f))).ToArray()).ToArray();
        arrays["train"] = new Dictionary<string, object>
        {
            ["x"] = Write("train_x", train.GetColumn<float[]>("Pixels").ToArray()), ["y"] = WriteInts("train_y", Labels(train)), ["t"] = Write("train_t", Logits(train)),
        };
        arrays["validation"] = new Dictionary<string, object> { ["x"] = Write("validation_x", validation.GetColumn<float[]>("Pixels").ToArray()), ["y"] = WriteInts("validation_y", Labels(validation)) };
        arrays["test"] = new Dictionary<string, object> { ["x"] = Write("test_x", test.GetColumn<float[]>("Pixels").ToArray()), ["y"] = WriteInts("test_y", Labels(test)) };
        var mean = onnx[OnnxCnnBackboneDefinition.MeanSetting].Split(',').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var std = onnx[OnnxCnnBackboneDefinition.StdSetting].Split(',').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var bundle = new Dictionary<string, object>
        {
            ["arrays"] = arrays, ["image_shape"] = new[] { 3, size, size }, ["classes"] = FashionMnist.ClassNames.Count, ["features"] = 512, ["seed"] = seed, ["minutes"] = minutes,
            ["onnx"] = onnx[OnnxCnnBackboneDefinition.ModelSetting], ["swap_input_channels"] = onnx[OnnxCnnBackboneDefinition.ChannelsSetting] == "bgr", ["mean"] = mean, ["std"] = std,
            ["alpha_grid"] = DualHeadDefaults.AlphaGrid, ["beta_grid"] = DualHeadDefaults.BetaGrid,
            ["hyperparameters"] = new Dictionary<string, object>
            {
                ["learning_rate"] = DualHeadDefaults.LearningRate, ["weight_decay"] = DualHeadDefaults.WeightDecay, ["warmup_steps"] = DualHeadDefaults.WarmupSteps,
                ["labeled_batch_size"] = DualHeadDefaults.LabeledBatchSize, ["unlabeled_batch_size"] = DualHeadDefaults.UnlabeledBatchSize,
                ["lambda"] = DualHeadDefaults.Lambda, ["temperature"] = DualHeadDefaults.Temperature,
            },
        };
        File.WriteAllText(Path.Combine(dir, "bundle.json"), JsonSerializer.Serialize(bundle, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "DualHeadML.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("The repository root (DualHeadML.sln) was not found above the benchmark's folder; pass --script.");
    }

    private static string DnnImageModels => StudentTeachers.DnnImageModels;

    private sealed class Synchronous<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    private sealed class PixelRow
    {
        public string Label { get; set; } = "";
        [VectorType(FashionMnistSplit.PixelsPerImage)] public float[] Features { get; set; } = [];
        [VectorType] public float[] Pixels { get; set; } = [];
    }
}
