using System.Globalization;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Bench;

/// <summary>
/// The paper benchmark's data, shared by <see cref="PaperBenchmark"/> and <see cref="ParityBenchmark"/>: the
/// Fashion-MNIST split (permutation seed 13, 10,000-image teacher pool, 20 validation images per class,
/// F * 5,000 labeled per class, the rest unlabeled) and the teacher logits of every row.
/// </summary>
internal sealed class PaperProtocol
{
    public required MLContext Ml { get; init; }
    public required FashionMnistSplit Train { get; init; }
    public required FashionMnistSplit Test { get; init; }
    public required StudentSplit Split { get; init; }
    public required double Fraction { get; init; }
    public required int Seeds { get; init; }
    public required int Epochs { get; init; }
    public required string? Confuse { get; init; }
    public required int LabeledPerClass { get; init; }

    /// <summary>The same protocol with the teacher's pool labels confused otherwise (null: as they are).</summary>
    public PaperProtocol WithConfuse(string? confuse) => new()
    {
        Ml = Ml, Train = Train, Test = Test, Split = Split, Fraction = Fraction, Seeds = Seeds, Epochs = Epochs, Confuse = confuse, LabeledPerClass = LabeledPerClass,
    };

    /// <summary>Reads --fraction, --seeds, --epochs, --confuse, --unlabeled; loads Fashion-MNIST and splits it.</summary>
    public static PaperProtocol Load(string[] args)
    {
        double fraction = double.Parse(BenchArgs.Value(args, "--fraction") ?? "0.01", CultureInfo.InvariantCulture);
        int seeds = int.Parse(BenchArgs.Value(args, "--seeds") ?? "3", CultureInfo.InvariantCulture);
        int epochs = int.Parse(BenchArgs.Value(args, "--epochs") ?? "3", CultureInfo.InvariantCulture);
        string? confuse = BenchArgs.Value(args, "--confuse");
        if (!(fraction > 0 && fraction <= 1)) throw new ArgumentOutOfRangeException("--fraction", fraction, "--fraction must be in (0, 1].");
        if (seeds < 1) throw new ArgumentOutOfRangeException("--seeds", seeds, "--seeds must be at least 1.");
        int labeledPerClass = (int)Math.Round(fraction * 5_000);

        var ml = new MLContext(seed: 1);
        string dir = FashionMnist.Locate();
        var train = FashionMnist.Load(dir, train: true);
        var test = FashionMnist.Load(dir, train: false);
        // --unlabeled N: only the first N unlabeled rows (of the seeded permutation), for runs this CPU cannot afford in full.
        int? maxUnlabeled = BenchArgs.Value(args, "--unlabeled") is { } u ? int.Parse(u, CultureInfo.InvariantCulture) : null;
        if (maxUnlabeled < 0) throw new ArgumentOutOfRangeException("--unlabeled", maxUnlabeled, "--unlabeled must be at least 0.");
        var split = FashionMnistProtocol.Split(train, poolSize: 10_000, labeledPerClass: labeledPerClass, validationPerClass: 20, seed: 13, maxUnlabeled: maxUnlabeled);
        Console.WriteLine($"paper protocol: F = {fraction} ({labeledPerClass} labels per class, {split.Labeled.Length} labeled), {split.Unlabeled.Length} unlabeled, {split.Validation.Length} validation, {test.Count} test; {epochs} epochs; seeds 1..{seeds}");
        return new PaperProtocol
        {
            Ml = ml, Train = train, Test = test, Split = split, Fraction = fraction, Seeds = seeds, Epochs = epochs, Confuse = confuse, LabeledPerClass = labeledPerClass,
        };
    }

