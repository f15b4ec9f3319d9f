using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>An MLP whose "pretrained" config carries mean/std: standardisation must use them, not the data's.</summary>
public sealed class PretrainedMlpDefinition : BackboneDefinition
{
    public static readonly float[] Mean = [.. Enumerable.Range(0, SyntheticData.D).Select(i => 0.1f * i)];
    public static readonly float[] Std = [.. Enumerable.Range(0, SyntheticData.D).Select(i => 1f + i)];
    public override string Name => "TestPretrainedMlp";
    public override string Summary => "An MLP with a pretrained config (tests).";
    public override PretrainedConfig Pretrained => new(Mean, Std);
    public override StudentBackbone Create(BackboneSpec spec) => new MlpBackbone(spec.InputSize, [16], spec.EmbeddingSize);
}

[TestClass]
public sealed class StandardizationTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    [TestMethod]
    public void StatisticsAreThoseOfEveryTrainingRowPerFeatureForVectors()
    {
        var rows = SyntheticData.Rows(30, 90);
        var data = SyntheticData.Load(s_ml, rows);
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        var stats = model.InputStandardization!;
        Assert.AreEqual(SyntheticData.D, stats.Mean.Length);
        for (int j = 0; j < SyntheticData.D; j++)
        {
            double mean = rows.Average(r => (double)r.Features[j]);
            double std = Math.Sqrt(rows.Average(r => (r.Features[j] - mean) * (r.Features[j] - mean)));
            Assert.AreEqual(mean, stats.Mean[j], 1e-5, $"mean of feature {j} (labeled and unlabeled rows)");
            Assert.AreEqual(std, stats.Std[j], 1e-5, $"std of feature {j}");
        }
        Assert.AreEqual(stats.ToString(), model.TrainingReport.InputStatistics!.ToString());
        StringAssert.StartsWith(model.TrainingReport.Student, "standardised input; ");
    }

    [TestMethod]
    public void ImageStatisticsArePerChannelAndAConstantChannelKeepsStdOne()
    {
        // 2 channels of 4x4: channel 0 varies, channel 1 is constant 3.
        var r = new Random(5);
        var rows = SyntheticData.Rows(30, 60).Select(row =>
        {
            var f = new float[32];
            for (int i = 0; i < 16; i++) f[i] = (float)r.NextDouble() * 4 + row.Features[0];
            for (int i = 16; i < 32; i++) f[i] = 3f;
            return new ImageRow { Label = row.Label, Pixels = f, TeacherLogits = row.TeacherLogits };
        }).ToList();
        var data = ImageRow.Load(s_ml, rows);
        var o = SyntheticData.MlpOptions(epochs: 1);
        o.Backbone = DualHeadBackbone.SmallCnn;
        o.ImageShape = [2, 4, 4];
        o.FeatureColumnName = "Pixels";
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        var stats = model.InputStandardization!;
        Assert.AreEqual(2, stats.Mean.Length);
        var channel0 = rows.SelectMany(x => x.Pixels.Take(16)).Select(v => (double)v).ToArray();
        double m0 = channel0.Average();
        Assert.AreEqual(m0, stats.Mean[0], 1e-4);
        Assert.AreEqual(Math.Sqrt(channel0.Average(v => (v - m0) * (v - m0))), stats.Std[0], 1e-4);
        Assert.AreEqual(3f, stats.Mean[1]);
        Assert.AreEqual(1f, stats.Std[1], "a constant channel keeps std 1");
    }

    [TestMethod]
    public void StatisticsAreSavedReloadedAndExportedAndOnnxEqualsTorchSharp()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 90));
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        var stats = model.InputStandardization!;
        using var dir = new TempDir();

        // Checkpoint: the statistics come back with the weights.
        string ckpt = Path.Combine(dir.Path, "run.ckpt");
        model.SaveCheckpoint(ckpt);
        using (var restored = DualHeadCheckpoint.Load(ckpt).ToModel())
        {
            CollectionAssert.AreEqual(stats.Mean, restored.InputStandardization!.Mean);
            CollectionAssert.AreEqual(stats.Std, restored.InputStandardization.Std);
            CollectionAssert.AreEqual(model.Transform(data).GetColumn<float[]>("Score").First(), restored.Transform(data).GetColumn<float[]>("Score").First());
        }
        // A released (disposed) model rebuilds its student with the same statistics.
        model.Dispose();
        CollectionAssert.AreEqual(stats.Mean, model.Student.InputStandardization!.Statistics.Mean);

        // ONNX: the graph starts with Sub/Div of the statistics; its outputs equal TorchSharp's; the metadata lists them.
        string onnx = Path.Combine(dir.Path, "student.onnx");
        model.ExportToOnnx(onnx);
        var graph = Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx)).Graph;
        var first = graph.Node.First(n => n.Input.Contains(model.FeatureColumnName));
        Assert.AreEqual("Sub", first.OpType);
        ExtensibilityTests.AssertOnnxMatchesTorchSharp(model, onnx, data);
        using var session = new InferenceSession(onnx);
        var metadata = StudentOnnxMetadata.Read(session.ModelMetadata.CustomMetadataMap, onnx);
        CollectionAssert.AreEqual(stats.Mean, metadata.Standardization!.Mean);
        CollectionAssert.AreEqual(stats.Std, metadata.Standardization.Std);

        // ML.NET's zip (the same graph in an OnnxTransformer) scores like the model.
        string zip = Path.Combine(dir.Path, "model.zip");
        DualHeadModel.Save(s_ml, model, data.Schema, zip);
        var loaded = DualHeadModel.Load(new MLContext(), zip, out _);
        var a = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        var b = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i]);
    }

    [TestMethod]
    public void NoneKeepsTheInputAsIs()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 60));
        var o = SyntheticData.MlpOptions(epochs: 1);
        o.InputNormalization = DualHeadInputNormalization.None;
        using var none = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        using var standardized = s_ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        Assert.IsNull(none.InputStandardization);
        Assert.IsNull(none.Student.InputStandardization);
        Assert.IsNull(none.TrainingReport.InputStatistics);
        Assert.AreEqual(standardized.StudentParameters, none.StudentParameters, "the statistics are buffers, not parameters");
        using var dir = new TempDir();
        string onnx = Path.Combine(dir.Path, "student.onnx");
        none.ExportToOnnx(onnx);
        var graph = Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx)).Graph;
        Assert.IsFalse(graph.Node.Any(n => n.OpType is "Sub" or "Div" && n.Name.Contains("input_standardization")));
        CollectionAssert.AreNotEqual(SyntheticData.Weights(none), SyntheticData.Weights(standardized), "standardising changes what is learned");
    }

    [TestMethod]
    public void APretrainedConfigGivesTheStatistics()
    {
        DualHeadRegistry.Backbones.Register(new PretrainedMlpDefinition());
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 60));
        var o = SyntheticData.MlpOptions(epochs: 1);
        o.Backbone = "TestPretrainedMlp";
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        CollectionAssert.AreEqual(PretrainedMlpDefinition.Mean, model.InputStandardization!.Mean);
        CollectionAssert.AreEqual(PretrainedMlpDefinition.Std, model.InputStandardization.Std);
    }

    private sealed class Key { public string Label { get; set; } = ""; }

    private sealed class ImageRow
    {
        public string Label { get; set; } = "";
        [VectorType(32)] public float[] Pixels { get; set; } = [];
        [VectorType(SyntheticData.K)] public float[] TeacherLogits { get; set; } = [];

        public static IDataView Load(MLContext ml, IEnumerable<ImageRow> rows)
        {
            var data = ml.Data.LoadFromEnumerable(rows);
            var keys = ml.Data.LoadFromEnumerable(SyntheticData.ClassNames.Select(n => new Key { Label = n }));
            return ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys).Fit(data).Transform(data);
        }
    }
}
