using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Bench;

/// <summary>
/// `dualhead train` on a folder of N Fashion-MNIST PNG files (default 20,000: 50 labeled per class, the rest unlabeled;
/// a separate validation folder of 10 per class): the tool's wall time split into listing, decoding/store, teacher,
/// training and report, and its training step against the library's Fit on the same files, options and teacher (an
/// in-process pipeline: LoadRawImageBytes, TeacherSoftLabels, DualHeadDistill), alternating tool, library, tool, library.
/// </summary>
internal static class CliBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        int Int(string name, int fallback, int min) => BenchArgs.Int(args, name, fallback, min);
        int images = Int("--images", 20_000, 1_000), rounds = Int("--rounds", 2, 1), epochs = Int("--epochs", 1, 1), size = Int("--image-size", 28, 16);
        string tool = PaperBenchmark.DualheadTool();
        string work = BenchArgs.Value(args, "--work") ?? Path.Combine(Path.GetTempPath(), "dualhead-bench-cli-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        try
        {
            var watch = Stopwatch.StartNew();
            string dataDir = FashionMnist.Locate(allowDownload: false);
            var train = FashionMnist.Load(dataDir, train: true);
            var test = FashionMnist.Load(dataDir, train: false);
            string root = Path.Combine(work, "data");
            var written = FashionMnistFolders.Write(root, train, test, labeledPerClass: 50, unlabeled: images - 500, testPerClass: 10);
            string validation = written.Test; // 10 per class from the test split, given to both sides
            string teacher = Path.Combine(root, "teacher.onnx");
            File.WriteAllBytes(teacher, FashionMnistFolders.CentroidTeacher(train, FashionMnistFolders.TeacherPool(train)));
            Console.WriteLine($"wrote {written.LabeledCount} labeled + {written.UnlabeledCount} unlabeled + {written.TestCount} validation PNG files in {watch.Elapsed.TotalSeconds:0.0} s");

            var toolRuns = new List<Dictionary<string, double>>();
            var libraryRuns = new List<Dictionary<string, double>>();
            for (int round = 1; round <= rounds; round++)
            {
                // A: the tool, as a child process, exactly as a user runs it.
                string output = Path.Combine(work, $"run{round}");
                var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
                foreach (var a in new[] { tool, "train", "--labeled", written.Labeled, "--unlabeled", written.Unlabeled, "--validation", validation, "--teacher", teacher,
                    "--output", output, "--image-size", size.ToString(CultureInfo.InvariantCulture), "--epochs", epochs.ToString(CultureInfo.InvariantCulture), "--seed", "1", "--plain" })
                    start.ArgumentList.Add(a);
                var wall = Stopwatch.StartNew();
                using (var p = Process.Start(start)!)
                {
                    var stdout = p.StandardOutput.ReadToEndAsync();
                    var stderr = p.StandardError.ReadToEndAsync();
                    p.WaitForExit();
                    if (p.ExitCode != 0) throw new InvalidOperationException($"dualhead train failed (exit {p.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
                }
                double toolWall = wall.Elapsed.TotalSeconds;
                using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")));
                var s = metrics.RootElement.GetProperty("seconds");
                var toolRun = new Dictionary<string, double>
                {
                    ["ms_per_step"] = metrics.RootElement.GetProperty("mean_step_milliseconds").GetDouble(),
                    ["listing_s"] = s.GetProperty("listing").GetDouble(),
                    ["decoding_store_s"] = s.GetProperty("decoding_store").GetDouble(),
                    ["teacher_s"] = s.GetProperty("teacher").GetDouble(),
                    ["training_s"] = s.GetProperty("training").GetDouble(),
                    ["report_s"] = s.GetProperty("report").GetDouble(),
                    ["total_s"] = s.GetProperty("total").GetDouble(),
                    ["process_wall_s"] = toolWall,
                    ["validation_accuracy_dho"] = metrics.RootElement.GetProperty("validation").EnumerateArray().First(v => v.GetProperty("name").GetString() == "DHO").GetProperty("accuracy").GetDouble(),
                };
                toolRuns.Add(toolRun);
                Directory.Delete(output, recursive: true);
                Console.WriteLine($"round {round} tool:    {toolRun["ms_per_step"]:0.0} ms/step; listing {toolRun["listing_s"]:0.0} s, decoding/store {toolRun["decoding_store_s"]:0.0} s, teacher {toolRun["teacher_s"]:0.0} s, training {toolRun["training_s"]:0.0} s, report {toolRun["report_s"]:0.0} s; total {toolRun["total_s"]:0.0} s (process {toolWall:0.0} s)");

                // B: the library's Fit on the same files, options and teacher.
                var library = LibraryFit(written, validation, teacher, size, epochs);
                libraryRuns.Add(library);
                Console.WriteLine($"round {round} library: {library["ms_per_step"]:0.0} ms/step; read (store + teacher) {library["read_s"]:0.0} s, training {library["training_s"]:0.0} s");
            }
            var ratios = toolRuns.Zip(libraryRuns, (t, l) => t["ms_per_step"] / l["ms_per_step"]).ToArray();
            double Median(IEnumerable<double> v) { var a = v.Order().ToArray(); return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2; }
            Console.WriteLine($"tool / library ms per step: {string.Join(", ", ratios.Select(r => r.ToString("0.000", CultureInfo.InvariantCulture)))} (median {Median(ratios):0.000}; goal <= 1.05)");
            return new Dictionary<string, object>
            {
                ["images"] = images,
                ["labeled"] = written.LabeledCount,
                ["unlabeled"] = written.UnlabeledCount,
                ["validation"] = written.TestCount,
                ["image_size"] = size,
                ["epochs"] = epochs,
                ["rounds"] = rounds,
                ["tool"] = toolRuns,
                ["library"] = libraryRuns,
                ["step_ratio_tool_over_library"] = ratios,
                ["step_ratio_median"] = Median(ratios),
                ["tool_phase_median_s"] = toolRuns[0].Keys.Where(k => k.EndsWith("_s", StringComparison.Ordinal)).ToDictionary(k => k, k => Median(toolRuns.Select(r => r[k]))),
                ["processors"] = Environment.ProcessorCount,
            };
        }
        finally
        {
            if (BenchArgs.Value(args, "--work") is null) Directory.Delete(work, recursive: true);
        }
    }

    private sealed class Row
    {
        public string Label { get; set; } = "";
        public string Path { get; set; } = "";
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }

    /// <summary>The library pipeline the tool builds, in process: same rows (ordinal path order), options and teacher.</summary>
    private static Dictionary<string, double> LibraryFit(FashionMnistFolders.Written written, string validationDir, string teacherPath, int size, int epochs)
    {
        var ml = new MLContext(seed: 1);
        string[] classes = Directory.GetDirectories(written.Labeled).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        IEnumerable<Row> Labeled(string dir) => classes.SelectMany(c => Directory.GetFiles(Path.Combine(dir, c), "*.png", SearchOption.AllDirectories)
            .Select(Path.GetFullPath).Order(StringComparer.Ordinal).Select(f => new Row { Label = c, Path = f }));
        var unlabeled = Directory.GetFiles(written.Unlabeled, "*.png", SearchOption.AllDirectories).Select(Path.GetFullPath).Order(StringComparer.Ordinal).Select(f => new Row { Path = f });
        var keys = ml.Data.LoadFromEnumerable(classes.Select(c => new ClassName { Label = c }).ToArray());
        IDataView Load(IEnumerable<Row> rows)
        {
            var view = ml.Data.LoadFromEnumerable(rows.ToArray());
            return ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys).Append(ml.Transforms.LoadRawImageBytes("Image", null, "Path")).Fit(view).Transform(view);
        }
        var trainView = Load(Labeled(written.Labeled).Concat(unlabeled));
        var validation = Load(Labeled(validationDir));
        using var teacher = ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions { InputColumnName = "Image", ModelPath = teacherPath }).Fit(trainView);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(new DualHeadDistillOptions
        {
            FeatureColumnName = "Image",
            Backbone = DualHeadBackbone.SmallCnn,
            ImageShape = [3, size, size],
            NumberOfEpochs = epochs,
            Seed = 1,
            ValidationData = validation,
        }).Fit(teacher.Transform(trainView));
        var r = model.TrainingReport;
        return new Dictionary<string, double> { ["ms_per_step"] = r.MeanStepMilliseconds, ["read_s"] = r.ReadSeconds, ["training_s"] = r.TrainSeconds + r.AlphaBetaSeconds, ["steps"] = r.TotalSteps };
    }
}
