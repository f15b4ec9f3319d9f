using DualHeadML.Samples;
using Microsoft.ML.DualHeadDistillation.Datasets;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Real Fashion-MNIST rows and a real ONNX teacher for the save/load/export tests: teacher pool 2,000 images,
/// 10 labels per class + 1,500 unlabeled student rows, 256 test images. Trained models are cached per backbone.
/// </summary>
internal static class DeploymentFixture
{
    private static readonly object s_lock = new();
    private static readonly Dictionary<DualHeadBackbone, (ITransformer Chain, DualHeadDistillTransformer Student)> s_models = [];
    private static MLContext? s_ml;
    private static IDataView? s_rows, s_test;
    private static float[][]? s_testFeatures;
    private static OnnxTeacher? s_teacher;

    public const int TestRows = 256;

    public static MLContext Ml { get { Ensure(); return s_ml!; } }
    /// <summary>Raw student rows (Label string, Features, TeacherProbabilities), before MapValueToKey.</summary>
    public static IDataView TrainRows { get { Ensure(); return s_rows!; } }
    /// <summary>Raw labeled test rows (Label string, Features).</summary>
    public static IDataView TestData { get { Ensure(); return s_test!; } }
    public static float[][] TestFeatures { get { Ensure(); return s_testFeatures!; } }
    /// <summary>The teacher (ML.NET multiclass logistic regression exported to ONNX).</summary>
    public static OnnxTeacher Teacher { get { Ensure(); return s_teacher!; } }

    private static void Ensure()
    {
        lock (s_lock)
        {
            if (s_ml is not null) return;
            var ml = new MLContext(seed: 1);
            string dir = FashionMnist.Locate(allowDownload: false);
            var train = FashionMnist.Load(dir, train: true);
            var test = FashionMnist.Load(dir, train: false);
            var split = FashionMnistProtocol.Split(train, poolSize: 2_000, labeledPerClass: 10, maxUnlabeled: 1_500);
            var teacher = OnnxTeacher.Train(ml, train, split.TeacherPool);
            var rows = ml.Data.LoadFromEnumerable(FashionMnistProtocol.StudentRows(train, split));
            s_rows = ml.Data.Cache(teacher.Apply(ml, rows, "TeacherProbabilities").Transform(rows));
            var testRows = FashionMnistProtocol.Rows(test, Enumerable.Range(0, TestRows), labeled: true).ToList();
            s_test = ml.Data.LoadFromEnumerable(testRows);
            s_testFeatures = testRows.Select(r => r.Features).ToArray();
            s_teacher = teacher;
            s_ml = ml;
        }
    }

    public static DualHeadDistillOptions Options(DualHeadBackbone backbone) => new()
    {
        TeacherColumnName = "TeacherProbabilities",
        TeacherOutput = TeacherOutputKind.Probabilities,
        Backbone = backbone,
        ImageShape = [1, 28, 28],
        HiddenSize = 64,
        NumberOfEpochs = 1,
        Alpha = 0.4f,
        Beta = 1.5f,
        Seed = 5,
        Device = DualHeadDevice.Cpu,
        InputPreprocessing = new Teachers.TeacherPreprocessing { CropHeight = 28, CropWidth = 28, Scale = 1f / 255f, Mean = [0f], Std = [1f] },
    };

    /// <summary>MapValueToKey("Label") followed by the trainer, fitted once per backbone.</summary>
    public static (ITransformer Chain, DualHeadDistillTransformer Student) Model(DualHeadBackbone backbone)
    {
        Ensure();
        lock (s_lock)
        {
            if (s_models.TryGetValue(backbone, out var cached)) return cached;
            var pipeline = s_ml!.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(s_ml))
                .Append(s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(backbone)));
            var chain = pipeline.Fit(s_rows!);
            return s_models[backbone] = (chain, chain.LastTransformer);
        }
    }
}
