using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>ExportToOnnx: parity with TorchSharp through ONNX Runtime on real test images, metadata, unsupported layers.</summary>
[TestClass]
public sealed class OnnxExportTests
{
    [TestMethod]
    [DataRow("Mlp")]
    [DataRow("SmallCnn")]
    [DataRow("ResNet18")]
    [DataRow("MobileNetV2")]
    [DataRow("MobileNetV3Small")]
    public void ExportedGraphMatchesTorchSharpOnRealTestImages(string backbone)
    {
        var model = DeploymentFixture.Model(backbone).Student;
        var features = DeploymentFixture.TestFeatures.Select(f => DeploymentFixture.StudentInput(backbone, f)).ToArray();
        int n = features.Length, d = features[0].Length, k = model.ClassNames.Count;
        var x = features.SelectMany(f => f).ToArray();

        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        using var session = new InferenceSession(stream.ToArray());
        using var input = OrtValue.CreateTensorValueFromMemory(x, [n, d]);
        using var outputs = session.Run(new RunOptions(), [model.FeatureColumnName], [input],
            [DualHeadColumns.Score, DualHeadColumns.CeHeadProbabilities, DualHeadColumns.KdHeadProbabilities, StudentOnnxExporter.PredictedIndexOutput, StudentOnnxExporter.PredictedNameOutput]);
        var score = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        var ce = outputs[1].GetTensorDataAsSpan<float>().ToArray();
        var kd = outputs[2].GetTensorDataAsSpan<float>().ToArray();
        var index = outputs[3].GetTensorDataAsSpan<long>().ToArray();
        var names = outputs[4].GetStringTensorAsArray();

        // The reference: TorchSharp logits, combined in C# by the library's HeadCombiner.
        var (ceLogits, kdLogits) = model.Scorer.ScoreAll(x, n, 64);
        float maxDiff = 0;
        var pCe = new float[k]; var pKd = new float[k]; var p = new float[k];
        for (int i = 0; i < n; i++)
        {
            HeadCombiner.Combine(ceLogits.AsSpan(i * k, k), kdLogits.AsSpan(i * k, k), model.Alpha, model.Beta, pCe, pKd, p);
            for (int j = 0; j < k; j++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(p[j] - score[i * k + j]));
                maxDiff = Math.Max(maxDiff, Math.Abs(pCe[j] - ce[i * k + j]));
                maxDiff = Math.Max(maxDiff, Math.Abs(pKd[j] - kd[i * k + j]));
            }
            int argmax = Array.IndexOf(score, score.AsSpan(i * k, k).ToArray().Max(), i * k) - i * k;
            Assert.AreEqual(argmax, (int)index[i], $"row {i}: PredictedLabelIndex is not the arg-max of Score");
            Assert.AreEqual(model.ClassNames[argmax], names[i]);
        }
        Console.WriteLine($"{backbone}: max |ONNX - TorchSharp| over {n} real test images x {k} classes x 3 outputs = {maxDiff:E2}");
        Assert.IsTrue(maxDiff <= 1e-4f, $"ONNX export differs from TorchSharp by {maxDiff}");
    }

    [TestMethod]
    public void ExportedModelCarriesClassNamesPreprocessingAndSettings()
    {
        var model = DeploymentFixture.Model(DualHeadBackbone.SmallCnn).Student;
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "student.onnx");
        model.ExportToOnnx(path);
        using var session = new InferenceSession(path);
        var meta = StudentOnnxMetadata.Read(session.ModelMetadata.CustomMetadataMap, path);
        CollectionAssert.AreEqual(FashionMnist.ClassNames.ToArray(), meta.ClassNames.ToArray());
        Assert.AreEqual(0.4f, meta.Alpha);
        Assert.AreEqual(1.5f, meta.Beta);
        Assert.AreEqual(DualHeadTrainingMode.DualHead, meta.Mode);
        CollectionAssert.AreEqual(new[] { 1, 28, 28 }, meta.ImageShape);
        Assert.AreEqual(784, meta.FeatureSize);
        Assert.AreEqual("Features", meta.InputName);
        Assert.AreEqual(model.StudentParameters, meta.StudentParameters);
        Assert.IsNotNull(meta.Preprocessing);
        Assert.AreEqual(1f / 255f, meta.Preprocessing.Scale);
        Assert.AreEqual(28, meta.Preprocessing.CropHeight);
        StringAssert.Contains(meta.Student, "SmallCnn");
        // The graph's own declaration of its interface.
        Assert.AreEqual(784, session.InputMetadata["Features"].Dimensions[1]);
        Assert.AreEqual(10, session.OutputMetadata[DualHeadColumns.Score].Dimensions[1]);
        // Written whole: no temporary file left beside it.
        CollectionAssert.AreEqual(new[] { "student.onnx" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName).ToArray());
    }

    [TestMethod]
    public void AlphaAndBetaAreBuiltIntoTheExportedGraph()
    {
        var (_, model) = DeploymentFixture.Model(DualHeadBackbone.Mlp);
        var x = DeploymentFixture.TestFeatures[0];
        float[] Run(DualHeadDistillTransformer at)
        {
            using var stream = new MemoryStream();
            at.ExportToOnnx(stream);
            using var session = new InferenceSession(stream.ToArray());
            using var input = OrtValue.CreateTensorValueFromMemory(x, [1, x.Length]);
            using var outputs = session.Run(new RunOptions(), [model.FeatureColumnName], [input], [DualHeadColumns.Score, DualHeadColumns.CeHeadProbabilities]);
            return [.. outputs[0].GetTensorDataAsSpan<float>(), .. outputs[1].GetTensorDataAsSpan<float>()];
        }
        var ceOnly = Run(model.WithAlphaBeta(1, model.Beta));
        CollectionAssert.AreEqual(ceOnly[10..], ceOnly[..10], "with alpha = 1, Score is the CE head's softmax");
        CollectionAssert.AreNotEqual(ceOnly[..10], Run(model.WithAlphaBeta(0.25f, model.Beta))[..10]);
    }

    private sealed class GeluBackbone : StudentBackbone
    {
        private readonly nn.Module<Tensor, Tensor> layers;

        public GeluBackbone() : base("gelu", 4, 3)
        {
            layers = nn.Sequential(("fc", nn.Linear(4, 3)), ("act", nn.GELU()));
            RegisterComponents();
        }

        public override string Description => "test backbone with a GELU";
        public override Tensor forward(Tensor input) => layers.forward(input);
        public override OnnxValue ExportOnnx(OnnxExportContext context, OnnxValue input) => context.Export(layers, "backbone", input);
    }

    private sealed class OpaqueBackbone() : StudentBackbone("opaque", 4, 3)
    {
        public override string Description => "test backbone that does not describe its layers";
        public override Tensor forward(Tensor input) => input.narrow(1, 0, 3);
    }

    [TestMethod]
    public void UnsupportedLayerIsAClearErrorNamingIt()
    {
        var info = new StudentExportInfo("Features", ["a", "b"], 0.5f, 1f, DualHeadTrainingMode.DualHead, null, null);
        using (var student = new DualHeadStudent(new GeluBackbone(), 2))
        {
            var e = Assert.ThrowsExactly<NotSupportedException>(() => StudentOnnxExporter.Build(student, info, OnnxGraphFlavor.Portable));
            StringAssert.Contains(e.Message, "'backbone.act'");
            StringAssert.Contains(e.Message, "GELU");
        }
        using (var student = new DualHeadStudent(new OpaqueBackbone(), 2))
        {
            var e = Assert.ThrowsExactly<NotSupportedException>(() => StudentOnnxExporter.Build(student, info, OnnxGraphFlavor.Portable));
            StringAssert.Contains(e.Message, "OpaqueBackbone");
        }
    }

    [TestMethod]
    public void AdaptivePoolingOfLargerImagesIsExportedExactly()
    {
        // 1x36x44 images: the CNN average-pools 9x11 maps to 7x7 (bins of unequal size).
        var options = new DualHeadDistillOptions { Backbone = DualHeadBackbone.SmallCnn, ImageShape = [1, 36, 44], EmbeddingSize = 8, InputNormalization = Specs.DualHeadInputNormalization.None };
        using var student = StudentFactory.Create(Specs.RunSpecs.Resolve(options, 36 * 44, 3).Spec.Student, seed: 2, device: CPU);
        student.eval();
        var info = new StudentExportInfo("Features", ["a", "b", "c"], 0.5f, 2f, DualHeadTrainingMode.DualHead, null, new Specs.InputImageShape(1, 36, 44));
        using var session = new InferenceSession(StudentOnnxExporter.ToBytes(StudentOnnxExporter.Build(student, info, OnnxGraphFlavor.Portable)));
        var r = new Random(3);
        var x = Enumerable.Range(0, 4 * 36 * 44).Select(_ => (float)r.NextDouble()).ToArray();
        using var input = OrtValue.CreateTensorValueFromMemory(x, [4, 36 * 44]);
        using var outputs = session.Run(new RunOptions(), ["Features"], [input], [DualHeadColumns.CeHeadProbabilities]);
        var onnx = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        var (ce, _) = new StudentScorer(student, CPU).ScoreAll(x, 4, 4);
        var p = new float[3];
        for (int i = 0; i < 4; i++)
        {
            HeadCombiner.Softmax(ce.AsSpan(i * 3, 3), 1, p);
            for (int j = 0; j < 3; j++) Assert.AreEqual(p[j], onnx[i * 3 + j], 1e-5f);
        }
    }
}
