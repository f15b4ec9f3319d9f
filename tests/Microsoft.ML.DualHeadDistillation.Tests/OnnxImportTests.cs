using System.Reflection;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Students.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// ONNX CNNs as pretrained students: the ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0
/// (restored by this project like any package) imported into TorchSharp reproduces ONNX Runtime's features on real
/// images, reads RGB where the graph reads BGR, exports back to ONNX, trains in a Fit; unsupported graphs are refused
/// naming the node.
/// </summary>
[TestClass]
public sealed class OnnxImportTests
{
    private static string Models => typeof(OnnxImportTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "DnnImageModels").Value!;
    private static string ResNet18 => Path.Combine(DnnImageFeaturizerResNet18.Locate(Models), "ResNet18Onnx", "ResNet18.onnx");

    /// <summary>Real Fashion-MNIST images at S x S with three different channels (x, x^2, 1 - x), scaled by <paramref name="scale"/>.</summary>
    private static float[] ColourImages(int n, int size, float scale)
    {
        var grey = TorchVisionFixtures.Images(n, size);
        int plane = size * size;
        var x = new float[grey.Length];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < plane; j++)
            {
                float v = grey[i * 3 * plane + j];
                x[i * 3 * plane + j] = scale * v;
                x[i * 3 * plane + plane + j] = scale * v * v;
                x[i * 3 * plane + 2 * plane + j] = scale * (1 - v);
            }
        return x;
    }

    private static float[] Run(OnnxCnnNetwork network, float[] x, int n, int size)
    {
        network.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return network.forward(tensor(x, [n, 3, size, size])).data<float>().ToArray();
    }

    [TestMethod]
    public void ImportedResNet18ReproducesOnnxRuntimeOnRealImages()
    {
        const int n = 3, size = 224;
        var x = ColourImages(n, size, 255f);
        using var network = OnnxCnnNetwork.Import(ResNet18);
        Console.WriteLine($"imported: {network.Summary}; input [{string.Join(", ", network.DeclaredInputShape)}] -> {network.OutputSize}; {network.parameters().Sum(p => p.numel()):N0} parameters");
        Assert.AreEqual(512L, network.OutputSize);
        CollectionAssert.AreEqual(new long[] { 3, 224, 224 }, network.DeclaredInputShape);
        var ours = Run(network, x, n, size);

        using var session = new InferenceSession(ResNet18);
        var expected = new List<float>();
        int d = 3 * size * size;
        for (int i = 0; i < n; i++) // the graph's batch dimension is fixed at 1
        {
            using var input = OrtValue.CreateTensorValueFromMemory(x.AsSpan(i * d, d).ToArray(), [1, 3, size, size]);
            using var outputs = session.Run(new RunOptions(), ["Input247"], [input], ["Pooling395_Output_0"]);
            expected.AddRange(outputs[0].GetTensorDataAsSpan<float>().ToArray());
        }
        var (absolute, relative) = TorchVisionFixtures.Difference(ours, [.. expected]);
        Console.WriteLine($"ResNet18.onnx imported vs ONNX Runtime on {n} real images: max |diff| {absolute:E2}, {relative:E2} of max |z| {expected.Max(Math.Abs):0.###}");
        Assert.IsTrue(relative <= 1e-4f, $"the imported network differs from ONNX Runtime by {absolute} ({relative} of the feature scale)");
    }

    [TestMethod]
    public void SwappedChannelsReadRgbWhereTheGraphReadsBgrAndTheMeansComeFromThePreprocessingGraph()
    {
        const int n = 2, size = 64;
        var rgb = ColourImages(n, size, 255f);
        var bgr = new float[rgb.Length];
        int plane = size * size;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                Array.Copy(rgb, (i * 3 + c) * plane, bgr, (i * 3 + 2 - c) * plane, plane);
        using var raw = OnnxCnnNetwork.Import(ResNet18);
        using var swapped = OnnxCnnNetwork.Import(ResNet18, swapInputChannels: true);
        var (_, relative) = TorchVisionFixtures.Difference(Run(swapped, rgb, n, size), Run(raw, bgr, n, size));
        Assert.IsTrue(relative <= 1e-6f, $"swapped weights on RGB differ from the graph on BGR by {relative} of the scale");
        Assert.AreEqual(512, Run(raw, bgr, n, size).Length / n, "the 7x7 AveragePool is the global pool it stands for: 64x64 images work");

        var settings = DnnImageFeaturizerResNet18.BackboneSettings(Models);
        Assert.AreEqual("bgr", settings["channels"]);
        var mean = settings["mean"].Split(',').Select(v => float.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Console.WriteLine($"per-channel means (R, G, B) x 255: {string.Join(", ", mean.Select(m => (m * 255).ToString("0.00")))}");
        Assert.AreEqual(123.15, mean[0] * 255, 0.5, "R");
        Assert.AreEqual(115.90, mean[1] * 255, 0.5, "G");
        Assert.AreEqual(103.06, mean[2] * 255, 0.5, "B");
    }

    [TestMethod]
    public void ImportedBackboneExportsBackToOnnx()
    {
        const int n = 4, size = 64;
        var spec = DualHeadRegistry.Backbones.Get("OnnxCnn").Resolve(new BackboneRequest(3 * size * size, 128, [3, size, size], null, SpecSettings.From(DnnImageFeaturizerResNet18.BackboneSettings(Models)), "Features"));
        Assert.AreEqual(512, spec.EmbeddingSize);
        Assert.IsTrue(spec.Settings.ContainsKey("model_hash"));
        using var student = StudentFactory.Create(new StudentSpec(spec, 10, 2, DualHeadInputNormalization.None), seed: 1);
        StringAssert.Contains(student.Description, "22 Conv");
        var x = ColourImages(n, size, 1f);
        var expected = TorchVisionFixtures.Embed(student, x, n);

        var (absolute, relative) = TorchVisionFixtures.Difference(TorchVisionFixtures.ExportedEmbedding(student, x, n), expected);
        Console.WriteLine($"imported ResNet-18 re-exported: max |ONNX - TorchSharp| {absolute:E2} ({relative:E2} of max |z|) on {n} real 64x64 images");
        Assert.IsTrue(relative <= 1e-4f, $"{relative}");
    }

    [TestMethod]
    public void UnsupportedNodesAreRefusedNamingTheNode()
    {
        using var dir = new TempDir();
        var g = new OnnxGraphBuilder("sig");
        g.Input("image", TensorProto.Types.DataType.Float, 1, 3, 8, 8);
        string w = g.Floats("w", new float[4 * 3 * 3 * 3], 4, 3, 3, 3);
        string conv = g.Node("Conv", ["image", w], outputHint: "conv", attributes: [OnnxGraphBuilder.Ints("pads", 1, 1, 1, 1)]);
        g.Node("Sigmoid", [conv], g.Reserve("out"));
        g.Graph.Node[^1].Name = "my_sigmoid";
        g.Output("out", TensorProto.Types.DataType.Float, 1, 4, 8, 8);
        var model = new ModelProto { IrVersion = 8, Graph = g.Graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        string path = Path.Combine(dir.Path, "sigmoid.onnx");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
        var e = Assert.ThrowsExactly<NotSupportedException>(() => OnnxCnnNetwork.Import(path));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "'my_sigmoid' is a Sigmoid");
        var small = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => DualHeadRegistry.Backbones.Get("OnnxCnn").Resolve(new BackboneRequest(768, 16, [3, 16, 16], null, SpecSettings.From(DnnImageFeaturizerResNet18.BackboneSettings(Models)), "Features")));
        StringAssert.Contains(small.Message, "too small");
        StringAssert.Contains(small.Message, "ImageShape");
        var missing = Assert.ThrowsExactly<ArgumentException>(() => DualHeadRegistry.Backbones.Get("OnnxCnn").Resolve(new BackboneRequest(192, 16, [3, 8, 8], null, SpecSettings.Empty, "Features")));
        StringAssert.Contains(missing.Message, "'model'");
    }

    [TestMethod]
    public void PretrainedOnnxStudentTrainsInAFitWithItsOwnStandardisation()
    {
        using var dir = new TempDir();
        var settings = DnnImageFeaturizerResNet18.BackboneSettings(Models);
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 48).Select(i =>
        {
            var r = new Random(i);
            int c = i % 3;
            return new ImageRow3 { Label = i < 24 ? SyntheticData.ClassNames[c] : "", Features = Enumerable.Range(0, 3 * 32 * 32).Select(j => (float)r.NextDouble() * 0.5f + (j / 1024 == c ? 0.4f : 0f)).ToArray(), TeacherLogits = Enumerable.Range(0, 3).Select(k => k == c ? 3f : 0f).ToArray() };
        }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var keys = ml.Data.LoadFromEnumerable(SyntheticData.ClassNames.Select(name => new KeyRow { Label = name }));
        data = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys).Fit(data).Transform(data);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(new DualHeadDistillOptions
        {
            Backbone = "OnnxCnn", BackboneSettings = settings, ImageShape = [3, 32, 32], FreezeBackboneEpochs = 1, FreezeBatchNormStatistics = true,
            NumberOfEpochs = 1, LabeledBatchSize = 8, UnlabeledBatchSize = 8, Seed = 2, Device = DualHeadDevice.Cpu,
        }).Fit(data);
        var report = model.TrainingReport;
        StringAssert.Contains(report.Student, "OnnxCnn ResNet18.onnx");
        var mean = settings["mean"].Split(',').Select(v => float.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        CollectionAssert.AreEqual(mean, report.InputStatistics!.Mean, "the preprocessing of the weights standardises the input");
        using var imported = OnnxCnnNetwork.Import(settings["model"], swapInputChannels: true);
        var before = imported.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
        var after = model.Student.Backbone.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();
        CollectionAssert.AreEqual(before, after, "a frozen imported backbone keeps the graph's weights");
    }

    private sealed class ImageRow3
    {
        public string Label { get; set; } = "";
        [Microsoft.ML.Data.VectorType(3072)] public float[] Features { get; set; } = [];
        [Microsoft.ML.Data.VectorType(3)] public float[] TeacherLogits { get; set; } = [];
    }

    private sealed class KeyRow { public string Label { get; set; } = ""; }

    [TestMethod]
    public void TheImportedResNet18SplitsIntoStagesWhosePrefixAndSuffixAreTheForward()
    {
        const int n = 2, size = 64;
        using var network = OnnxCnnNetwork.Import(ResNet18);
        var names = network.StageNames;
        Console.WriteLine(string.Join(", ", names));
        // The stem (after its max-pool) and the 9 basic blocks (2-2-2-3 in this CNTK export); the pool after them is not a stage.
        Assert.AreEqual(10, names.Count, string.Join(", ", names));
        Assert.AreEqual("Pooling255_Output_0", names[0], "the first stage ends at the stem's max-pool");
        var x = ColourImages(n, size, 255f);
        network.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = tensor(x, [n, 3, size, size]);
        var whole = network.forward(images).data<float>().ToArray();
        foreach (int k in new[] { 1, 4, 10 })
        {
            var split = network.ForwardSuffix(network.ForwardPrefix(images, k), k).data<float>().ToArray();
            CollectionAssert.AreEqual(whole, split, $"prefix {k} then suffix is the forward");
        }
        Assert.AreEqual(2, network.StageModules(1).Count, "the stem: conv and BatchNorm");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => network.ForwardPrefix(images, 11));
    }
}
