using DualHeadML.Samples;
using DualHeadML.Samples.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.OnnxRuntime;

namespace DualHeadML.Bench;

/// <summary>
/// Teacher throughput: ML.NET's ApplyOnnxModel (one row per ONNX Runtime call) against TeacherSoftLabels
/// (batched), on the quickstart's teacher and on a convolutional teacher; and the teacher's share of a Fit.
/// Every ratio is the median of per-round ratios of interleaved runs (A B A B ...), printed and written with its spread.
/// Options: --repetitions N (rounds of the timed comparisons, default 9 for the quickstart teacher and 5 for the
/// conv teacher), --fits N (rounds of the four Fits, default 3).
/// </summary>
internal static class TeacherBenchmark
{
    private const int Batch = 256;

    public static Dictionary<string, object> Run(string[] args)
    {
        int? repetitions = Arg(args, "--repetitions") is { } r ? int.Parse(r, System.Globalization.CultureInfo.InvariantCulture) : null;
        int fitRounds = Arg(args, "--fits") is { } fitsArg ? int.Parse(fitsArg, System.Globalization.CultureInfo.InvariantCulture) : 3;
        if (repetitions is < 1 || fitRounds < 1) throw new ArgumentOutOfRangeException(nameof(args), "--repetitions and --fits must be at least 1.");
        var ml = new MLContext(seed: 1);
        string dir = FashionMnist.Locate();
        var train = FashionMnist.Load(dir, train: true);
        var test = FashionMnist.Load(dir, train: false);
        var split = FashionMnistProtocol.Split(train, poolSize: 10_000, labeledPerClass: 50);
        var work = Path.Combine(Path.GetTempPath(), "dualhead-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        var results = new Dictionary<string, object>
        {
            ["test_images"] = test.Count, ["batch_size"] = Batch, ["cpu_threads"] = Environment.ProcessorCount,
            ["quickstart_rounds"] = repetitions ?? 9, ["conv_rounds"] = repetitions ?? 5, ["fit_rounds"] = fitRounds,
        };
        try
        {
            var testData = ml.Data.Cache(ml.Data.LoadFromEnumerable(FashionMnistProtocol.Rows(test, Enumerable.Range(0, test.Count), labeled: true)));
            Materialize(testData, "Features");

            // 1. The quickstart's teacher (ML.NET logistic regression exported to ONNX).
            var quick = OnnxTeacher.Train(ml, train, split.TeacherPool);
            string quickPath = Path.Combine(work, "quickstart-teacher.onnx");
            File.WriteAllBytes(quickPath, quick.Onnx);
            var applyQuick = ml.Transforms.ApplyOnnxModel(new[] { OnnxTeacher.OutputName }, new[] { OnnxTeacher.InputName }, quickPath).Fit(testData);
            using var oursQuick = ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
            {
                InputColumnName = "Features", ModelPath = quickPath, ModelInputName = OnnxTeacher.InputName, ModelOutputName = OnnxTeacher.OutputName,
                ClassNames = FashionMnist.ClassNames, BatchSize = Batch,
            }).Fit(testData);
            // ApplyOnnxModel and ours in alternation; speed-up = per-pair ApplyOnnxModel seconds / our seconds.
            var (applySeconds, oursSeconds, speedup) = PairedHarness.Compare(
                () => Materialize(applyQuick.Transform(testData), OnnxTeacher.OutputColumn),
                () => Materialize(oursQuick.Transform(testData), "TeacherLogits"), repetitions: repetitions ?? 9);
            double diff = MaxAbsDiff(applyQuick.Transform(testData), OnnxTeacher.OutputColumn, oursQuick.Transform(testData), "TeacherLogits");
            // With one row per call, ONNX Runtime runs the same kernels as ApplyOnnxModel: the logits must be identical.
            using var oursQuickSingle = ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
            {
                InputColumnName = "Features", ModelPath = quickPath, ModelInputName = OnnxTeacher.InputName, ModelOutputName = OnnxTeacher.OutputName, BatchSize = 1,
            }).Fit(testData);
            double diffSingle = MaxAbsDiff(applyQuick.Transform(testData), OnnxTeacher.OutputColumn, oursQuickSingle.Transform(testData), "TeacherLogits");
            results["quickstart_teacher_max_abs_diff_batch1"] = diffSingle;
            results["applyonnx_images_per_s"] = test.Count / applySeconds;
            results["teacher_images_per_s"] = test.Count / oursSeconds;
            speedup.WriteTo(results, "speedup");
            results["quickstart_teacher_max_abs_diff"] = diff;
            Console.WriteLine($"quickstart teacher ({quick.Parameters:N0} parameters): ApplyOnnxModel {test.Count / applySeconds:N0} images/s, TeacherSoftLabels {test.Count / oursSeconds:N0} images/s (medians), speed-up per pair {speedup}, max |diff| {diff:G3} (batch 1: {diffSingle:G3})");

            // 2. A convolutional teacher (> 100k parameters).
            var (convBytes, convParameters) = TinyOnnxModels.ConvClassifier(1, 28, 28, 10, seed: 1);
            string convPath = Path.Combine(work, "conv-teacher.onnx");
            File.WriteAllBytes(convPath, convBytes);
            var pixels = test.Pixels;
            using var raw = new InferenceSession(convPath);
            var rawOutput = new float[Batch * 10];
            void RawBatched()
            {
                for (int start = 0; start < test.Count; start += Batch)
                {
                    int n = Math.Min(Batch, test.Count - start);
                    using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, pixels.AsMemory(start * 784, n * 784), [n, 1, 28, 28]);
                    using var output = raw.Run(new RunOptions(), ["input"], [input], ["logits"]);
                    output[0].GetTensorDataAsSpan<float>().CopyTo(rawOutput);
                }
            }
            var convOptions = new TeacherSoftLabelsOptions
            {
                InputColumnName = "Features", ModelPath = convPath, ClassNames = FashionMnist.ClassNames, BatchSize = Batch,
                Preprocessing = new TeacherPreprocessing { SourceShape = [1, 28, 28], Scale = 1f },
            };
            using var oursConv = ml.Transforms.TeacherSoftLabels(convOptions).Fit(testData);
            var convInput = ml.Transforms.CopyColumns("input", "Features").Fit(testData).Transform(testData);
            var applyConv = ml.Transforms.ApplyOnnxModel(new[] { "logits" }, new[] { "input" }, convPath).Fit(convInput);
            // Raw ONNX Runtime, ours and ApplyOnnxModel in rotation; efficiency = per-round raw seconds / our seconds.
            var convTimes = PairedHarness.Rotate([
                RawBatched,
                () => Materialize(oursConv.Transform(testData), "TeacherLogits"),
                () => Materialize(applyConv.Transform(convInput), "logits"),
            ], repetitions: repetitions ?? 5);
            var convMedians = PairedHarness.Medians(convTimes);
            double rawSeconds = convMedians[0], oursConvSeconds = convMedians[1], applyConvSeconds = convMedians[2];
            var efficiency = PairedHarness.Ratio(convTimes, 0, 1);
            var convSpeedup = PairedHarness.Ratio(convTimes, 2, 1);
            double convDiff = MaxAbsDiff(applyConv.Transform(convInput), "logits", oursConv.Transform(testData), "TeacherLogits");
            results["conv_teacher_parameters"] = convParameters;
            results["conv_raw_ort_images_per_s"] = test.Count / rawSeconds;
            results["conv_teacher_images_per_s"] = test.Count / oursConvSeconds;
            efficiency.WriteTo(results, "conv_efficiency");
            results["conv_applyonnx_images_per_s"] = test.Count / applyConvSeconds;
            convSpeedup.WriteTo(results, "conv_speedup");
            results["conv_max_abs_diff"] = convDiff;
            Console.WriteLine($"conv teacher ({convParameters:N0} parameters): raw ONNX Runtime (batch {Batch}) {test.Count / rawSeconds:N0} images/s, TeacherSoftLabels {test.Count / oursConvSeconds:N0} images/s, ApplyOnnxModel {test.Count / applyConvSeconds:N0} images/s (medians); per round: efficiency {efficiency}, speed-up over ApplyOnnxModel {convSpeedup}; max |diff| {convDiff:G3}");

