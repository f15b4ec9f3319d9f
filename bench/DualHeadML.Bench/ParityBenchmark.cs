using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Specs;

namespace DualHeadML.Bench;

/// <summary>
/// Parity with PyTorch: the paper protocol (<see cref="PaperProtocol"/>) run by our trainer and by an independent
/// PyTorch implementation (bench/parity/dho_pytorch.py) on exactly the same rows, labels and teacher logits,
/// per method over the same seeds. The data goes to the script as a bundle folder (bundle.json + raw
/// little-endian float32/int32 .bin files); the script runs as a child process and writes a JSON of its
/// per-seed test accuracies.
/// </summary>
internal static class ParityBenchmark
{
    private static readonly string[] Methods = ["supervised_only", "single_head_kd", "dho_default", "dho_auto"];

    public static Dictionary<string, object> Run(string[] args)
    {
        string normalization = BenchArgs.Value(args, "--normalization") ?? "none";
        if (normalization is not ("none" or "standardize"))
            throw new ArgumentException($"--normalization takes none or standardize; got '{normalization}'.");
        // Debian's python3-torch lives in /usr/bin/python3; a python3 earlier on PATH (pyenv, venv) usually lacks it.
        string python = BenchArgs.Value(args, "--python") ?? (File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
        string script = BenchArgs.Value(args, "--script") ?? LocateScript();
        string? bundleArg = BenchArgs.Value(args, "--bundle");
        bool concurrent = BenchArgs.Has(args, "--concurrent");
        if (BenchArgs.Has(args, "--bundle-only") && bundleArg is null) throw new ArgumentException("--bundle-only needs --bundle DIR.");
        // Intra-op threads of each side (ours: TorchSharp's, restored afterwards; PyTorch: torch.set_num_threads).
        // On a shared CPU, or with --concurrent, 1 each avoids threads waiting at barriers for a descheduled peer.
        int threads = int.Parse(BenchArgs.Value(args, "--threads") ?? "2", CultureInfo.InvariantCulture);
        if (threads < 1) throw new ArgumentOutOfRangeException("--threads", threads, "--threads must be at least 1.");
        // Training runs (both sides): supervised_only, single_head_kd, dho (dho gives dho_default and dho_auto).
        string[] fits = (BenchArgs.Value(args, "--methods") ?? "supervised_only,single_head_kd,dho").Split(',', StringSplitOptions.RemoveEmptyEntries);
        if (fits.Length == 0 || fits.Any(f => f is not ("supervised_only" or "single_head_kd" or "dho")))
            throw new ArgumentException($"--methods takes a comma-separated subset of supervised_only,single_head_kd,dho; got '{string.Join(",", fits)}'.");
        string bundle = bundleArg ?? Path.Combine(Path.GetTempPath(), "dualhead-parity-" + Environment.ProcessId);

        var total = Stopwatch.StartNew();
        var protocol = PaperProtocol.Load(args);
        using var data = protocol.PrepareData(args);
        int seeds = protocol.Seeds, epochs = protocol.Epochs;

        // The bundle: exactly what our trainer reads, in its row order.
        var watch = Stopwatch.StartNew();
        var normalizationJson = WriteBundle(bundle, protocol, data, normalization);
        double bundleSeconds = watch.Elapsed.TotalSeconds;
        Console.WriteLine($"bundle: {bundle} ({bundleSeconds:0.0}s); normalization {JsonSerializer.Serialize(normalizationJson)}");
        // --bundle-only: write the bundle and stop (to run the PyTorch side alone: python3 bench/parity/dho_pytorch.py DIR OUT.json).
        if (BenchArgs.Has(args, "--bundle-only"))
            return new Dictionary<string, object> { ["bundle"] = bundle, ["normalization"] = normalizationJson, ["teacher_accuracy"] = Math.Round(data.TeacherAccuracy * 100, 4) };

        // PyTorch, as a child process on the same bundle: after ours, or (--concurrent) at the same time.
        string pytorchJson = Path.Combine(bundle, "pytorch-results.json");
        var pytorchWatch = Stopwatch.StartNew();
        double pytorchTotalSeconds = 0;
        var pytorch = concurrent ? Task.Run(() => { RunPython(python, script, bundle, pytorchJson, threads, fits); pytorchTotalSeconds = pytorchWatch.Elapsed.TotalSeconds; }) : null;

        // Ours.
        var ours = Methods.Concat(["ce_head", "kd_head"]).ToDictionary(m => m, _ => new List<double>());
        var oursSeconds = new Dictionary<string, List<double>> { ["supervised_only"] = [], ["single_head_kd"] = [], ["dho"] = [] };
        var oursEpochs = new Dictionary<string, List<object>> { ["supervised_only"] = [], ["single_head_kd"] = [], ["dho"] = [] };
        var oursChosen = new List<object>();
        var oursThreads = new List<int>();
        Microsoft.ML.DualHeadDistillation.Students.InputStatistics? oursStatistics = null;
        var ml = protocol.Ml;
        int previousThreads = TorchSharp.torch.get_num_threads();
        TorchSharp.torch.set_num_threads(threads);
        var oursWatch = Stopwatch.StartNew();
        for (int seed = 1; seed <= seeds; seed++)
        {
            DualHeadDistillTransformer Fit(DualHeadTrainingMode mode, string key, IDataView? validation)
            {
                var w = Stopwatch.StartNew();
                var model = ml.MulticlassClassification.Trainers.DualHeadDistill(OursOptions(mode, seed, epochs, data.TeacherKind, normalization)).Fit(data.TrainData, validation);
                oursSeconds[key].Add(w.Elapsed.TotalSeconds);
                oursThreads.Add(model.TrainingReport.IntraOpThreads);
                oursStatistics ??= model.InputStandardization;
                oursEpochs[key].Add(model.TrainingReport.Epochs.Select(e => new Dictionary<string, object?>
                {
                    ["epoch"] = e.Epoch, ["steps"] = e.Steps, ["ce"] = e.CeLoss, ["kd"] = double.IsNaN(e.KdLoss) ? null : e.KdLoss, ["loss"] = e.TotalLoss, ["lr"] = e.LearningRate, ["seconds"] = e.Seconds,
                }).ToList());
                Console.WriteLine(string.Join(Environment.NewLine, model.TrainingReport.Epochs.Select(e => $"  ours {key} seed {seed} {e}")));
                return model;
            }
            double Test(DualHeadDistillTransformer model) =>
                PaperBenchmark.Accuracy(model.Transform(data.TestData).GetColumn<uint>("PredictedLabel").Select(k => (int)k - 1).ToArray(), data.TestLabels);

            if (fits.Contains("supervised_only"))
            {
                using (var sup = Fit(DualHeadTrainingMode.SupervisedOnly, "supervised_only", null)) ours["supervised_only"].Add(Test(sup));
                Console.WriteLine(FormattableString.Invariant($"ours seed {seed} supervised_only: test {ours["supervised_only"][^1]:P2} ({oursSeconds["supervised_only"][^1]:0}s)"));
            }
            if (fits.Contains("single_head_kd"))
            {
                using (var single = Fit(DualHeadTrainingMode.SingleHeadKd, "single_head_kd", null)) ours["single_head_kd"].Add(Test(single));
                Console.WriteLine(FormattableString.Invariant($"ours seed {seed} single_head_kd: test {ours["single_head_kd"][^1]:P2} ({oursSeconds["single_head_kd"][^1]:0}s)"));
            }
            if (fits.Contains("dho"))
            {
                using var dho = Fit(DualHeadTrainingMode.DualHead, "dho", data.Validation);
                var search = dho.TrainingReport.AlphaBeta ?? throw new InvalidOperationException("The DualHead Fit ran no alpha/beta search.");
                oursChosen.Add(new Dictionary<string, object> { ["seed"] = seed, ["alpha"] = search.Alpha, ["beta"] = search.Beta, ["validation_accuracy"] = search.Accuracy });
                ours["dho_auto"].Add(Test(dho));
                foreach (var (key, a) in new[] { ("dho_default", 0.5f), ("ce_head", 1f), ("kd_head", 0f) })
                {
                    using var at = AtAlphaBeta(dho, a, 0.5f);
                    ours[key].Add(Test(at));
                }
                Console.WriteLine(FormattableString.Invariant(
                    $"ours seed {seed} dho_default: test {ours["dho_default"][^1]:P2}; dho_auto: test {ours["dho_auto"][^1]:P2} (alpha {search.Alpha}, beta {search.Beta}, validation {search.Accuracy:P1}; CE head {ours["ce_head"][^1]:P2}, KD head {ours["kd_head"][^1]:P2}; {oursSeconds["dho"][^1]:0}s)"));
            }
        }
        TorchSharp.torch.set_num_threads(previousThreads);
        double oursTotalSeconds = oursWatch.Elapsed.TotalSeconds;
        // Kept beside the bundle, so a failure on the PyTorch side loses nothing of ours.
        File.WriteAllText(Path.Combine(bundle, "ours-results.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["runs"] = ours, ["seconds"] = oursSeconds, ["intra_op_threads"] = oursThreads, ["epoch_reports"] = oursEpochs, ["chosen_alpha_beta"] = oursChosen,
        }, new JsonSerializerOptions { WriteIndented = true }));

        if (pytorch is null)
        {
            pytorchWatch.Restart();
            RunPython(python, script, bundle, pytorchJson, threads, fits);
            pytorchTotalSeconds = pytorchWatch.Elapsed.TotalSeconds;
        }
        else pytorch.GetAwaiter().GetResult();
        using var pyDoc = JsonDocument.Parse(File.ReadAllText(pytorchJson));
        var pyRoot = pyDoc.RootElement;
        var pyRuns = pyRoot.GetProperty("runs");
        List<double> PyRuns(string method) => pyRuns.TryGetProperty(method, out var r) ? r.EnumerateArray().Select(v => v.GetDouble()).ToList() : [];

        static double Pct(double fraction) => Math.Round(fraction * 100, 4);
        var results = new Dictionary<string, object>
        {
            ["accuracy_unit"] = "percent (gap in points: ours - pytorch)",
            ["fraction"] = protocol.Fraction, ["labeled_rows"] = protocol.Split.Labeled.Length, ["unlabeled_rows"] = protocol.Split.Unlabeled.Length,
            ["validation_rows"] = protocol.Split.Validation.Length, ["test_rows"] = protocol.Test.Count,
            ["seeds"] = seeds, ["epochs"] = epochs, ["confuse"] = protocol.Confuse ?? "", ["normalization"] = normalizationJson,
            ["normalization_ours"] = oursStatistics is null ? "none" : new Dictionary<string, object> { ["mean"] = oursStatistics.Mean, ["std"] = oursStatistics.Std },
            ["teacher_description"] = data.TeacherDescription, ["teacher_accuracy"] = Pct(data.TeacherAccuracy),
            ["bundle"] = bundle, ["pytorch_version"] = pyRoot.GetProperty("torch_version").GetString() ?? "", ["pytorch_threads"] = pyRoot.GetProperty("threads").GetInt32(),
        };
        var table = new List<(string Method, double Ours, double Py, double Gap)>();
        foreach (var method in Methods.Concat(["ce_head", "kd_head"]))
        {
            var o = ours[method].Select(Pct).ToList();
            var p = PyRuns(method).Select(Pct).ToList();
            if (p.Count == 0 || o.Count == 0) continue;
            double gap = o.Average() - p.Average();
            results[method] = new Dictionary<string, object>
            {
                ["ours"] = o.Average(), ["pytorch"] = p.Average(), ["gap"] = Math.Round(gap, 4), ["ours_runs"] = o, ["pytorch_runs"] = p,
                ["ours_std"] = PaperBenchmark.Std(o), ["pytorch_std"] = PaperBenchmark.Std(p),
            };
            table.Add((method, o.Average(), p.Average(), gap));
        }
        results["chosen_alpha_beta"] = new Dictionary<string, object> { ["ours"] = oursChosen, ["pytorch"] = pyRoot.GetProperty("chosen_alpha_beta").Clone() };
        results["epoch_reports"] = new Dictionary<string, object> { ["ours"] = oursEpochs, ["pytorch"] = pyRoot.GetProperty("epoch_reports").Clone() };
        results["timings"] = new Dictionary<string, object>
        {
            ["bundle_seconds"] = bundleSeconds, ["ours_seconds"] = oursSeconds, ["ours_total_seconds"] = oursTotalSeconds,
            ["pytorch_seconds"] = pyRoot.GetProperty("seconds").Clone(), ["pytorch_total_seconds"] = pytorchTotalSeconds, ["total_seconds"] = total.Elapsed.TotalSeconds,
            ["concurrent"] = concurrent, ["threads_each_side"] = threads, ["ours_intra_op_threads"] = oursThreads.Distinct().ToArray(), ["fits"] = fits,
        };

        Console.WriteLine();
        Console.WriteLine(FormattableString.Invariant($"teacher {data.TeacherAccuracy:P2}; F = {protocol.Fraction}; seeds 1..{seeds}; {epochs} epochs; confuse {protocol.Confuse ?? "-"}; normalization {normalization} (PyTorch side)"));
        Console.WriteLine("| method | ours | PyTorch | gap | within 0.5? |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (method, o, p, gap) in table)
            Console.WriteLine(FormattableString.Invariant($"| {method} | {o:0.00} | {p:0.00} | {gap:+0.00;-0.00;0.00} | {(Math.Abs(gap) <= 0.5 ? "yes" : "no")} |"));
        if (bundleArg is null) Directory.Delete(bundle, recursive: true);
        return results;
    }

    /// <summary>
    /// Every construction of our trainer's options (the library API is changing: adapt here only).
    /// The PyTorch side mirrors the defaults read back from these options (see <see cref="WriteBundle"/>).
    /// </summary>
    internal static DualHeadDistillOptions OursOptions(DualHeadTrainingMode mode, int seed, int epochs, TeacherOutputKind teacherKind, string normalization)
    {
        var options = new DualHeadDistillOptions
        {
            Objective = mode, TeacherColumnName = "Teacher", TeacherOutput = teacherKind, Backbone = DualHeadBackbone.SmallCnn, ImageShape = [1, 28, 28],
            NumberOfEpochs = epochs, Seed = seed, AutoAlphaBeta = true,
            // Both sides standardise (per-channel statistics of every training row) or neither does.
            InputNormalization = normalization == "standardize" ? DualHeadInputNormalization.Standardize : DualHeadInputNormalization.None,
        };
        return options;
    }

    /// <summary>Every change of alpha/beta on a fitted model (the library API is changing: adapt here only).</summary>
    internal static DualHeadDistillTransformer AtAlphaBeta(DualHeadDistillTransformer m, float a, float b)
    {
        return m.WithAlphaBeta(a, b);
    }

    /// <summary>Writes bundle.json and the .bin files; returns the normalization recorded ("none" or mean/std per channel).</summary>
    private static object WriteBundle(string dir, PaperProtocol protocol, PaperData data, string normalization)
    {
        Directory.CreateDirectory(dir);
        var arrays = new Dictionary<string, object>();
        object Entry(string file, string dtype, params int[] shape) => new Dictionary<string, object> { ["file"] = file, ["dtype"] = dtype, ["shape"] = shape };

        // Training rows in the trainer's row order (the cached view's), labels 0-based (-1 unlabeled), teacher
        // logits in label-key order as TrainingSet reads them (slot names matched to key values; log of probabilities).
        var train = data.TrainData;
        float[][] features = train.GetColumn<float[]>("Features").ToArray();
        int[] labels = train.GetColumn<uint>("Label").Select(k => (int)k - 1).ToArray();
        float[][] teacherRaw = train.GetColumn<float[]>("Teacher").ToArray();
        int[] slotForClass = TeacherSlotForClass(train.Schema);
        int n = features.Length, d = features[0].Length, k = slotForClass.Length;
        var teacher = new float[n * k];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < k; c++)
            {
                float v = teacherRaw[i][slotForClass[c]];
                teacher[i * k + c] = data.TeacherKind == TeacherOutputKind.Logits ? v : MathF.Log(MathF.Max(v, 1e-12f));
            }
        WriteFloats(Path.Combine(dir, "train_features.bin"), features);
        WriteInts(Path.Combine(dir, "train_labels.bin"), labels);
        WriteFloats(Path.Combine(dir, "train_teacher.bin"), [teacher]);
        arrays["train"] = new Dictionary<string, object>
        {
            ["features"] = Entry("train_features.bin", "float32", n, d), ["labels"] = Entry("train_labels.bin", "int32", n), ["teacher"] = Entry("train_teacher.bin", "float32", n, k),
        };
        foreach (var (name, view) in new[] { ("validation", data.Validation), ("test", data.TestData) })
        {
            float[][] x = view.GetColumn<float[]>("Features").ToArray();
            int[] y = view.GetColumn<uint>("Label").Select(key => (int)key - 1).ToArray();
            WriteFloats(Path.Combine(dir, $"{name}_features.bin"), x);
            WriteInts(Path.Combine(dir, $"{name}_labels.bin"), y);
            arrays[name] = new Dictionary<string, object> { ["features"] = Entry($"{name}_features.bin", "float32", x.Length, d), ["labels"] = Entry($"{name}_labels.bin", "int32", y.Length) };
        }

        // Per-channel mean and population std over every training row (labeled + unlabeled).
        int[] imageShape = [1, 28, 28];
        object normalizationJson = "none";
        if (normalization == "standardize")
        {
            int channels = imageShape[0], pixels = d / channels;
            var mean = new double[channels];
            var std = new double[channels];
            for (int ch = 0; ch < channels; ch++)
            {
                double sum = 0, sq = 0;
                foreach (var row in features)
                    for (int j = ch * pixels; j < (ch + 1) * pixels; j++) sum += row[j];
                mean[ch] = sum / ((double)n * pixels);
                foreach (var row in features)
                    for (int j = ch * pixels; j < (ch + 1) * pixels; j++) sq += (row[j] - mean[ch]) * (row[j] - mean[ch]);
                std[ch] = Math.Sqrt(sq / ((double)n * pixels));
            }
            normalizationJson = new Dictionary<string, object> { ["mean"] = mean, ["std"] = std, ["over"] = "all training rows (labeled + unlabeled), per channel, population std" };
        }

        // Hyper-parameters read back from the options our trainer is given.
        var o = OursOptions(DualHeadTrainingMode.DualHead, 1, protocol.Epochs, data.TeacherKind, normalization);
        var bundle = new Dictionary<string, object>
        {
            ["format"] = 1,
            ["classes"] = k, ["feature_size"] = d, ["image_shape"] = imageShape, ["class_names"] = TeacherClassNames(train.Schema),
            ["arrays"] = arrays,
            ["hyper_parameters"] = new Dictionary<string, object>
            {
                ["lambda"] = o.Lambda, ["temperature"] = o.Temperature, ["epochs"] = o.NumberOfEpochs,
                ["labeled_batch_size"] = o.LabeledBatchSize, ["unlabeled_batch_size"] = o.UnlabeledBatchSize,
                ["learning_rate"] = o.LearningRate, ["weight_decay"] = o.WeightDecay, ["warmup_steps"] = o.WarmupSteps,
                ["hidden_size"] = o.EmbeddingSize, ["alpha"] = o.Alpha, ["beta"] = o.Beta, ["backbone"] = o.Backbone.ToString(),
                ["optimizer"] = "AdamW (default betas and eps)", ["schedule"] = "LearningRateSchedule.At (warm-up, then cosine to 0)",
            },
            ["alpha_grid"] = o.AlphaGrid, ["beta_grid"] = o.BetaGrid,
            ["seeds"] = Enumerable.Range(1, protocol.Seeds).ToArray(),
            ["normalization"] = normalizationJson,
            ["teacher"] = new Dictionary<string, object> { ["description"] = data.TeacherDescription, ["kind"] = data.TeacherKind.ToString(), ["test_accuracy"] = data.TeacherAccuracy, ["confuse"] = protocol.Confuse ?? "" },
            ["split"] = new Dictionary<string, object>
            {
                ["seed"] = 13, ["pool_size"] = protocol.Split.TeacherPool.Length, ["fraction"] = protocol.Fraction, ["labeled_per_class"] = protocol.LabeledPerClass,
                ["validation_per_class"] = 20,
                ["note"] = "training-image indices; the training rows are labeled then unlabeled, in these orders",
                ["labeled"] = protocol.Split.Labeled, ["unlabeled"] = protocol.Split.Unlabeled, ["validation"] = protocol.Split.Validation,
            },
        };
        File.WriteAllText(Path.Combine(dir, "bundle.json"), JsonSerializer.Serialize(bundle, new JsonSerializerOptions { WriteIndented = true }));
        return normalizationJson;
    }