    /// <summary>
    /// The teacher (ours trained on the pool, labels optionally confused, or the ONNX file of --teacher with
    /// --teacher-input/--teacher-output) and the cached training, validation and test views with its logits.
    /// </summary>
    public PaperData PrepareData(string[] args)
    {
        var ml = Ml;
        var train = Train;
        var split = Split;
        string? teacherPath = BenchArgs.Value(args, "--teacher");
        var work = Path.Combine(Path.GetTempPath(), "dualhead-paper-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        TeacherSoftLabelsOptions teacherOptions;
        TeacherOutputKind teacherKind;
        string teacherDescription;
        if (teacherPath is null)
        {
            IReadOnlyDictionary<int, byte>? poolLabels = Confuse is null ? null : ConfusedLabels(train, split.TeacherPool, Confuse);
            var teacher = OnnxTeacher.Train(ml, train, split.TeacherPool, poolLabels);
            teacherPath = Path.Combine(work, "teacher.onnx");
            File.WriteAllBytes(teacherPath, teacher.Onnx);
            teacherOptions = new TeacherSoftLabelsOptions { ModelInputName = OnnxTeacher.InputName, ModelOutputName = OnnxTeacher.OutputName };
            teacherKind = TeacherOutputKind.Probabilities;
            teacherDescription = $"ML.NET L-BFGS maximum entropy on the 10,000-image pool{(Confuse is null ? "" : $", labels confused within pairs {Confuse}")}, {teacher.Parameters:N0} parameters";
        }
        else
        {
            teacherOptions = new TeacherSoftLabelsOptions
            {
                ModelInputName = BenchArgs.Value(args, "--teacher-input"), ModelOutputName = BenchArgs.Value(args, "--teacher-output"),
                Preprocessing = new TeacherPreprocessing { SourceShape = [1, 28, 28], Scale = 1f },
            };
            teacherKind = TeacherOutputKind.Logits;
            teacherDescription = $"ONNX file {teacherPath}";
        }
        teacherOptions.InputColumnName = "Features";
        teacherOptions.OutputColumnName = "Teacher";
        teacherOptions.ModelPath = teacherPath;
        teacherOptions.ClassNames = FashionMnist.ClassNames;
        teacherOptions.BatchSize = 256;

        // Teacher logits computed once for every row, then cached in memory for all methods and seeds.
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml));
        var studentRows = ml.Data.LoadFromEnumerable(FashionMnistProtocol.StudentRows(train, split));
        var keyTransform = keys.Fit(studentRows);
        var teacherTransform = ml.Transforms.TeacherSoftLabels(teacherOptions).Fit(studentRows);
        IDataView Prepare(IEnumerable<ImageRow> rows) => ml.Data.Cache(teacherTransform.Transform(keyTransform.Transform(ml.Data.LoadFromEnumerable(rows))));
        var trainData = Prepare(FashionMnistProtocol.StudentRows(train, split));
        var validation = Prepare(FashionMnistProtocol.Rows(train, split.Validation, labeled: true));
        var testData = Prepare(FashionMnistProtocol.Rows(Test, Enumerable.Range(0, Test.Count), labeled: true));
        var testLabels = testData.GetColumn<uint>("Label").Select(k => (int)k - 1).ToArray();
        var teacherTest = testData.GetColumn<float[]>("Teacher").Select(PaperBenchmark.ArgMax).ToArray();
        double teacherAccuracy = PaperBenchmark.Accuracy(teacherTest, testLabels);
        trainData.GetColumn<float[]>("Teacher").Count(); // fill the cache before timing any Fit
        Console.WriteLine($"teacher: {teacherDescription}; test accuracy {teacherAccuracy:P2}");
        return new PaperData(trainData, validation, testData, testLabels, teacherTest, teacherAccuracy, teacherKind, teacherDescription, teacherTransform, work);
    }

    /// <summary>
    /// For each listed pair, every pool image of the pair gets a label drawn uniformly from the pair; "random": every
    /// pool image gets a label drawn uniformly from all ten (a teacher near chance).
    /// </summary>
    public static Dictionary<int, byte> ConfusedLabels(FashionMnistSplit train, int[] pool, string pairs)
    {
        if (pairs == "random")
        {
            var any = new Random(13);
            return pool.ToDictionary(i => i, _ => (byte)any.Next(10));
        }
        var partner = new Dictionary<byte, byte>();
        foreach (var pair in pairs.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var ends = pair.Split('-');
            if (ends.Length != 2 || !byte.TryParse(ends[0], out var a) || !byte.TryParse(ends[1], out var b) || a > 9 || b > 9 || a == b)
                throw new ArgumentException($"--confuse takes pairs of distinct classes 0..9 like 0-6,2-4; got '{pair}'.");
            partner[a] = b;
            partner[b] = a;
        }
        var random = new Random(13);
        return pool.ToDictionary(i => i, i =>
        {
            byte label = train.Labels[i];
            return partner.TryGetValue(label, out var other) ? (random.Next(2) == 0 ? label : other) : label;
        });
    }
}

/// <summary>The cached views of the paper protocol and its teacher. Disposing releases the teacher and deletes the work folder.</summary>
internal sealed record PaperData(
    IDataView TrainData, IDataView Validation, IDataView TestData, int[] TestLabels, int[] TeacherTest, double TeacherAccuracy,
    TeacherOutputKind TeacherKind, string TeacherDescription, IDisposable TeacherTransform, string WorkDirectory) : IDisposable
{
    public void Dispose()
    {
        TeacherTransform.Dispose();
        if (Directory.Exists(WorkDirectory)) Directory.Delete(WorkDirectory, recursive: true);
    }
}