            // 3. A 3-epoch Fit's teacher side on 10,000 student rows (500 labeled). DualHeadDistill reads its
            //    rows once, so with either transform the teacher runs once per row; the report's ReadSeconds
            //    is that one read, teacher included. The four Fits in rotation, --fits rounds (default 3), a fresh
            //    ONNX Runtime session each; medians, and the per-round ratios ApplyOnnxModel / ours.
            var fitRows = ml.Data.Cache(ml.Data.LoadFromEnumerable(FashionMnistProtocol.Rows(train, split.Labeled, true)
                .Concat(FashionMnistProtocol.Rows(train, split.Unlabeled.Take(9_500), false))));
            Materialize(fitRows, "Features");
            var keys = ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml));
            var trainer = (string column, TeacherOutputKind kind) => ml.MulticlassClassification.Trainers.DualHeadDistill(new DualHeadDistillOptions
            {
                TeacherColumnName = column, TeacherOutput = kind, Backbone = DualHeadBackbone.Mlp, NumberOfEpochs = 3, Seed = 1,
            });
            var quickOptions = new TeacherSoftLabelsOptions
            {
                InputColumnName = "Features", ModelPath = quickPath, ModelInputName = OnnxTeacher.InputName, ModelOutputName = OnnxTeacher.OutputName,
                ClassNames = FashionMnist.ClassNames, BatchSize = Batch,
            };
            var fits = new (string Key, Func<ITransformer> Fit)[]
            {
                ("conv_ours", () => keys.Append(ml.Transforms.TeacherSoftLabels(convOptions)).Append(trainer("TeacherLogits", TeacherOutputKind.Logits)).Fit(fitRows)),
                ("conv_applyonnx", () => keys.Append(ml.Transforms.CopyColumns("input", "Features"))
                    .Append(ml.Transforms.ApplyOnnxModel(new[] { "logits" }, new[] { "input" }, convPath))
                    .Append(trainer("logits", TeacherOutputKind.Logits)).Fit(fitRows)),
                ("quickstart_ours", () => keys.Append(ml.Transforms.TeacherSoftLabels(quickOptions)).Append(trainer("TeacherLogits", TeacherOutputKind.Probabilities)).Fit(fitRows)),
                // An ML.NET-exported model cannot sit in an estimator chain behind ApplyOnnxModel (ML.NET names the
                // output "Score.output" before Fit and "Score" after), so it is fitted first, as the quickstart does.
                ("quickstart_applyonnx", () => keys.Append(trainer(OnnxTeacher.OutputColumn, TeacherOutputKind.Probabilities))
                    .Fit(ml.Transforms.ApplyOnnxModel(new[] { OnnxTeacher.OutputName }, new[] { OnnxTeacher.InputName }, quickPath).Fit(fitRows).Transform(fitRows))),
            };
            results["fit_rows"] = 10_000;
            var reads = fits.Select(_ => new double[fitRounds]).ToArray();
            for (int round = 0; round < fitRounds; round++)
                for (int f = 0; f < fits.Length; f++)
                {
                    var model = ((IEnumerable<ITransformer>)fits[f].Fit()).ToList();
                    var student = (DualHeadDistillTransformer)model[^1];
                    reads[f][round] = student.TrainingReport.ReadSeconds;
                    if (fits[f].Key == "conv_ours")
                        results["fit_teacher_rows_computed_ours"] = ((TeacherSoftLabelsTransformer)model[1]).Statistics.RowsComputed;
                    foreach (var t in model) (t as IDisposable)?.Dispose();
                }
            for (int f = 0; f < fits.Length; f++) results[$"fit_teacher_seconds_{fits[f].Key}"] = Spread.Of(reads[f]).Median;
            var fitConv = PairedHarness.Ratio(reads, 1, 0);
            var fitQuick = PairedHarness.Ratio(reads, 3, 2);
            fitConv.WriteTo(results, "fit_teacher_applyonnx_over_ours_conv");
            fitQuick.WriteTo(results, "fit_teacher_applyonnx_over_ours_quickstart");
            results["fit_teacher_seconds_ours"] = results["fit_teacher_seconds_conv_ours"];
            results["fit_teacher_seconds_applyonnx"] = results["fit_teacher_seconds_conv_applyonnx"];
            Console.WriteLine($"3-epoch Fit on 10,000 rows, teacher side (the Fit's one read of the rows, medians of {fitRounds}): conv teacher {results["fit_teacher_seconds_conv_ours"]:0.00}s with TeacherSoftLabels vs {results["fit_teacher_seconds_conv_applyonnx"]:0.00}s with ApplyOnnxModel (ApplyOnnxModel/ours per round {fitConv}); quickstart teacher {results["fit_teacher_seconds_quickstart_ours"]:0.00}s vs {results["fit_teacher_seconds_quickstart_applyonnx"]:0.00}s ({fitQuick}); teacher rows computed {results["fit_teacher_rows_computed_ours"]}");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
        return results;
    }

    private static string? Arg(string[] args, string name) => BenchArgs.Value(args, name);

    /// <summary>Reads every value of a float-vector column (the work a trainer's single pass does).</summary>
    private static void Materialize(IDataView data, string column)
    {
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor([col]);
        var getter = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> value = default;
        while (cursor.MoveNext()) getter(ref value);
    }

    private static double MaxAbsDiff(IDataView a, string columnA, IDataView b, string columnB)
    {
        var x = a.GetColumn<float[]>(columnA).ToArray();
        var y = b.GetColumn<float[]>(columnB).ToArray();
        double max = 0;
        for (int i = 0; i < x.Length; i++) for (int k = 0; k < x[i].Length; k++) max = Math.Max(max, Math.Abs(x[i][k] - y[i][k]));
        return max;
    }
}
