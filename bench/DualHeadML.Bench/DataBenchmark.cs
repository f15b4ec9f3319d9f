using System.Diagnostics;
using System.Globalization;
using DualHeadML.Samples.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Teachers;
using SkiaSharp;

namespace DualHeadML.Bench;

/// <summary>
/// The image data path at scale (issue 11): a generated set of N 64x64 RGB images (encoded BMP bytes, one
/// distinct image per row, made on the fly so the set is never in memory) and a folder of real PNG/JPEG files
/// written from Fashion-MNIST. Measures the sample store's build rate, the peak RSS of a Fit over N rows,
/// and Fit ms/step with augmentation against the bare TorchSharp step of the same student on the same shapes
/// (interleaved A B C A B C), and with SameCropOnline (its teacher time shown separately).
/// </summary>
internal static class DataBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        long rows = long.Parse(BenchArgs.Value(args, "--rows") ?? "1000000", CultureInfo.InvariantCulture);
        int steps = int.Parse(BenchArgs.Value(args, "--steps") ?? "40", CultureInfo.InvariantCulture);
        int rounds = int.Parse(BenchArgs.Value(args, "--rounds") ?? "3", CultureInfo.InvariantCulture);
        int folderImages = int.Parse(BenchArgs.Value(args, "--folder-images") ?? "20000", CultureInfo.InvariantCulture);
        string work = BenchArgs.Value(args, "--work") ?? Path.Combine(Path.GetTempPath(), "dualhead-data-bench");
        Directory.CreateDirectory(work);
        string storeFolder = Path.Combine(work, "stores");
        // A fresh build is measured unless --reuse-store (re-measuring the steps on a store already built).
        if (!BenchArgs.Has(args, "--reuse-store") && Directory.Exists(storeFolder)) Directory.Delete(storeFolder, recursive: true);
        Directory.CreateDirectory(storeFolder);
        var results = new Dictionary<string, object> { ["rows"] = rows, ["steps_per_fit"] = steps, ["rounds"] = rounds, ["processors"] = Environment.ProcessorCount };
        var ml = new MLContext(seed: 1);
        var data = Generated(ml, rows);

        // 1. The store over N generated rows, then one Fit on it: peak RSS covers both.
        var build = Stopwatch.StartNew();
        using (var first = ml.MulticlassClassification.Trainers.DualHeadDistill(Options(storeFolder, steps)).Fit(data))
        {
            results["store_build_seconds"] = build.Elapsed.TotalSeconds;
            results["store_images_per_s"] = first.TrainingReport.StoreImagesPerSecond;
            results["store_file"] = first.TrainingReport.SampleStore ?? "";
            results["store_mb"] = new FileInfo(first.TrainingReport.SampleStore!).Length / 1e6;
            results["first_fit_ms_per_step"] = first.TrainingReport.MeanStepMilliseconds;
        }
        results["peak_rss_mb"] = PeakRssMegabytes();
        Console.WriteLine(FormattableString.Invariant($"store: {rows} rows at {results["store_images_per_s"]:0} images/s ({results["store_mb"]:0} MB); peak RSS {results["peak_rss_mb"]:0} MB"));

        // 2. Interleaved: Fit with augmentation (the store reused), the bare step, Fit with SameCropOnline.
        using var teacher = Teacher(ml, work);
        var fit = new List<double>();
        var bare = new List<double>();
        var online = new List<double>();
        var teacherMs = new List<double>();
        var wait = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            using (var m = ml.MulticlassClassification.Trainers.DualHeadDistill(Options(storeFolder, steps)).Fit(data))
            {
                fit.Add(m.TrainingReport.MeanStepMilliseconds);
                wait.Add(1000 * m.TrainingReport.DataWaitSeconds / m.TrainingReport.TotalSteps);
                if (r == 0) results["store_reused"] = m.TrainingReport.StoreReused;
            }
            using (var m = ml.MulticlassClassification.Trainers.DualHeadDistill(Bare(Options(storeFolder, steps))).Fit(data))
                bare.Add(m.TrainingReport.MeanStepMilliseconds);
            var o = Options(storeFolder, steps);
            o.Teacher = teacher;
            o.TeacherView = DualHeadTeacherView.SameCropOnline;
            using (var m = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data))
            {
                online.Add(m.TrainingReport.MeanStepMilliseconds);
                teacherMs.Add(1000 * m.TrainingReport.TeacherSeconds / m.TrainingReport.TotalSteps);
            }
            Console.WriteLine(FormattableString.Invariant($"round {r + 1}: Fit {fit[^1]:0.0} ms/step (waited {wait[^1]:0.00}), bare {bare[^1]:0.0}, SameCropOnline {online[^1]:0.0} (teacher {teacherMs[^1]:0.0})"));
        }
        Spread.Of(fit).WriteTo(results, "fit_ms_per_step");
        Spread.Of(bare).WriteTo(results, "bare_ms_per_step");
        Spread.Of(online).WriteTo(results, "same_crop_online_ms_per_step");
        Spread.Of(teacherMs).WriteTo(results, "same_crop_online_teacher_ms_per_step");
        Spread.Of(wait).WriteTo(results, "fit_data_wait_ms_per_step");
        Spread.Of(fit.Zip(bare, (f, b) => f / b)).WriteTo(results, "fit_over_bare");
        Spread.Of(online.Zip(bare, (f, b) => f / b)).WriteTo(results, "same_crop_online_over_bare");
        Console.WriteLine($"Fit / bare step: {Spread.Of(fit.Zip(bare, (f, b) => f / b))} (goal <= 1.05)");

        // 3. A folder of real PNG/JPEG files from Fashion-MNIST, read with LoadImages.
        if (folderImages > 0)
        {
            string folder = Path.Combine(work, "fashion-mnist-images");
            var files = WriteFashionMnistFolder(folder, folderImages);
            var view = ml.Data.LoadFromEnumerable(files);
            var keys = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new KeyRow { Label = n }));
            var keyed = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys).Fit(view).Transform(view);
            var images = ml.Transforms.LoadImages("Image", folder, "Path").Fit(keyed).Transform(keyed);
            var o = new DualHeadDistillOptions
            {
                FeatureColumnName = "Image", ImageShape = [1, 28, 28], ImageStorageSize = 32, Objective = DualHeadTrainingMode.SupervisedOnly,
                NumberOfEpochs = 1, BatchSourceSettings = new() { ["max_steps"] = "5" }, Seed = 1,
            };
            using var m = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(images);
            results["folder_images"] = folderImages;
            results["folder_store_images_per_s"] = m.TrainingReport.StoreImagesPerSecond;
            Console.WriteLine(FormattableString.Invariant($"folder: {folderImages} PNG/JPEG files stored at {m.TrainingReport.StoreImagesPerSecond:0} images/s"));
        }
        return results;
    }

    private static DualHeadDistillOptions Options(string storeFolder, int steps) => new()
    {
        FeatureColumnName = "Image",
        ImageShape = [3, 64, 64],
        ImageStorageSize = 64,
        ImageStoreFolder = storeFolder,
        Augmentation = ImageAugmentation.Default,
        NumberOfEpochs = 1,
        BatchSourceSettings = new() { ["max_steps"] = steps.ToString(CultureInfo.InvariantCulture) },
        Seed = 1,
    };

    /// <summary>A SmallCnn-sized teacher for 64x64 RGB (random weights: only its cost matters here).</summary>
    private static TeacherSoftLabelsTransformer Teacher(MLContext ml, string work)
    {
        string path = Path.Combine(work, "teacher-64.onnx");
        File.WriteAllBytes(path, TinyOnnxModels.ConvClassifier(3, 64, 64, Classes, seed: 3, hidden: 64).Onnx);
        var schemaOnly = ml.Data.LoadFromEnumerable(new[] { new ImageRow { Image = MLImage.CreateFromPixels(64, 64, MLPixelFormat.Bgra32, new byte[64 * 64 * 4]) } });
        return ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
        {
            ModelPath = path,
            InputColumnName = "Image",
            ClassNames = Enumerable.Range(0, Classes).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray(), // the label key has no names: classes are "0".."9"
            Preprocessing = new TeacherPreprocessing { ResizeShorterSide = 64, CropHeight = 64, CropWidth = 64, Scale = 1f / 255f },
        }).Fit(schemaOnly);
    }

    private const int Classes = 10;

    private sealed class ImageRow
    {
        [Microsoft.ML.Transforms.Image.ImageType(64, 64)] public MLImage? Image { get; set; }
    }

    private sealed class KeyRow { public string Label { get; set; } = ""; }

    private sealed class GeneratedRow
    {
        [KeyType(Classes)] public uint Label { get; set; }
        public byte[] Image { get; set; } = [];
        [VectorType(Classes)] public float[] TeacherLogits { get; set; } = [];
    }

    /// <summary>N rows made on the fly: 1 % labeled; each image a 64x64 24-bit BMP whose colours and stripes follow its class and row.</summary>
    private static IDataView Generated(MLContext ml, long rows) => ml.Data.LoadFromEnumerable(Rows(rows));

    private static IEnumerable<GeneratedRow> Rows(long rows)
    {
        const int side = 64;
        int stride = side * 3;
        var header = BmpHeader(side, side);
        for (long i = 0; i < rows; i++)
        {
            int c = (int)(i * 2654435761L % Classes);
            var bytes = new byte[header.Length + stride * side];
            header.CopyTo(bytes, 0);
            uint state = (uint)(i * 747796405L + 2891336453L);
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++)
                {
                    state = state * 1664525 + 1013904223;
                    byte noise = (byte)(state >> 27);
                    bool stripe = ((x * (c + 1) + y * (Classes - c)) / 6) % 2 == 0;
                    int o = header.Length + y * stride + x * 3;
                    bytes[o] = (byte)(stripe ? 40 * (c % 5) + noise : noise);     // B
                    bytes[o + 1] = (byte)(stripe ? 200 - 15 * c + noise : noise);  // G
                    bytes[o + 2] = (byte)(stripe ? 25 * c + noise : 30 + noise);   // R
                }
            var t = new float[Classes];
            t[c] = 3f;
            yield return new GeneratedRow { Label = i % 100 == 0 ? (uint)c + 1 : 0, Image = bytes, TeacherLogits = t };
        }
    }

    private static byte[] BmpHeader(int width, int height)
    {
        var h = new byte[54];
        int size = 54 + width * height * 3;
        void I32(int at, int v) => BitConverter.GetBytes(v).CopyTo(h, at);
        h[0] = (byte)'B';
        h[1] = (byte)'M';
        I32(2, size);
        I32(10, 54);
        I32(14, 40);
        I32(18, width);
        I32(22, -height); // top-down rows
        h[26] = 1;
        h[28] = 24;
        I32(34, width * height * 3);
        return h;
    }

    private sealed class FileRow
    {
        public string Label { get; set; } = "";
        public string Path { get; set; } = "";
    }

    /// <summary>The first N Fashion-MNIST training images as files (every fifth a JPEG); 1 % keep their label.</summary>
    private static List<FileRow> WriteFashionMnistFolder(string folder, int count)
    {
        Directory.CreateDirectory(folder);
        var split = FashionMnist.Load(FashionMnist.Locate(allowDownload: false), train: true);
        var rows = new List<FileRow>();
        for (int i = 0; i < Math.Min(count, split.Count); i++)
        {
            bool jpeg = i % 5 == 4;
            string name = $"fm{i:D5}.{(jpeg ? "jpg" : "png")}";
            string path = Path.Combine(folder, name);
            if (!File.Exists(path))
            {
                using var bitmap = new SKBitmap(28, 28, SKColorType.Gray8, SKAlphaType.Opaque);
                var pixels = split.Image(i);
                for (int p = 0; p < pixels.Length; p++)
                {
                    float v = pixels[p] <= 1f ? pixels[p] * 255f : pixels[p];
                    byte b = (byte)Math.Clamp((int)MathF.Round(v), 0, 255);
                    bitmap.SetPixel(p % 28, p / 28, new SKColor(b, b, b));
                }
                using var image = SKImage.FromBitmap(bitmap);
                using var encoded = image.Encode(jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 95);
                using var file = File.Create(path);
                encoded.SaveTo(file);
            }
            rows.Add(new FileRow { Label = i % 100 == 0 ? FashionMnist.ClassNames[split.Labels[i]] : "", Path = name });
        }
        return rows;
    }

    /// <summary>
    /// The bare step: the same Fit, student and shapes, but every step gets one batch built before training (64 + 64
    /// real samples), so the step does no data work at all: what remains is TorchSharp's forward, loss, backward
    /// and AdamW plus the loop's own per-step checks. Fit's ms/step over this is the data path's cost.
    /// </summary>
    private static DualHeadDistillOptions Bare(DualHeadDistillOptions o)
    {
        if (!DualHeadRegistry.BatchSources.TryGet(ConstantBatchSource.SourceName, out _)) DualHeadRegistry.BatchSources.Register(new ConstantBatchSource());
        o.BatchSource = ConstantBatchSource.SourceName;
        return o;
    }

    private sealed class ConstantBatchSource : Microsoft.ML.DualHeadDistillation.Training.Batches.BatchSourceDefinition
    {
        public const string SourceName = "BenchConstantBatch";
        public override string Name => SourceName;
        public override string Summary => "Benchmark only: one batch, built before training, handed out every step (max_steps steps per epoch).";

        public override Microsoft.ML.DualHeadDistillation.Training.Batches.BatchSource Create(Microsoft.ML.DualHeadDistillation.Training.Batches.BatchSourceContext c) => new Source(c);

        private sealed class Source : Microsoft.ML.DualHeadDistillation.Training.Batches.BatchSource
        {
            private readonly Microsoft.ML.DualHeadDistillation.Training.Batches.TrainingBatch _batch;
            private readonly int _steps;

            public Source(Microsoft.ML.DualHeadDistillation.Training.Batches.BatchSourceContext c)
            {
                _steps = c.Spec.Settings.GetInt("max_steps", 40);
                int nl = Math.Min(c.Spec.LabeledBatchSize, c.Rows.LabeledRows), nu = Math.Min(c.Spec.UnlabeledBatchSize, c.Rows.UnlabeledRows);
                var rows = c.Rows.LabeledIndices.Take(nl).Concat(c.Rows.UnlabeledIndices.Take(nu)).ToArray();
                int d = c.Rows.FeatureSize, k = c.Rows.ClassCount;
                var x = new float[rows.Length * d];
                var t = c.WithTeacher ? new float[rows.Length * k] : [];
                var reader = c.Rows.CreateReader();
                for (int i = 0; i < rows.Length; i++) reader.Write(rows[i], 1, x.AsSpan(i * d, d), c.WithTeacher ? t.AsSpan(i * k, k) : []);
                _batch = new(x, t, rows.Take(nl).Select(r => (long)c.Rows.Label(r)).ToArray(), rows.Length);
            }

            public override int StepsPerEpoch => _steps;

            public override IEnumerable<Microsoft.ML.DualHeadDistillation.Training.Batches.TrainingBatch> NextEpoch()
            {
                for (int s = 0; s < _steps; s++) yield return _batch;
            }
        }
    }

    private static double PeakRssMegabytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        return double.NaN;
    }
}
