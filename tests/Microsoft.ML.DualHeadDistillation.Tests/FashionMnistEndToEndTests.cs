using Microsoft.ML.Data;
using DualHeadML.Samples;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Real data, real ONNX teacher: a subset of Fashion-MNIST (teacher pool 5,000 images; student 10 labels
/// per class + 6,000 unlabeled; 2,000 test images). Needs the dataset (apt-get install dataset-fashion-mnist,
/// or FASHION_MNIST_DIR); without it the tests fail with the message saying how to get it.
/// </summary>
[TestClass]
public sealed class FashionMnistEndToEndTests
{
    private static MLContext s_ml = null!;
    private static IDataView s_train = null!, s_test = null!;
    private static int s_testRows;

    [ClassInitialize]
    public static void LoadData(TestContext _)
    {
        s_ml = new MLContext(seed: 1);
        string dir = FashionMnist.Locate(allowDownload: false);
        var train = FashionMnist.Load(dir, train: true);
        var test = FashionMnist.Load(dir, train: false);
        var split = FashionMnistProtocol.Split(train, poolSize: 5_000, labeledPerClass: 10, maxUnlabeled: 6_000);
        var teacher = OnnxTeacher.Train(s_ml, train, split.TeacherPool);
        var studentRows = s_ml.Data.LoadFromEnumerable(FashionMnistProtocol.StudentRows(train, split));
        var testRows = s_ml.Data.LoadFromEnumerable(FashionMnistProtocol.Rows(test, Enumerable.Range(0, 2_000), labeled: true));
        var teacherTransform = teacher.Apply(s_ml, studentRows, "TeacherProbabilities");
        var keys = s_ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(s_ml)).Fit(studentRows);
        // Cache so the ONNX teacher and the row conversion are not re-run for every Fit of this class.
        s_train = s_ml.Data.Cache(keys.Transform(teacherTransform.Transform(studentRows)));
        s_test = s_ml.Data.Cache(keys.Transform(testRows));
        s_testRows = 2_000;
    }

    private static DualHeadDistillOptions Options(float lambda) => new()
    {
        TeacherColumnName = "TeacherProbabilities",
        TeacherOutput = TeacherOutputKind.Probabilities,
        Backbone = DualHeadBackbone.SmallCnn,
        ImageShape = [1, 28, 28],
        NumberOfEpochs = 3,
        Lambda = lambda,
        Seed = 1,
    };

    private static double Accuracy(ITransformer model) => s_ml.MulticlassClassification.Evaluate(model.Transform(s_test)).MicroAccuracy;

    [TestMethod]
    public void DualHeadBeatsCeOnlyStudentOnTheSameLabels()
    {
        using var dho = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(0.5f)).Fit(s_train);
        double dhoAccuracy = Accuracy(dho);
        double ceHeadAccuracy = Accuracy(dho.WithAlphaBeta(1, dho.Beta));
        double kdHeadAccuracy = Accuracy(dho.WithAlphaBeta(0, dho.Beta));

        // CE-only: the same student, labels, steps and seed, with the distillation term switched off.
        using var ceOnly = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(1f)).Fit(s_train);
        double ceOnlyAccuracy = Accuracy(ceOnly.WithAlphaBeta(1, ceOnly.Beta));

        var teacherProbabilities = s_train.GetColumn<float[]>("TeacherProbabilities").Take(1).Single();
        Console.WriteLine($"test rows {s_testRows}: DHO {dhoAccuracy:P2}, its CE head {ceHeadAccuracy:P2}, its KD head {kdHeadAccuracy:P2}, CE-only student {ceOnlyAccuracy:P2}; {dho.TrainingReport.TotalSteps} steps at {dho.TrainingReport.MeanStepMilliseconds:0.0} ms");
        Assert.AreEqual(10, teacherProbabilities.Length);
        Assert.IsTrue(dhoAccuracy > ceOnlyAccuracy + 0.03, $"DHO {dhoAccuracy:P2} should beat the CE-only student {ceOnlyAccuracy:P2} by 3 points");
        Assert.IsTrue(dhoAccuracy > ceHeadAccuracy, $"DHO {dhoAccuracy:P2} should beat its own CE head {ceHeadAccuracy:P2}");
        Assert.AreEqual(100, dho.TrainingReport.LabeledRows);
        Assert.AreEqual(6_000, dho.TrainingReport.UnlabeledRows);
    }
}
