using System.IO.Compression;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace DualHeadML.Bench;

/// <summary>
/// Inference of the quickstart's student (SmallCnn, 3 epochs, 500 labels + 49,500 unlabeled) on the 10,000
/// Fashion-MNIST test images: in-process Transform (batched ONNX Runtime) against plain batched ONNX Runtime
/// on the exported graph; the saved-and-reloaded model (ML.NET's OnnxTransformer, one row per call) against
/// ML.NET's ApplyOnnxModel on the very graph stored in the zip; PredictionEngine before and after reload;
/// and the numbers: reload difference (must be 0) and ONNX-vs-TorchSharp difference.
/// </summary>
internal static class InferenceBenchmark
{
    private const int Batch = 256;

    public static Dictionary<string, object> Run(string[] args)
    {
        int epochs = int.Parse(Arg(args, "--epochs") ?? "3", System.Globalization.CultureInfo.InvariantCulture);
        var ml = new MLContext(seed: 1);
        string dir = FashionMnist.Locate();
        var train = FashionMnist.Load(dir, train: true);
        var test = FashionMnist.Load(dir, train: false);
        var split = FashionMnistProtocol.Split(train, poolSize: 10_000, labeledPerClass: 50);
        var work = Path.Combine(Path.GetTempPath(), "dualhead-bench-inference-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        var results = new Dictionary<string, object> { ["test_images"] = test.Count, ["batch_size"] = Batch, ["cpu_threads"] = Environment.ProcessorCount, ["epochs"] = epochs };
        try
        {
            // The quickstart's teacher and student (same split, options and seed).
            var teacher = OnnxTeacher.Train(ml, train, split.TeacherPool);
            string teacherPath = Path.Combine(work, "teacher.onnx");
            File.WriteAllBytes(teacherPath, teacher.Onnx);
            var keys = ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml));
            var studentData = ml.Data.LoadFromEnumerable(FashionMnistProtocol.StudentRows(train, split));
            var pipeline = keys.Append(ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
            {
                InputColumnName = "Features", OutputColumnName = "TeacherProbabilities", ModelPath = teacherPath,
                ModelInputName = OnnxTeacher.InputName, ModelOutputName = OnnxTeacher.OutputName, ClassNames = FashionMnist.ClassNames, BatchSize = Batch,
            })).Append(ml.MulticlassClassification.Trainers.DualHeadDistill(new DualHeadDistillOptions
            {
                TeacherColumnName = "TeacherProbabilities", TeacherOutput = TeacherOutputKind.Probabilities,
                Backbone = DualHeadBackbone.SmallCnn, ImageShape = [1, 28, 28], NumberOfEpochs = epochs, Seed = 1,
                InputPreprocessing = new TeacherPreprocessing { CropHeight = 28, CropWidth = 28, Scale = 1f / 255f },
            }));
            Console.WriteLine($"Training the quickstart's student ({epochs} epochs)...");
            var model = pipeline.Fit(studentData);
            using var student = model.LastTransformer;
            results["teacher_parameters"] = teacher.Parameters;
            results["student_parameters"] = student.StudentParameters;

            var rows = FashionMnistProtocol.Rows(test, Enumerable.Range(0, test.Count), labeled: true).ToList();
            var rawTest = ml.Data.Cache(ml.Data.LoadFromEnumerable(rows)); // Label as text: the saved pipeline starts with MapValueToKey
            var testData = ml.Data.Cache(keys.Fit(studentData).Transform(rawTest));
            Materialize(testData, "Features");
            Materialize(rawTest, "Features");
            var x = test.Pixels;
            int n = test.Count, d = 784, k = student.ClassNames.Count;

            // 1. The exported graph through plain ONNX Runtime vs TorchSharp.
            string onnxPath = Path.Combine(work, "student.onnx");
            student.ExportToOnnx(onnxPath);
            results["student_onnx_bytes"] = new FileInfo(onnxPath).Length;
            using var session = new InferenceSession(onnxPath);
            string[] outputs = [DualHeadColumns.Score, DualHeadColumns.CeHeadProbabilities, DualHeadColumns.KdHeadProbabilities, "PredictedLabelIndex"];
            var rawScore = new float[n * k];
            void RawBatched()
            {
                var (s, c, kd, p) = (new float[Batch * k], new float[Batch * k], new float[Batch * k], new long[Batch]);
                for (int start = 0; start < n; start += Batch)
                {
                    int m = Math.Min(Batch, n - start);
                    var info = OrtMemoryInfo.DefaultInstance;
                    using var input = OrtValue.CreateTensorValueFromMemory(info, x.AsMemory(start * d, m * d), [m, d]);
                    using var o1 = OrtValue.CreateTensorValueFromMemory(info, s.AsMemory(0, m * k), [m, k]);
                    using var o2 = OrtValue.CreateTensorValueFromMemory(info, c.AsMemory(0, m * k), [m, k]);
                    using var o3 = OrtValue.CreateTensorValueFromMemory(info, kd.AsMemory(0, m * k), [m, k]);
                    using var o4 = OrtValue.CreateTensorValueFromMemory(info, p.AsMemory(0, m), [m]);
                    using var run = new RunOptions();
                    session.Run(run, ["Features"], [input], outputs, [o1, o2, o3, o4]);
                    s.AsSpan(0, m * k).CopyTo(rawScore.AsSpan(start * k));
                }
            }
            RawBatched();
            results["onnx_max_abs_diff"] = MaxDiffAgainstTorchSharp(student, x, n, rawScore);

