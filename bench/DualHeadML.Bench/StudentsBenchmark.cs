using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Students.Onnx;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.OnnxRuntime;

namespace DualHeadML.Bench;

/// <summary>
/// Real students on the paper protocol as 3-channel images: Fashion-MNIST (grey replicated, bilinear-resized 28 → S,
/// default 64) at 1 % labels (50 per class), 20 validation images per class, an unlabeled subset, a test subset.
/// Teachers: the confused logistic regression of the paper benchmark (T-shirt/Shirt and Pullover/Coat confused, on
/// the 28x28 pixels) and the ResNet-18 linear probe (<see cref="ResNet18ProbeTeacher"/>: the ImageNet ResNet-18 ONNX,
/// frozen, plus a linear probe trained on the 10,000-image pool at S x S). Students: SmallCnn, ResNet-18 from scratch,
/// ResNet-18 ImageNet (OnnxCnn from the same ONNX), MobileNetV2 from scratch; methods DHO (alpha/beta on validation),
/// SingleHeadKd, SupervisedOnly (no teacher: fitted once per student and reported under every teacher). The same
/// rows, seed and steps for every fit. Test accuracy, parameters, ms per training step, and images/s of the
/// exported ONNX through ONNX Runtime.
/// </summary>
internal static class StudentsBenchmark
{
    public static readonly string[] Students = ["small_cnn", "resnet18_scratch", "resnet18_imagenet", "mobilenet_v2_scratch"];
    public static readonly string[] Teachers = ["confused", "resnet18_probe"];
    public static readonly string[] Methods = ["dho_auto", "single_head_kd", "supervised_only"];

    public static Dictionary<string, object> Run(string[] args)
    {
        var total = Stopwatch.StartNew();
        bool quick = BenchArgs.Has(args, "--quick");
        int Int(string name, int fallback, int min)
        {
            string? text = BenchArgs.Value(args, name);
            if (text is null) return fallback;
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min)
                throw new ArgumentException($"{name} takes an integer of at least {min}; got '{text}'.");
            return value;
        }
        string[] List(string name, string[] all, string[] fallback)
        {
            var list = (BenchArgs.Value(args, name) ?? string.Join(",", fallback)).Split(',', StringSplitOptions.RemoveEmptyEntries);
            if (list.Length == 0) throw new ArgumentException($"{name} needs at least one of {string.Join(",", all)}.");
            if (list.Except(all).FirstOrDefault() is { } unknown) throw new ArgumentException($"{name} takes a subset of {string.Join(",", all)}; got '{unknown}'.");
            if (list.Distinct().Count() != list.Length) throw new ArgumentException($"{name} lists an entry twice: '{string.Join(",", list)}'.");
            return list;
        }
        int size = Int("--size", 64, 32), unlabeledCount = Int("--unlabeled", quick ? 3_200 : 3_840, 0), epochs = Int("--epochs", 1, 1);
        int testCount = Int("--test", quick ? 2_000 : 5_000, 1), probeEpochs = Int("--probe-epochs", 2, 1), seed = Int("--seed", 1, 0), onnxImages = Int("--onnx-images", 256, 1);
        int probePool = Int("--probe-pool", 10_000, 10);
        double fraction = double.Parse(BenchArgs.Value(args, "--fraction") ?? "0.01", CultureInfo.InvariantCulture);
        string confuse = BenchArgs.Value(args, "--confuse") ?? "0-6,2-4";
        var students = List("--students", Students, quick ? ["small_cnn", "resnet18_scratch", "resnet18_imagenet"] : Students);
        var teachers = List("--teachers", Teachers, quick ? ["confused"] : Teachers);
        var methods = List("--methods", Methods, quick ? ["dho_auto", "single_head_kd"] : Methods);
        // Read once: the package's model path and its channel means (the pretrained student's settings).
        var imageNetSettings = students.Contains("resnet18_imagenet") || teachers.Contains("resnet18_probe") ? DnnImageFeaturizerResNet18.BackboneSettings(DnnImageModels) : null;
        if (!(fraction > 0 && fraction <= 1)) throw new ArgumentOutOfRangeException("--fraction", fraction, "--fraction must be in (0, 1].");

        var ml = new MLContext(seed: 1);
        string dir = FashionMnist.Locate();
        var train = FashionMnist.Load(dir, train: true);
        var test = FashionMnist.Load(dir, train: false);
        int labeledPerClass = (int)Math.Round(fraction * 5_000);
        var split = FashionMnistProtocol.Split(train, poolSize: 10_000, labeledPerClass: labeledPerClass, validationPerClass: 20, seed: 13, maxUnlabeled: unlabeledCount);
        testCount = Math.Min(testCount, test.Count);
        Console.WriteLine($"students benchmark{(quick ? " (--quick)" : "")}: {size}x{size} RGB, {split.Labeled.Length} labeled, {split.Unlabeled.Length} unlabeled, {split.Validation.Length} validation, {testCount} test; {epochs} epoch(s); seed {seed}");
        Console.WriteLine($"students {string.Join(",", students)}; teachers {string.Join(",", teachers)}; methods {string.Join(",", methods)}");