    /// <summary>As TeacherAlignment: teacher slot names matched case-insensitively to the label's key values; identity without slot names.</summary>
    private static int[] TeacherSlotForClass(DataViewSchema schema)
    {
        string[] classes = KeyValues(schema["Label"]);
        var teacherColumn = schema["Teacher"];
        if (!teacherColumn.HasSlotNames()) return Enumerable.Range(0, classes.Length).ToArray();
        VBuffer<ReadOnlyMemory<char>> names = default;
        teacherColumn.GetSlotNames(ref names);
        var slots = names.DenseValues().Select(v => v.ToString().Trim()).ToList();
        return classes.Select(c =>
        {
            int s = slots.FindIndex(name => string.Equals(name, c.Trim(), StringComparison.OrdinalIgnoreCase));
            return s >= 0 ? s : throw new InvalidOperationException($"Class '{c}' has no teacher slot.");
        }).ToArray();
    }

    private static string[] TeacherClassNames(DataViewSchema schema) => KeyValues(schema["Label"]);

    private static string[] KeyValues(DataViewSchema.Column column)
    {
        VBuffer<ReadOnlyMemory<char>> keys = default;
        column.GetKeyValues(ref keys);
        return keys.DenseValues().Select(v => v.ToString()).ToArray();
    }

    private static void WriteFloats(string path, IEnumerable<float[]> rows)
    {
        using var writer = new BinaryWriter(File.Create(path));
        foreach (var row in rows)
            foreach (float v in row) writer.Write(v); // BinaryWriter writes little-endian
    }

