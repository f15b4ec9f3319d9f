using DualHeadML.Samples.Onnx;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Data.Images;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.DualHeadDistillation.Training;
using Microsoft.ML.DualHeadDistillation.Training.Augmentation;
using Microsoft.ML.DualHeadDistillation.Training.Batches;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The three teacher views: Cached, SameCropOnline (the student's very crop), CachedViews(V).</summary>
[TestClass]
public sealed class TeacherViewTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    /// <summary>An echo teacher (logits = its input, flattened) on 6x6 RGB crops: its logits show what it was given.</summary>
    private static TeacherSoftLabelsTransformer EchoTeacher(TempDir dir, IDataView data) =>
        s_ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
        {
            ModelPath = dir.File("echo.onnx", TinyOnnxModels.Echo(3, 6, 6)),
            InputColumnName = "Image",
            ClassNames = Enumerable.Range(0, 108).Select(i => $"c{i}").ToArray(),
            Preprocessing = new TeacherPreprocessing { ResizeShorterSide = 6, CropHeight = 6, CropWidth = 6, Scale = 1f / 255f },
        }).Fit(data);

    /// <summary>Batches of two epochs from the real Paired source and assembler, with the echo teacher on crops.</summary>
    private static List<(int Epoch, float[] Features, float[] Teacher, int Rows)> EchoBatches(DualHeadTeacherView view, int views)
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 8, 16);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows);
        using var teacher = EchoTeacher(dir, data);
        var label = LabelInfo.FromClassNames("Label", Enumerable.Range(0, 108).Select(i => $"c{i}").ToArray());
        var augmentation = ImageAugmentation.Default with { Brightness = 0.3f, Contrast = 0.3f, Saturation = 0.3f };
        var spec = new ImageInputSpec(new InputImageShape(3, 6, 6), 9, augmentation, view, views);
        var columns = TrainingColumns.ForScoring(label, FeatureInput.Image("Image", spec));
        var crop = new CropTeacher(teacher, label, spec);
        const int seed = 4;
        var sampler = new ImageSampler(augmentation, 3, 9, spec.Crop, seed, view == DualHeadTeacherView.CachedViews ? views : 0);
        bool cached = view == DualHeadTeacherView.CachedViews;
        var builder = new SampleStoreBuilder(columns, ImageColumn.Create(data.Schema, "Image", 3, "FeatureColumnName"), 9, TeacherOutputKind.Logits, FitCancellation.None, _ => { }, _ => { },
            cached ? crop : null, cached ? sampler : null, cached ? views : 0);
        using var store = builder.Build(data, null);
        var set = TrainingSet.FromStore(store, 108, 108, FitCancellation.None, onlineTeacher: cached ? null : crop, teacherViews: cached ? views : 1);
        var source = DualHeadRegistry.BatchSources.Get("Paired").Create(new BatchSourceContext(new TrainingRows(set, sampler), new BatchSpec("Paired", 4, 4, SpecSettings.Empty), seed, true, true, Workers: 2));
        var result = new List<(int, float[], float[], int)>();
        for (int epoch = 1; epoch <= 4; epoch++)
            foreach (var b in source.NextEpoch()) result.Add((epoch, b.Features[..(b.Rows * 108)], b.Teacher[..(b.Rows * 108)], b.Rows));
        Assert.AreEqual(cached ? 24 * views : 4 * 4 * 8, crop.Rows, "crops the teacher labelled");
        return result;
    }

    private static void AssertTeacherSawTheStudentsCrops(List<(int Epoch, float[] Features, float[] Teacher, int Rows)> batches)
    {
        Assert.AreEqual(16, batches.Count);
        foreach (var (epoch, features, teacher, rows) in batches)
        {
            Assert.AreEqual(8, rows);
            for (int i = 0; i < features.Length; i++)
                Assert.AreEqual(features[i], teacher[i], 1e-6f, $"epoch {epoch}, value {i}: the teacher's input differs from the student's crop");
        }
        // Augmentation is on: the crops differ between epochs.
        Assert.IsFalse(batches[0].Features.SequenceEqual(batches[4].Features));
    }

    [TestMethod]
    public void SameCropOnlineGivesTheTeacherTheStudentsVeryCrop() => AssertTeacherSawTheStudentsCrops(EchoBatches(DualHeadTeacherView.SameCropOnline, 1));

    [TestMethod]
    public void CachedViewsLabelsTheViewEachEpochTrainsOn()
    {
        var batches = EchoBatches(DualHeadTeacherView.CachedViews, 2);
        AssertTeacherSawTheStudentsCrops(batches);
        // Epoch 3 trains on the views of epoch 1: same rows in a new order, so compare as sets of samples.
        static HashSet<string> Samples(IEnumerable<float[]> features) =>
            features.SelectMany(f => f.Chunk(108)).Select(s => string.Join(",", s.Select(v => v.ToString("R")))).ToHashSet();
        var epoch1 = Samples(batches.Where(b => b.Epoch == 1).Select(b => b.Features));
        var epoch3 = Samples(batches.Where(b => b.Epoch == 3).Select(b => b.Features));
        var epoch2 = Samples(batches.Where(b => b.Epoch == 2).Select(b => b.Features));
        Assert.IsTrue(epoch3.IsSubsetOf(epoch1.Union(epoch2)) && epoch3.Intersect(epoch1).Count() >= 16, "epoch 3 must reuse epoch 1's views");
    }

    private static TeacherSoftLabelsTransformer ConvTeacher(TempDir dir, IDataView data) =>
        s_ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
        {
            ModelPath = dir.File("conv.onnx", TinyOnnxModels.ConvClassifier(3, 8, 8, 3, seed: 2, hidden: 8).Onnx),
            InputColumnName = "Image",
            ClassNames = ImageFixtures.ClassNames,
            Preprocessing = new TeacherPreprocessing { ResizeShorterSide = 8, CropHeight = 8, CropWidth = 8, Scale = 1f / 255f },
        }).Fit(data);

    [TestMethod]
    public void EveryTeacherViewTrainsFromThePipelineApiDeterministically()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 12, 24);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows);
        using var teacher = ConvTeacher(dir, data);
        DualHeadDistillOptions Options(DualHeadTeacherView view)
        {
            var o = ImageFixtures.Options(epochs: 2);
            o.ImageShape = [3, 8, 8];
            o.Teacher = teacher;
            o.TeacherView = view;
            o.TeacherViews = 3;
            return o;
        }

        // Cached with the teacher given to the trainer = the same teacher as an upstream column; in a pipeline the
        // trainer needs no teacher column upstream (it makes its own).
        var noTeacherColumn = s_ml.Transforms.DropColumns("TeacherLogits").Fit(data).Transform(data);
        var shape = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(DualHeadTeacherView.Cached)).GetOutputSchema(MLNet.SchemaShapes.FromSchema(noTeacherColumn.Schema));
        Assert.IsTrue(shape.Any(c => c.Name == "Score"));
        using var held = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(DualHeadTeacherView.Cached)).Fit(noTeacherColumn);
        var upstream = ImageFixtures.Options(epochs: 2);
        upstream.ImageShape = [3, 8, 8];
        using var column = s_ml.MulticlassClassification.Trainers.DualHeadDistill(upstream).Fit(teacher.Transform(data)); // replaces the rows' TeacherLogits column
        CollectionAssert.AreEqual(SyntheticData.Weights(held), SyntheticData.Weights(column));

        using var online = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(DualHeadTeacherView.SameCropOnline)).Fit(data);
        using var online2 = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(DualHeadTeacherView.SameCropOnline)).Fit(data);
        CollectionAssert.AreEqual(SyntheticData.Weights(online), SyntheticData.Weights(online2), "SameCropOnline must be deterministic");
        Assert.AreEqual(online.TrainingReport.TotalSteps * 16L, online.TrainingReport.TeacherCrops, "one crop per sample per step (8 labeled + 8 unlabeled)");
        Assert.IsTrue(online.TrainingReport.TeacherSeconds > 0);
        CollectionAssert.AreNotEqual(SyntheticData.Weights(held), SyntheticData.Weights(online));

        using var views = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(DualHeadTeacherView.CachedViews)).Fit(data);
        Assert.AreEqual(36L * 3, views.TrainingReport.TeacherCrops, "V = 3 views of 36 images, labelled once");
        Assert.AreEqual(DualHeadTeacherView.CachedViews, views.Spec.Images!.TeacherView);
        Assert.AreEqual(3, views.Spec.Images.TeacherViews);
        using var views2 = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(DualHeadTeacherView.CachedViews)).Fit(data);
        CollectionAssert.AreEqual(SyntheticData.Weights(views), SyntheticData.Weights(views2), "CachedViews must be deterministic");

        // Without a teacher object the crop views are refused, naming the option.
        var bare = ImageFixtures.Options();
        bare.TeacherView = DualHeadTeacherView.SameCropOnline;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(bare));
        Assert.AreEqual("Teacher", e.ParamName);
    }

    [TestMethod]
    public void AZeroShotTeacherSeesTheCropsToo()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 6, 12);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        const int E = 5;
        using var teacher = s_ml.Transforms.ZeroShotTeacher(new ZeroShotTeacherOptions
        {
            InputColumnName = "Pixels", // the crops come from the trainer; this column only fixes the schema check below
            ImageEncoderPath = dir.File("clip.onnx", TinyOnnxModels.ClipImageEncoder(TeacherFixtures.RandomMatrix(3 * 8 * 8, E, 3), 3, 8, 8)),
            ClassNames = ImageFixtures.ClassNames,
            ClassEmbeddings = TeacherFixtures.RandomMatrix(3, E, 4),
            Preprocessing = new TeacherPreprocessing { SourceShape = [3, 8, 8], Scale = 1f / 255f },
        }).Fit(TeacherFixtures.Vectors(s_ml, TeacherFixtures.RandomRows(2, 3 * 8 * 8, 1)));
        var o = ImageFixtures.Options(epochs: 2);
        o.ImageShape = [3, 8, 8];
        o.Teacher = teacher;
        o.TeacherView = DualHeadTeacherView.SameCropOnline;
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        Assert.AreEqual(2 * ((6 + 8) + (6 + 4)), model.TrainingReport.TeacherCrops, "per epoch: 6 labeled + 8 unlabeled crops, then 6 + the last 4");
        Assert.IsTrue(SyntheticData.Weights(model).All(float.IsFinite));
    }

    [TestMethod]
    public void AHeldTeacherRunsOncePerStoreAndNotAtAllWhenTheStoreIsReused()
    {
        using var dir = new TempDir();
        using var stores = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 12, 24);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        using var teacher = ConvTeacher(dir, ImageFixtures.Load(s_ml, dir.Path, rows));
        var o = ImageFixtures.Options(epochs: 1);
        o.ImageShape = [3, 8, 8];
        o.Teacher = teacher;
        o.ImageStoreFolder = stores.Path;
        teacher.Statistics.Reset();
        using (s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(ImageFixtures.Load(s_ml, dir.Path, rows))) { }
        Assert.AreEqual(36, teacher.Statistics.RowsComputed, "the fingerprint pass must not run the teacher");
        using (s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(ImageFixtures.Load(s_ml, dir.Path, rows))) { }
        Assert.AreEqual(36, teacher.Statistics.RowsComputed, "a reused store needs no teacher");
        Assert.AreEqual(1, Directory.GetFiles(stores.Path).Length);
    }
}
