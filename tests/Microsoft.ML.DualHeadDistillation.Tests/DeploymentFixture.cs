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

    /// <summary>True for the 3-channel TorchVision students: the pipeline replicates the grey image into column "Rgb" first.</summary>
    public static bool ReadsRgb(DualHeadBackbone backbone) =>
        DualHeadRegistry.Backbones.Get(backbone.Name) is Students.Backbones.TorchVision.TorchVisionBackboneDefinition;

    /// <summary>A test row as the student reads it: the 784 grey pixels, or three copies of them ([3, 28, 28], planar) for RGB students.</summary>
    public static float[] StudentInput(DualHeadBackbone backbone, float[] features) => ReadsRgb(backbone) ? [.. features, .. features, .. features] : features;

    public static DualHeadDistillOptions Options(DualHeadBackbone backbone) => ReadsRgb(backbone) ? RgbOptions(backbone) : new()
    {
        TeacherColumnName = "TeacherProbabilities",
        TeacherOutput = TeacherOutputKind.Probabilities,
        Backbone = backbone,
        ImageShape = [1, 28, 28],
        EmbeddingSize = 64,
        NumberOfEpochs = 1,
        Alpha = 0.4f,
        Beta = 1.5f,
        Seed = 5,
        Device = DualHeadDevice.Cpu,
        InputPreprocessing = new Teachers.TeacherPreprocessing { CropHeight = 28, CropWidth = 28, Scale = 1f / 255f, Mean = [0f], Std = [1f] },
    };

    /// <summary>The TorchVision students on Concatenate(Features x 3) = [3, 28, 28]: ImageNet stem (cheap at 28x28), pixel statistics of the rows.</summary>
    private static DualHeadDistillOptions RgbOptions(DualHeadBackbone backbone) => new()
    {
        FeatureColumnName = "Rgb",
        TeacherColumnName = "TeacherProbabilities",
        TeacherOutput = TeacherOutputKind.Probabilities,
        Backbone = backbone,
        ImageShape = [3, 28, 28],
        NumberOfEpochs = 1,
        Alpha = 0.4f,
        Beta = 1.5f,
        Seed = 5,
        Device = DualHeadDevice.Cpu,
        // The grey pixels / 255, the same in all three channels (what the deployment sample replicates).
        InputPreprocessing = new Teachers.TeacherPreprocessing { CropHeight = 28, CropWidth = 28, Scale = 1f / 255f, Mean = [0f, 0f, 0f], Std = [1f, 1f, 1f] },
    };

    /// <summary>MapValueToKey("Label") (and, for RGB students, Concatenate into "Rgb") followed by the trainer, fitted once per backbone.</summary>
    public static (ITransformer Chain, DualHeadDistillTransformer Student) Model(DualHeadBackbone backbone)
    {
        Ensure();
        lock (s_lock)
        {
            if (s_models.TryGetValue(backbone, out var cached)) return cached;
            var keys = s_ml!.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(s_ml));
            var trainer = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(backbone));
            if (ReadsRgb(backbone))
            {
                var rgb = keys.Append(s_ml.Transforms.Concatenate("Rgb", "Features", "Features", "Features")).Append(trainer).Fit(s_rows!);
                return s_models[backbone] = (rgb, rgb.LastTransformer);
            }
            var chain = keys.Append(trainer).Fit(s_rows!);
            return s_models[backbone] = (chain, chain.LastTransformer);
        }
    }
}
