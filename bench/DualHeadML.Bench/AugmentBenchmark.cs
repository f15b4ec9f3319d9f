using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Bench;

/// <summary>
/// Augmentation and the teacher's view on the paper protocol (Fashion-MNIST, F labels per class, SmallCnn, DHO
/// with validated alpha/beta): the images go in as encoded bytes (an image column, stored at 28 so that "no
/// augmentation" sees exactly the original pixels), and each seed trains four ways: no augmentation (teacher
/// cached), RandomResizedCrop(0.5-1) + flip with the teacher Cached (it saw each image once, whole),
/// SameCropOnline (it sees every crop) and CachedViews(V). Test accuracy and seconds per Fit.
/// </summary>
internal static class AugmentBenchmark
{
    public static readonly string[] Methods = ["none", "cached", "same_crop_online", "cached_views"];

    public static Dictionary<string, object> Run(string[] args)
    {
        var protocol = PaperProtocol.Load(args);
        int views = int.Parse(BenchArgs.Value(args, "--views") ?? "4", CultureInfo.InvariantCulture);
        var methods = (BenchArgs.Value(args, "--methods") ?? string.Join(",", Methods)).Split(',', StringSplitOptions.RemoveEmptyEntries);
        if (methods.Except(Methods).FirstOrDefault() is { } unknown) throw new ArgumentException($"--methods takes a subset of {string.Join(",", Methods)}; got '{unknown}'.");
        string teacherPath = BenchArgs.Value(args, "--teacher") ?? throw new ArgumentException("--teacher PATH (an ONNX classifier of [N, 1, 28, 28] images in [0, 1]) is needed: the teacher runs on crops.");
        var ml = protocol.Ml;
        using var data = protocol.PrepareData(args); // the teacher's logits of every (whole) image: the Cached view
        var toImages = ImageBytes(ml);
        IDataView Images(IDataView view) => ml.Data.Cache(toImages.Transform(view));
        var train = Images(data.TrainData);
        var validation = Images(data.Validation);
        var test = Images(data.TestData);
        // The same teacher for crops: its input is the crop in [0, 1] (Scale 1/255 of the bytes), as the cached logits saw the image.
        using var cropTeacher = ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
        {
            ModelPath = teacherPath, ModelInputName = BenchArgs.Value(args, "--teacher-input"), ModelOutputName = BenchArgs.Value(args, "--teacher-output"),
            InputColumnName = "Features", ClassNames = Microsoft.ML.DualHeadDistillation.Datasets.FashionMnist.ClassNames,
            Preprocessing = new TeacherPreprocessing { SourceShape = [1, 28, 28], Scale = 1f / 255f }, BatchSize = 256,
        }).Fit(data.TrainData);

