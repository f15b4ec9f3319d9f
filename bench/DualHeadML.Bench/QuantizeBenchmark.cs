using System.Diagnostics;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Export.Quantization;
using Microsoft.ML.DualHeadDistillation.Students.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace DualHeadML.Bench;

/// <summary>
/// int8 against fp32 for students distilled (DualHead, the library's alpha/beta) on the paper protocol (F = 0.01 by
/// default): the int8 graph calibrated on 512 training rows and checked on the 200 validation rows
/// (<c>ExportToOnnx(path, Int8)</c>, MaxAccuracyDrop 1 point: a refused student is reported as such), then on the test
/// rows: accuracy of both graphs and the share of rows whose class agrees; file sizes; and ONNX Runtime's speed (CPU,
/// default threads) at batch 64 and at batch 1, fp32 and int8 timed in alternation (A B A B), the median of the
/// per-pair ratios with its spread. The students read 1x28x28 (small_cnn) or the grey image in three channels, 3x28x28
/// (torchvision students from scratch, ImageNet stem), or upscaled to 3 x S x S with --size S (resnet18_imagenet: the
/// ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18 as an OnnxCnn student, fine-tuned by DHO; --size 64 or more).
/// </summary>
internal static class QuantizeBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        var protocol = PaperProtocol.Load(args);
        using var data = protocol.PrepareData([]);
        var ml = protocol.Ml;
        string[] students = (BenchArgs.Value(args, "--students") ?? "small_cnn,resnet18,mobilenet_v3_small").Split(',');
        int repetitions = BenchArgs.Int(args, "--repetitions", 7, 1), testRows = BenchArgs.Int(args, "--test", 2000, 64);
        var method = Enum.Parse<DualHeadCalibrationMethod>(BenchArgs.Value(args, "--calibration-method") ?? nameof(DualHeadCalibrationMethod.Percentile), ignoreCase: true);
        bool firstConv = !BenchArgs.Has(args, "--first-conv-fp32");
        // --size S: the RGB students read the 28x28 images upscaled to S x S (bilinear, as torchvision resizes).
        int size = BenchArgs.Int(args, "--size", 28, 28);
        var flags = File.ReadAllText("/proc/cpuinfo").Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries).Where(f => f is "avx2" or "avx512_vnni" or "avx512_bf16" or "amx_int8" or "avx_vnni").Distinct().Order().ToArray();
        Console.WriteLine($"CPU flags: {string.Join(", ", flags)}; {Environment.ProcessorCount} cores");
        var results = new List<Dictionary<string, object>>();
        foreach (string name in students)
        {
            var (backbone, rgb) = name switch
            {
                "small_cnn" => (DualHeadBackbone.SmallCnn, false),
                "resnet18" => (DualHeadBackbone.FromName("ResNet18"), true),
                "resnet18_imagenet" => (DualHeadBackbone.FromName("OnnxCnn"), true),
                "mobilenet_v3_small" => (DualHeadBackbone.FromName("MobileNetV3Small"), true),
                "mobilenet_v2" => (DualHeadBackbone.FromName("MobileNetV2"), true),
                _ => throw new ArgumentException($"--students: unknown '{name}' (small_cnn, resnet18, resnet18_imagenet, mobilenet_v3_small, mobilenet_v2)."),
            };
            IDataView View(IDataView v) => !rgb ? v : size == 28 ? ml.Transforms.Concatenate("Rgb", "Features", "Features", "Features").Fit(v).Transform(v) : Upscaled(ml, v, size);
            var watch = Stopwatch.StartNew();
            using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(new DualHeadDistillOptions
            {
                FeatureColumnName = rgb ? "Rgb" : "Features", TeacherColumnName = "Teacher", TeacherOutput = data.TeacherKind, Backbone = backbone,
                ImageShape = rgb ? [3, size, size] : [1, 28, 28], NumberOfEpochs = protocol.Epochs, Seed = 1,
                // The ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18, fine-tuned at lr 0.0003 (what the search kept for it at 64 px).
                BackboneSettings = name == "resnet18_imagenet" ? new(DnnImageFeaturizerResNet18.BackboneSettings(StudentTeachers.DnnImageModels)) : null,
                LearningRate = name == "resnet18_imagenet" ? 0.0003f : DualHeadDefaults.LearningRate,
            }).Fit(View(data.TrainData), View(data.Validation));
            double trainSeconds = watch.Elapsed.TotalSeconds;
            string dir = Path.Combine(Path.GetTempPath(), $"dualhead-bench-quantize-{Environment.ProcessId}");
            Directory.CreateDirectory(dir);
            string fp32Path = Path.Combine(dir, $"{name}.onnx"), int8Path = Path.Combine(dir, $"{name}.int8.onnx");
            model.ExportToOnnx(fp32Path);
            var row = new Dictionary<string, object> { ["student"] = name, ["train_seconds"] = trainSeconds, ["calibration_method"] = method.ToString(), ["first_convolution"] = firstConv ? "int8" : "fp32", ["image_size"] = rgb ? size : 28 };
            var int8Options = new StudentExportOptions
            {
                Quantization = DualHeadQuantization.Int8, CalibrationData = View(data.TrainData), ValidationData = View(data.Validation),
                Int8 = new DualHeadQuantizationOptions { CalibrationMethod = method, QuantizeFirstConvolution = firstConv },
            };
            StudentExportResult export;
            try
            {
                export = model.ExportToOnnx(int8Path, int8Options);
            }
            catch (InvalidOperationException e)
            {
                Console.WriteLine($"[{name}] refused: {e.Message}");
                row["refused"] = e.Message;
                export = model.ExportToOnnx(int8Path, int8Options with { AllowAccuracyDrop = true });
            }
            byte[] fp32 = File.ReadAllBytes(fp32Path), int8 = File.ReadAllBytes(int8Path);
            var test = View(data.TestData).GetColumn<float[]>(rgb ? "Rgb" : "Features").Take(testRows).ToArray();
            var labels = data.TestLabels.Take(test.Length).ToArray();
            long[] a = Int8Export.Predict(fp32, test, default), b = Int8Export.Predict(int8, test, default);
            double Accuracy(long[] p) => p.Where((c, i) => c == labels[i]).Count() / (double)labels.Length;
            row["fp32_accuracy"] = Accuracy(a);
            row["int8_accuracy"] = Accuracy(b);
            row["agreement"] = a.Zip(b).Count(p => p.First == p.Second) / (double)a.Length;
            row["validation_fp32_accuracy"] = export.Fp32Accuracy;
            row["validation_int8_accuracy"] = export.Int8Accuracy;
            row["fp32_bytes"] = fp32.Length;
            row["int8_bytes"] = int8.Length;
            row["size_ratio"] = int8.Length / (double)fp32.Length;

            string? keep = BenchArgs.Value(args, "--keep");
            if (keep is not null) Directory.CreateDirectory(keep);
            InferenceSession Session(byte[] graph, string file)
            {
                using var options = new SessionOptions();
                if (keep is not null)
                {
                    File.WriteAllBytes(Path.Combine(keep, file), graph);
                    options.OptimizedModelFilePath = Path.Combine(keep, Path.ChangeExtension(file, ".optimized.onnx"));
                }
                return new InferenceSession(graph, options);
            }
            using var fp32Session = Session(fp32, $"{name}.onnx");
            using var int8Session = Session(int8, $"{name}.int8.onnx");
            string input = fp32Session.InputMetadata.Keys.Single();
            int d = test[0].Length;
            var batch = test.Take(64).SelectMany(r => r).ToArray();
            using var runOptions = new RunOptions();
            void Score(InferenceSession s, float[] x, int n, int times)
            {
                for (int t = 0; t < times; t++)
                {
                    using var value = OrtValue.CreateTensorValueFromMemory(x, [n, d]);
                    using var o = s.Run(runOptions, [input], [value], [Microsoft.ML.DualHeadDistillation.Export.StudentOnnxExporter.PredictedIndexOutput]);
                }
            }
            var one = test[0].ToArray();
            const int batches = 20, singles = 200;
            var b64 = PairedHarness.Compare(() => Score(fp32Session, batch, 64, batches), () => Score(int8Session, batch, 64, batches), warmups: 1, repetitions);
            var b1 = PairedHarness.Compare(() => Score(fp32Session, one, 1, singles), () => Score(int8Session, one, 1, singles), warmups: 1, repetitions);
            row["fp32_images_per_s_batch64"] = 64 * batches / b64.A;
            row["int8_images_per_s_batch64"] = 64 * batches / b64.B;
            row["speedup_batch64"] = Spread(b64.AOverB);
            row["fp32_ms_per_image_batch1"] = b1.A / singles * 1000;
            row["int8_ms_per_image_batch1"] = b1.B / singles * 1000;
            row["speedup_batch1"] = Spread(b1.AOverB);
            Console.WriteLine(FormattableString.Invariant(
                $"[{name}] test accuracy fp32 {(double)row["fp32_accuracy"]:P2}, int8 {(double)row["int8_accuracy"]:P2}, agreement {(double)row["agreement"]:P2}; size {fp32.Length / 1e6:0.00} -> {int8.Length / 1e6:0.00} MB ({(double)row["size_ratio"]:0.000}x); batch 64: {(double)row["fp32_images_per_s_batch64"]:0} -> {(double)row["int8_images_per_s_batch64"]:0} images/s ({b64.AOverB.Median:0.00}x, {b64.AOverB.Min:0.00}-{b64.AOverB.Max:0.00}); batch 1: {(double)row["fp32_ms_per_image_batch1"]:0.000} -> {(double)row["int8_ms_per_image_batch1"]:0.000} ms ({b1.AOverB.Median:0.00}x, {b1.AOverB.Min:0.00}-{b1.AOverB.Max:0.00})"));
            results.Add(row);
            Directory.Delete(dir, recursive: true);
        }
        return new Dictionary<string, object> { ["cpu_flags"] = flags, ["cores"] = Environment.ProcessorCount, ["fraction"] = protocol.Fraction, ["epochs"] = protocol.Epochs, ["unlabeled_rows"] = protocol.Split.Unlabeled.Length, ["students"] = results };
    }

    private sealed class GreyRow { public float[] Features = []; }
    private sealed class RgbRow { public float[] Rgb = []; }

    /// <summary>Adds column Rgb: column Features (28x28 grey) as a 3 x size x size image.</summary>
    private static IDataView Upscaled(MLContext ml, IDataView view, int size)
    {
        var input = SchemaDefinition.Create(typeof(GreyRow));
        input[nameof(GreyRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 784);
        var output = SchemaDefinition.Create(typeof(RgbRow));
        output[nameof(RgbRow.Rgb)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3 * size * size);
        var mapping = ml.Transforms.CustomMapping<GreyRow, RgbRow>((g, r) => r.Rgb = GreyImages.ToRgb(g.Features, size), contractName: null, input, output);
        return ml.Data.Cache(mapping.Fit(view).Transform(view));
    }

    private static Dictionary<string, double> Spread(Spread s) => new() { ["median"] = s.Median, ["min"] = s.Min, ["q1"] = s.Q1, ["q3"] = s.Q3, ["max"] = s.Max };
}