    private static void WriteInts(string path, int[] values)
    {
        using var writer = new BinaryWriter(File.Create(path));
        foreach (int v in values) writer.Write(v);
    }

    /// <summary>Runs the script with its output streamed to ours; throws if it fails.</summary>
    private static void RunPython(string python, string script, string bundle, string outJson, int threads, string[] fits)
    {
        var start = new ProcessStartInfo(python) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { script, bundle, outJson, "--threads", threads.ToString(CultureInfo.InvariantCulture), "--methods", string.Join(",", fits) }) start.ArgumentList.Add(a);
        // Debian's torch links libblas.so.3: prefer the OpenMP OpenBLAS for the child (our own process is left alone).
        const string openblas = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
        if (Directory.Exists(openblas))
        {
            string? current = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
            start.Environment["LD_LIBRARY_PATH"] = string.IsNullOrEmpty(current) ? openblas : $"{openblas}:{current}";
        }
        Console.WriteLine($"running {python} {string.Join(' ', start.ArgumentList)}");
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {python}.");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.WriteLine($"[pytorch] {e.Data}"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"[pytorch] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{python} {script} exited with code {process.ExitCode}.");
    }

    /// <summary>bench/parity/dho_pytorch.py, found from the working folder or the program's folder upwards.</summary>
    /// <summary>A committed script (e.g. "bench/parity/dho_pytorch.py") above the working folder or the program's.</summary>
    internal static string LocateScript(string relative = "bench/parity/dho_pytorch.py")
    {
        foreach (var from in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(from); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, relative);
                if (File.Exists(candidate)) return candidate;
            }
        throw new FileNotFoundException($"{relative} not found above the working folder; pass --script PATH.");
    }
}