        var schema = SchemaDefinition.Create(typeof(PixelRow));
        schema[nameof(PixelRow.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3 * size * size);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml));
        IEnumerable<PixelRow> Rows(FashionMnistSplit images, IEnumerable<int> indices, bool labeled) => indices.Select(i => new PixelRow
        {
            Label = labeled ? FashionMnist.ClassNames[images.Labels[i]] : "",
            Features = images.Pixels.AsSpan(i * 784, 784).ToArray(),
            Pixels = GreyImages.ToRgb(images.Pixels.AsSpan(i * 784, 784), size),
        });
        IDataView Load(IEnumerable<PixelRow> rows) => ml.Data.LoadFromEnumerable(rows, schema);
        var keyTransform = keys.Fit(Load(Rows(train, split.Validation, labeled: true)));

        // The teachers' logits of every row, computed once: "Confused" from the 28x28 pixels, "Probe" from the S x S RGB.
        var work = Path.Combine(Path.GetTempPath(), "dualhead-students-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        var teacherInfo = new Dictionary<string, object>();
        var transforms = new List<ITransformer>();
        var disposables = new List<IDisposable>();
        try
        {
            foreach (var teacher in teachers)
            {
                var watch = Stopwatch.StartNew();
                string path = Path.Combine(work, teacher + ".onnx");
                var built = StudentTeachers.Build(ml, teacher, train, split.TeacherPool, confuse,
                    () => ml.Data.Cache(keyTransform.Transform(Load(Rows(train, split.TeacherPool.Take(probePool), labeled: true)))), size, probeEpochs, seed, DnnImageModels, path);
                var (options, parameters) = (built.Options, built.Parameters);
                string description = built.Probe is not { } probe
                    ? $"ML.NET L-BFGS maximum entropy on the 10,000-image pool (28x28), labels confused within pairs {confuse}"
                    : $"ImageNet ResNet-18 (Microsoft.ML.DnnImageFeaturizer.ResNet18 ONNX, frozen) + linear probe trained {probeEpochs} epoch(s) on {Math.Min(probePool, split.TeacherPool.Length):N0} pool images at {size}x{size} ({probe.TrainSeconds:0} s, {probe.MeanStepMilliseconds:0} ms/step)";
                options.OutputColumnName = TeacherColumn(teacher);
                var transformer = ml.Transforms.TeacherSoftLabels(options).Fit(Load(Rows(train, split.Validation, labeled: true)));
                transforms.Add(transformer);
                disposables.Add(transformer);
                teacherInfo[teacher] = new Dictionary<string, object> { ["description"] = description, ["parameters"] = parameters, ["build_seconds"] = watch.Elapsed.TotalSeconds };
            }
            IDataView Prepare(IEnumerable<PixelRow> rows)
            {
                IDataView view = keyTransform.Transform(Load(rows));
                foreach (var t in transforms) view = t.Transform(view);
                var cached = ml.Data.Cache(view);
                foreach (var teacher in teachers) cached.GetColumn<float[]>(TeacherColumn(teacher)).Count(); // fill the cache now
                return cached;
            }
            var labelWatch = Stopwatch.StartNew();
            var trainData = Prepare(Rows(train, split.Labeled, labeled: true).Concat(Rows(train, split.Unlabeled, labeled: false)));
            var validation = Prepare(Rows(train, split.Validation, labeled: true));
            var testData = Prepare(Rows(test, Enumerable.Range(0, testCount), labeled: true));
            var testLabels = testData.GetColumn<uint>("Label").Select(k => (int)k - 1).ToArray();
            var testPixels = testData.GetColumn<float[]>("Pixels").Take(onnxImages).SelectMany(p => p).ToArray();
            foreach (var teacher in teachers)
            {
                var info = (Dictionary<string, object>)teacherInfo[teacher];
                info["test_accuracy"] = PaperBenchmark.Accuracy(testData.GetColumn<float[]>(TeacherColumn(teacher)).Select(PaperBenchmark.ArgMax).ToArray(), testLabels);
                Console.WriteLine(FormattableString.Invariant($"teacher {teacher}: {info["description"]}; {info["parameters"]} parameters; test accuracy {(double)info["test_accuracy"]:P2}"));
            }
            Console.WriteLine(FormattableString.Invariant($"teacher logits of {split.Labeled.Length + split.Unlabeled.Length + split.Validation.Length + testCount} rows: {labelWatch.Elapsed.TotalSeconds:0} s"));

            var results = new Dictionary<string, object>
            {
                ["quick"] = quick, ["image_size"] = size, ["fraction"] = fraction, ["labeled"] = split.Labeled.Length, ["unlabeled"] = split.Unlabeled.Length,
                ["validation"] = split.Validation.Length, ["test"] = testCount, ["epochs"] = epochs, ["seed"] = seed, ["confuse"] = confuse,
                ["teachers"] = teacherInfo, ["supervised_only_shared"] = "supervised_only uses no teacher: one fit per student, reported under every teacher",
            };
            foreach (var student in students)
            {
                var perTeacher = teachers.ToDictionary(t => t, _ => new Dictionary<string, object>());
                var seconds = teachers.ToDictionary(t => t, _ => new Dictionary<string, double>());
                double? onnxRate = null;
                DualHeadDistillOptions Options(DualHeadTrainingMode mode, string teacher)
                {
                    var o = new DualHeadDistillOptions
                    {
                        FeatureColumnName = "Pixels", ImageShape = [3, size, size], Objective = mode, TeacherColumnName = TeacherColumn(teacher),
                        TeacherOutput = TeacherOutputKind.Probabilities, NumberOfEpochs = epochs, Seed = seed,
                    };
                    switch (student)
                    {
                        case "small_cnn": o.Backbone = DualHeadBackbone.SmallCnn; break;
                        case "resnet18_scratch": o.Backbone = "ResNet18"; break;
                        case "mobilenet_v2_scratch": o.Backbone = "MobileNetV2"; break;
                        case "resnet18_imagenet": o.Backbone = "OnnxCnn"; o.BackboneSettings = new(imageNetSettings!); break;
                    }
                    return o;
                }
                (double Accuracy, DualHeadDistillTransformer Model, double Seconds) Fit(DualHeadTrainingMode mode, string teacher)
                {
                    var watch = Stopwatch.StartNew();
                    var model = ml.MulticlassClassification.Trainers.DualHeadDistill(Options(mode, teacher)).Fit(trainData, mode == DualHeadTrainingMode.DualHead ? validation : null);
                    try
                    {
                        double fitSeconds = watch.Elapsed.TotalSeconds;
                        var predicted = model.Transform(testData).GetColumn<uint>("PredictedLabel").Select(k => (int)k - 1).ToArray();
                        double accuracy = PaperBenchmark.Accuracy(predicted, testLabels);
                        Console.WriteLine(FormattableString.Invariant(
                            $"{student} / {(mode == DualHeadTrainingMode.SupervisedOnly ? "no teacher" : teacher)} / {mode}: test {accuracy:P2}; fit {fitSeconds:0} s, {model.TrainingReport.MeanStepMilliseconds:0} ms/step, scoring {watch.Elapsed.TotalSeconds - fitSeconds:0} s; alpha {model.Alpha}, beta {model.Beta}"));
                        // images/s of this student's exported graph: the first DHO model's (the deployed two-head graph), else the first model's
                        if (onnxRate is null && (mode == DualHeadTrainingMode.DualHead || !methods.Contains("dho_auto"))) onnxRate = OnnxImagesPerSecond(model, work, testPixels, 3 * size * size);
                        return (accuracy, model, fitSeconds);
                    }
                    catch
                    {
                        model.Dispose();
                        throw;
                    }
                }
                (long Parameters, double MsPerStep)? supervised = null;
                if (methods.Contains("supervised_only"))
                {
                    var (accuracy, model, secs) = Fit(DualHeadTrainingMode.SupervisedOnly, teachers[0]);
                    using (model)
                    {
                        supervised = (model.StudentParameters, model.TrainingReport.MeanStepMilliseconds);
                        foreach (var t in teachers)
                        {
                            perTeacher[t]["supervised_only"] = accuracy;
                            seconds[t]["supervised_only"] = secs;
                            perTeacher[t]["supervised_only_ms_per_step"] = model.TrainingReport.MeanStepMilliseconds; // labeled rows only: 64 a step
                        }
                    }
                }
                foreach (var teacher in teachers)
                {
                    if (methods.Contains("single_head_kd"))
                    {
                        var (accuracy, model, secs) = Fit(DualHeadTrainingMode.SingleHeadKd, teacher);
                        using (model)
                        {
                            perTeacher[teacher]["single_head_kd"] = accuracy;
                            seconds[teacher]["single_head_kd"] = secs;
                            perTeacher[teacher]["parameters"] = model.StudentParameters;
                            perTeacher[teacher]["ms_per_step"] = model.TrainingReport.MeanStepMilliseconds;
                        }
                    }
                    if (methods.Contains("dho_auto"))
                    {
                        var (accuracy, model, secs) = Fit(DualHeadTrainingMode.DualHead, teacher);
                        using (model)
                        {
                            perTeacher[teacher]["dho_auto"] = accuracy;
                            perTeacher[teacher]["alpha"] = model.Alpha;
                            perTeacher[teacher]["beta"] = model.Beta;
                            seconds[teacher]["dho_auto"] = secs;
                            perTeacher[teacher]["parameters"] = model.StudentParameters; // two heads: the deployed model
                            perTeacher[teacher]["ms_per_step"] = model.TrainingReport.MeanStepMilliseconds;
                        }
                    }
                    perTeacher[teacher]["fit_seconds"] = seconds[teacher];
                }
                foreach (var t in teachers)
                {
                    if (supervised is { } one) // only SupervisedOnly ran: its one-head student
                    {
                        perTeacher[t].TryAdd("parameters", one.Parameters);
                        perTeacher[t].TryAdd("ms_per_step", one.MsPerStep);
                    }
                    if (onnxRate is { } rate) perTeacher[t]["onnx_images_per_s"] = rate;
                }
                results[student] = perTeacher;
                Console.WriteLine(FormattableString.Invariant($"{student} done at {total.Elapsed.TotalMinutes:0.0} min"));
            }
            results["total_seconds"] = total.Elapsed.TotalSeconds;
            PrintTable(results, students, teachers, methods);
            return results;
        }
        finally
        {
            foreach (var d in disposables) d.Dispose();
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The restored package's tools/DnnImageModels folder (this project's PackageReference, GeneratePathProperty).</summary>
    private static string DnnImageModels => StudentTeachers.DnnImageModels;

    private static string TeacherColumn(string teacher) => teacher == "confused" ? "TeacherConfused" : "TeacherProbe";

    /// <summary>
    /// Images per second of the exported ONNX (ONNX Runtime, default session options, batches of 64, the first
    /// <c>n</c> test images; one warm-up pass, then the median of 5 passes).
    /// </summary>
    private static double OnnxImagesPerSecond(DualHeadDistillTransformer model, string work, float[] pixels, int d)
    {
        string path = Path.Combine(work, "student.onnx");
        model.ExportToOnnx(path);
        using var session = new InferenceSession(path);
        int n = pixels.Length / d;
        const int batch = 64;
        void Pass()
        {
            for (int start = 0; start < n; start += batch)
            {
                int m = Math.Min(batch, n - start);
                using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, pixels.AsMemory(start * d, m * d), [m, d]);
                using var run = new RunOptions();
                using var outputs = session.Run(run, ["Pixels"], [input], [DualHeadColumns.Score]);
            }
        }
        Pass();
        var rates = new List<double>();
        for (int r = 0; r < 5; r++)
        {
            var watch = Stopwatch.StartNew();
            Pass();
            rates.Add(n / watch.Elapsed.TotalSeconds);
        }
        rates.Sort();
        File.Delete(path);
        return rates[rates.Count / 2];
    }

    private static void PrintTable(Dictionary<string, object> results, string[] students, string[] teachers, string[] methods)
    {
        Console.WriteLine();
        Console.WriteLine("| student | teacher | " + string.Join(" | ", methods) + " | parameters | ms/step | ONNX images/s |");
        Console.WriteLine("|---|---|" + string.Concat(methods.Select(_ => "---|")) + "---|---|---|");
        string Cell(Dictionary<string, object> row, string key, string format) =>
            row.TryGetValue(key, out var v) ? v switch { double d => d.ToString(format, CultureInfo.InvariantCulture), long l => l.ToString("N0", CultureInfo.InvariantCulture), _ => v.ToString() ?? "" } : "";
        foreach (var s in students)
            foreach (var t in teachers)
            {
                var row = ((Dictionary<string, Dictionary<string, object>>)results[s])[t];
                Console.WriteLine($"| {s} | {t} | " + string.Join(" | ", methods.Select(m => Cell(row, m, "P2"))) + $" | {Cell(row, "parameters", "")} | {Cell(row, "ms_per_step", "0")} | {Cell(row, "onnx_images_per_s", "0")} |");
            }
        Console.WriteLine(FormattableString.Invariant($"total {(double)results["total_seconds"] / 60:0.0} min"));
    }

    private sealed class PixelRow
    {
        public string Label { get; set; } = "";
        [VectorType(FashionMnistSplit.PixelsPerImage)] public float[] Features { get; set; } = [];
        [VectorType] public float[] Pixels { get; set; } = [];
    }
}