            // 2. In-process Transform (batched ONNX Runtime) vs plain batched ONNX Runtime.
            // Alternated; the ratio is the median of the per-pair ratios raw seconds / Transform seconds.
            var (rawSeconds, transformSeconds, transformVsRaw) = PairedHarness.Compare(RawBatched, () => Materialize(student.Transform(testData), "Score", "PredictedLabel"), repetitions: 9);
            results["transform_images_per_s"] = n / transformSeconds;
            results["raw_ort_batched_images_per_s"] = n / rawSeconds;
            transformVsRaw.WriteTo(results, "transform_vs_raw_ort");
            Console.WriteLine($"Transform {n / transformSeconds:N0} images/s; plain batched ONNX Runtime {n / rawSeconds:N0} images/s (medians); per pair {transformVsRaw}x");

            // 3. Save and reload (fresh MLContext); ApplyOnnxModel on the graph stored in the zip.
            string zipPath = Path.Combine(work, "model.zip");
            ml.Model.Save(model, studentData.Schema, zipPath);
            results["model_zip_bytes"] = new FileInfo(zipPath).Length;
            var fresh = new MLContext(seed: 2);
            var reloaded = fresh.Model.Load(zipPath, out _);
            var before = student.Transform(testData).GetColumn<float[]>("Score").ToArray();
            var reloadedScored = reloaded.Transform(rawTest);
            var after = reloadedScored.GetColumn<float[]>("Score").ToArray();
            double reloadDiff = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < k; j++) reloadDiff = Math.Max(reloadDiff, Math.Abs(before[i][j] - after[i][j]));
            results["reload_max_abs_diff"] = reloadDiff;
            bool sameLabels = student.Transform(testData).GetColumn<uint>("PredictedLabel").SequenceEqual(reloadedScored.GetColumn<uint>("PredictedLabel"));
            results["reload_predicted_labels_identical"] = sameLabels;
            Console.WriteLine($"Reloaded in a fresh MLContext: max |Score difference| {reloadDiff}, PredictedLabel identical: {sameLabels}");

            string storedGraph = Path.Combine(work, "stored.onnx");
            File.WriteAllBytes(storedGraph, StoredOnnxGraph(zipPath));
            var applyOnnx = fresh.Transforms.ApplyOnnxModel(["Score"], ["Features"], storedGraph).Fit(testData);
            var reloadedStudentOnly = ReloadStudentOnly(fresh, student, testData.Schema, work);
            // Both run one row per ONNX Runtime call, so their times drift together with the machine; alternate them
            // and also report the median of the per-pair ratios.
            // Many short alternated runs (2,000 images each) so that the machine's drift hits both alike.
            const int rowRuns = 2_000;
            var subset = ml.Data.Cache(ml.Data.TakeRows(testData, rowRuns));
            Materialize(subset, "Features");
            var applyWithIndex = fresh.Transforms.ApplyOnnxModel(["Score", "PredictedLabel"], ["Features"], storedGraph).Fit(testData);
            // Row-at-a-time paths are noisy here (ML.NET's parallel cursors and ONNX Runtime's threads share 2 cores):
            // 41 short runs of 2,000 images each, the workloads in rotation, medians.
            var rotationTimes = PairedHarness.Rotate([
                () => Materialize(applyOnnx.Transform(subset), "Score"),
                () => Materialize(applyWithIndex.Transform(subset), "Score", "PredictedLabel"),
                () => Materialize(reloadedStudentOnly.Transform(subset), "Score"),
                () => Materialize(reloadedStudentOnly.Transform(subset), "Score", "PredictedLabel"),
            ], warmups: 2, repetitions: 41);
            var rotation = PairedHarness.Medians(rotationTimes);
            double applySeconds = rotation[0], reloadedSeconds = rotation[3];
            var reloadedVsApply = PairedHarness.Ratio(rotationTimes, 0, 3);
            var reloadedVsApplySame = PairedHarness.Ratio(rotationTimes, 1, 3);
            results["applyonnx_images_per_s"] = rowRuns / applySeconds;
            results["applyonnx_score_and_index_images_per_s"] = rowRuns / rotation[1];
            results["reloaded_transform_score_only_images_per_s"] = rowRuns / rotation[2];
            results["reloaded_transform_images_per_s"] = rowRuns / reloadedSeconds;
            reloadedVsApply.WriteTo(results, "reloaded_vs_applyonnx");
            reloadedVsApplySame.WriteTo(results, "reloaded_vs_applyonnx_same_outputs");
            Console.WriteLine($"Reloaded Transform (Score + key PredictedLabel) {rowRuns / reloadedSeconds:N0} images/s; ApplyOnnxModel on the same graph: Score {rowRuns / applySeconds:N0} images/s (per round {reloadedVsApply}x), Score + class index {rowRuns / rotation[1]:N0} images/s ({reloadedVsApplySame}x); reloaded, Score only {rowRuns / rotation[2]:N0} images/s");

            // 4. PredictionEngine, one image per call, before and after reload.
            var sample = rows.Take(2_000).Select(r => new ImageRow { Label = "", Features = r.Features }).ToArray();
            var engine = ml.Model.CreatePredictionEngine<ImageRow, Prediction>(student);
            var reloadedEngine = fresh.Model.CreatePredictionEngine<ImageRow, Prediction>(reloaded);
            var (engineSeconds, reloadedEngineSeconds, _) = PairedHarness.Compare(
                () => { foreach (var r in sample) engine.Predict(r); },
                () => { foreach (var r in sample) reloadedEngine.Predict(r); }, repetitions: 7);
            results["prediction_engine_images_per_s"] = sample.Length / engineSeconds;
            results["reloaded_prediction_engine_images_per_s"] = sample.Length / reloadedEngineSeconds;
            bool engineSame = sample.Take(200).All(r => engine.Predict(r).Score.SequenceEqual(reloadedEngine.Predict(r).Score));
            results["prediction_engine_identical_after_reload"] = engineSame;
            Console.WriteLine($"PredictionEngine {sample.Length / engineSeconds:N0} images/s; after reload {sample.Length / reloadedEngineSeconds:N0} images/s; identical: {engineSame}");
            Console.WriteLine($"Student {student.StudentParameters:N0} parameters, ONNX {results["student_onnx_bytes"]:N0} bytes; teacher {teacher.Parameters:N0} parameters; ONNX vs TorchSharp max |diff| {results["onnx_max_abs_diff"]:E2}");
            return results;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The student alone, saved and reloaded (the model without MapValueToKey in front), for timing.</summary>
    private static ITransformer ReloadStudentOnly(MLContext fresh, DualHeadDistillTransformer student, DataViewSchema schema, string work)
    {
        string path = Path.Combine(work, "student-only.zip");
        fresh.Model.Save(student, schema, path);
        return fresh.Model.Load(path, out _);
    }

    /// <summary>The ONNX bytes ML.NET stored in the zip (entry ".../OnnxModel": int32 length, then the model).</summary>
    private static byte[] StoredOnnxGraph(string zipPath)
    {
        using var zip = ZipFile.OpenRead(zipPath);
        var entry = zip.Entries.Single(e => e.FullName.EndsWith("OnnxModel", StringComparison.Ordinal));
        using var reader = new BinaryReader(entry.Open());
        int length = reader.ReadInt32();
        return reader.ReadBytes(length);
    }

    private static double MaxDiffAgainstTorchSharp(DualHeadDistillTransformer model, float[] x, int n, float[] onnxScore)
    {
        int k = model.ClassNames.Count, d = 784;
        var (pCe, pKd, p) = (new float[k], new float[k], new float[k]);
        double max = 0;
        model.Student.eval();
        for (int start = 0; start < n; start += Batch)
        {
            int m = Math.Min(Batch, n - start);
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var (ce, kd) = model.Student.forward(tensor(x.AsSpan(start * d, m * d).ToArray(), [m, d]));
            var ceLogits = ce.data<float>().ToArray();
            var kdLogits = kd.data<float>().ToArray();
            for (int i = 0; i < m; i++)
            {
                HeadCombiner.Combine(ceLogits.AsSpan(i * k, k), kdLogits.AsSpan(i * k, k), model.Alpha, model.Beta, pCe, pKd, p);
                for (int j = 0; j < k; j++) max = Math.Max(max, Math.Abs(p[j] - onnxScore[(start + i) * k + j]));
            }
        }
        return max;
    }

    private static void Materialize(IDataView data, params string[] columns)
    {
        var cols = columns.Select(c => data.Schema[c]).ToArray();
        using var cursor = data.GetRowCursor(cols);
        var getters = cols.Select<DataViewSchema.Column, Action>(c => c.Type switch
        {
            VectorDataViewType { ItemType: TextDataViewType } => Reader<VBuffer<ReadOnlyMemory<char>>>(cursor, c),
            VectorDataViewType { ItemType.RawType: var raw } when raw == typeof(long) => Reader<VBuffer<long>>(cursor, c),
            VectorDataViewType => Reader<VBuffer<float>>(cursor, c),
            KeyDataViewType => Reader<uint>(cursor, c),
            _ => Reader<ReadOnlyMemory<char>>(cursor, c),
        }).ToArray();
        while (cursor.MoveNext()) foreach (var g in getters) g();
    }

    private static Action Reader<T>(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        var getter = cursor.GetGetter<T>(column);
        T value = default!;
        return () => getter(ref value);
    }

    private static string? Arg(string[] args, string name) => BenchArgs.Value(args, name);

    public sealed class Prediction
    {
        public float[] Score { get; set; } = [];
        public uint PredictedLabel { get; set; }
    }
}