        var runs = Methods.ToDictionary(m => m, _ => new List<double>());
        var seconds = Methods.ToDictionary(m => m, _ => new List<double>());
        var teacherSeconds = Methods.ToDictionary(m => m, _ => new List<double>());
        var seedList = new List<int>();
        int firstSeed = int.Parse(BenchArgs.Value(args, "--first-seed") ?? "1", CultureInfo.InvariantCulture);
        if (firstSeed < 1 || firstSeed > protocol.Seeds) throw new ArgumentOutOfRangeException("--first-seed", firstSeed, $"--first-seed must be in 1..--seeds ({protocol.Seeds}).");
        // --merge A.json[,B.json]: earlier runs of the same protocol (other seeds) are read first, so one JSON holds all seeds.
        foreach (var earlier in (BenchArgs.Value(args, "--merge") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
            Merge(earlier, protocol, data.TeacherAccuracy, views, methods, seedList, runs, seconds, teacherSeconds);
        for (int seed = firstSeed; seed <= protocol.Seeds; seed++)
        {
            if (seedList.Contains(seed)) throw new ArgumentException($"--merge already holds seed {seed}; start at --first-seed {seedList.Max() + 1}.");
            seedList.Add(seed);
            foreach (var method in methods)
            {
                var o = new DualHeadDistillOptions
                {
                    FeatureColumnName = "Image", ImageShape = [1, 28, 28], ImageStorageSize = 28, Backbone = DualHeadBackbone.SmallCnn,
                    TeacherColumnName = "Teacher", TeacherOutput = data.TeacherKind, NumberOfEpochs = protocol.Epochs, Seed = seed,
                    Augmentation = method == "none" ? ImageAugmentation.None : ImageAugmentation.Default,
                };
                if (method is "same_crop_online" or "cached_views")
                {
                    o.Teacher = cropTeacher;
                    o.TeacherView = method == "same_crop_online" ? DualHeadTeacherView.SameCropOnline : DualHeadTeacherView.CachedViews;
                    o.TeacherViews = views;
                }
                var watch = Stopwatch.StartNew();
                using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(train, validation);
                double secs = watch.Elapsed.TotalSeconds;
                var predicted = model.Transform(test).GetColumn<uint>("PredictedLabel").Select(k => (int)k - 1).ToArray();
                runs[method].Add(PaperBenchmark.Accuracy(predicted, data.TestLabels));
                seconds[method].Add(secs);
                teacherSeconds[method].Add(model.TrainingReport.TeacherSeconds);
                Console.WriteLine(FormattableString.Invariant(
                    $"seed {seed} {method}: test {runs[method][^1]:P2} (alpha {model.Alpha}, beta {model.Beta}); {secs:0}s, teacher on crops {model.TeacherSecondsOrZero():0}s, {model.TrainingReport.MeanStepMilliseconds:0} ms/step"));
            }
        }
        var results = new Dictionary<string, object>
        {
            ["fraction"] = protocol.Fraction, ["seeds"] = seedList.Count, ["seed_list"] = seedList, ["epochs"] = protocol.Epochs, ["confuse"] = protocol.Confuse ?? "",
            ["teacher_description"] = data.TeacherDescription, ["teacher_accuracy"] = data.TeacherAccuracy, ["views"] = views,
            ["augmentation"] = ImageAugmentation.Default.ToString(), ["storage_size"] = 28,
        };
        foreach (var m in methods)
            results[m] = new Dictionary<string, object>
            {
                ["mean"] = runs[m].Average(), ["std"] = PaperBenchmark.Std(runs[m]), ["runs"] = runs[m], ["seconds"] = seconds[m], ["teacher_seconds"] = teacherSeconds[m],
            };
        Console.WriteLine();
        Console.WriteLine($"seeds {string.Join(",", seedList)}");
        Console.WriteLine("| method | mean test accuracy | std | per seed | seconds per Fit | teacher on crops (s) |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var m in methods)
            Console.WriteLine(FormattableString.Invariant($"| {m} | {runs[m].Average():P2} | {PaperBenchmark.Std(runs[m]) * 100:0.00} | {string.Join(", ", runs[m].Select(r => (r * 100).ToString("0.00", CultureInfo.InvariantCulture)))} | {seconds[m].Average():0} | {teacherSeconds[m].Average():0} |"));
        return results;
    }

    /// <summary>Reads an earlier augment JSON of the same protocol and teacher and appends its runs (checked: same fraction, epochs, confuse, teacher accuracy, views, methods).</summary>
    private static void Merge(string path, PaperProtocol protocol, double teacherAccuracy, int views, string[] methods, List<int> seedList,
        Dictionary<string, List<double>> runs, Dictionary<string, List<double>> seconds, Dictionary<string, List<double>> teacherSeconds)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        void Same(string key, object expected, object actual)
        {
            if (!Equals(expected, actual)) throw new ArgumentException($"--merge {path}: '{key}' is {actual}, this run has {expected}; only runs of the same protocol merge.");
        }
        Same("fraction", protocol.Fraction, root.GetProperty("fraction").GetDouble());
        Same("epochs", protocol.Epochs, root.GetProperty("epochs").GetInt32());
        Same("confuse", protocol.Confuse ?? "", root.GetProperty("confuse").GetString() ?? "");
        Same("teacher_accuracy", teacherAccuracy, root.GetProperty("teacher_accuracy").GetDouble());
        Same("views", views, root.GetProperty("views").GetInt32());
        int count = root.GetProperty("seeds").GetInt32();
        var earlierSeeds = root.TryGetProperty("seed_list", out var list) ? list.EnumerateArray().Select(e => e.GetInt32()).ToList() : Enumerable.Range(1, count).ToList();
        if (earlierSeeds.Intersect(seedList).Any()) throw new ArgumentException($"--merge {path}: seeds {string.Join(",", earlierSeeds)} are already merged.");
        foreach (var m in methods)
        {
            if (!root.TryGetProperty(m, out var run)) throw new ArgumentException($"--merge {path} has no runs of method '{m}'.");
            runs[m].AddRange(run.GetProperty("runs").EnumerateArray().Select(e => e.GetDouble()));
            seconds[m].AddRange(run.GetProperty("seconds").EnumerateArray().Select(e => e.GetDouble()));
            teacherSeconds[m].AddRange(run.GetProperty("teacher_seconds").EnumerateArray().Select(e => e.GetDouble()));
            if (runs[m].Count != seedList.Count + earlierSeeds.Count) throw new ArgumentException($"--merge {path}: method '{m}' has {run.GetProperty("runs").GetArrayLength()} runs for {earlierSeeds.Count} seeds.");
        }
        seedList.AddRange(earlierSeeds);
        Console.WriteLine($"merged seeds {string.Join(",", earlierSeeds)} from {path}");
    }

    private static double TeacherSecondsOrZero(this DualHeadDistillTransformer model) => model.TrainingReport.TeacherSeconds;

    private sealed class PixelsIn
    {
        [VectorType(784)] public float[] Features { get; set; } = [];
    }

    private sealed class BytesOut
    {
        public byte[] Image { get; set; } = [];
    }

    /// <summary>Features (784 pixels in [0, 1]) to an encoded 28x28 24-bit BMP in column "Image" (grey: three equal channels).</summary>
    private static ITransformer ImageBytes(MLContext ml)
    {
        var header = new byte[54];
        void I32(int at, int v) => BitConverter.GetBytes(v).CopyTo(header, at);
        header[0] = (byte)'B';
        header[1] = (byte)'M';
        const int stride = 28 * 3 + 0; // 84 bytes: a multiple of 4, no row padding
        I32(2, 54 + stride * 28);
        I32(10, 54);
        I32(14, 40);
        I32(18, 28);
        I32(22, -28);
        header[26] = 1;
        header[28] = 24;
        I32(34, stride * 28);
        var empty = ml.Data.LoadFromEnumerable(Array.Empty<PixelsIn>());
        return ml.Transforms.CustomMapping<PixelsIn, BytesOut>((input, output) =>
        {
            var bytes = new byte[54 + stride * 28];
            header.CopyTo(bytes, 0);
            for (int i = 0; i < 784; i++)
            {
                byte v = (byte)Math.Clamp((int)MathF.Round(input.Features[i] * 255f), 0, 255);
                int o = 54 + (i / 28) * stride + (i % 28) * 3;
                bytes[o] = bytes[o + 1] = bytes[o + 2] = v;
            }
            output.Image = bytes;
        }, contractName: null).Fit(empty);
    }
}
