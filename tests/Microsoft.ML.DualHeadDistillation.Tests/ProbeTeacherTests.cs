using System.Reflection;
using DualHeadML.Samples;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// The benchmarks' "pretrained model + few labels" teacher (<see cref="ResNet18ProbeTeacher"/>): the ImageNet
/// ResNet-18 ONNX of Microsoft.ML.DnnImageFeaturizer.ResNet18, frozen, with a linear probe trained on labeled
/// Fashion-MNIST, exported as one ONNX graph that TeacherSoftLabels runs; and the grey-to-RGB resize the
/// benchmark feeds it.
/// </summary>
[TestClass]
public sealed class ProbeTeacherTests
{
    private const int Size = 32;

    private static string Models => typeof(ProbeTeacherTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "DnnImageModels").Value!;

    private sealed class Row
    {
        public string Label { get; set; } = "";
        [VectorType(3 * Size * Size)] public float[] Pixels { get; set; } = [];
    }

    private static IDataView Rows(MLContext ml, FashionMnistSplit images, int from, int count) =>
        ml.Data.LoadFromEnumerable(Enumerable.Range(from, count).Select(i => new Row
        {
            Label = FashionMnist.ClassNames[images.Labels[i]],
            Pixels = GreyImages.ToRgb(images.Pixels.AsSpan(i * 784, 784), Size),
        }).ToList());

    [TestMethod]
    public void ProbeTeacherIsOneOnnxGraphThatClassifiesHeldOutImagesFarAboveChance()
    {
        var ml = new MLContext(seed: 1);
        var train = FashionMnist.Load(FashionMnist.Locate(allowDownload: false), train: true);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml));
        var pool = Rows(ml, train, 0, 400);
        var keyed = keys.Fit(pool);
        var probe = ResNet18ProbeTeacher.Train(ml, ml.Data.Cache(keyed.Transform(pool)), "Pixels", "Label", Size, epochs: 3, seed: 1, packageFolder: Models);
        Console.WriteLine($"probe: {probe.Parameters:N0} parameters, {probe.TrainSeconds:0.0} s, {probe.Onnx.Length:N0} bytes");

        // One self-contained graph: the [N, 3*S*S] feature column in, K probabilities out (nothing else needed).
        string path = Path.Combine(Path.GetTempPath(), $"probe-{Environment.ProcessId}.onnx");
        File.WriteAllBytes(path, probe.Onnx);
        try
        {
            using (var session = new InferenceSession(path))
            {
                Assert.AreEqual("Pixels", session.InputMetadata.Keys.Single());
                CollectionAssert.AreEqual(new[] { -1, 3 * Size * Size }, session.InputMetadata["Pixels"].Dimensions);
                CollectionAssert.Contains(session.OutputMetadata.Keys.ToList(), ResNet18ProbeTeacher.OutputName);
            }
            var heldOut = keyed.Transform(Rows(ml, train, 1_000, 300));
            using var teacher = ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
            {
                InputColumnName = "Pixels", OutputColumnName = "Teacher", ModelPath = path, ModelInputName = probe.InputName,
                ModelOutputName = ResNet18ProbeTeacher.OutputName, ClassNames = FashionMnist.ClassNames,
            }).Fit(heldOut);
            var scored = teacher.Transform(heldOut);
            var labels = scored.GetColumn<uint>("Label").Select(k => (int)k - 1).ToArray();
            var outputs = scored.GetColumn<float[]>("Teacher").ToArray();
            Assert.IsTrue(outputs.All(o => o.Length == 10 && o.All(float.IsFinite)), "the teacher column must hold 10 finite values per row");
            int correct = outputs.Zip(labels, (o, y) => Array.IndexOf(o, o.Max()) == y ? 1 : 0).Sum();
            double accuracy = correct / (double)labels.Length;
            Console.WriteLine($"probe teacher on 300 held-out images after 400 labeled: {accuracy:P1}");
            Assert.IsTrue(accuracy > 0.5, $"a linear probe on ImageNet features should classify Fashion-MNIST far above chance (10 %); got {accuracy:P1}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void GreyToRgbMatchesTorchBilinearInterpolation()
    {
        var test = FashionMnist.Load(FashionMnist.Locate(allowDownload: false), train: false);
        foreach (int size in new[] { 20, 28, 64, 97 })
        {
            using var scope = NewDisposeScope();
            var expected = nn.functional.interpolate(tensor(test.Pixels.AsSpan(0, 784).ToArray(), [1, 1, 28, 28]), [size, size],
                mode: InterpolationMode.Bilinear, align_corners: false).data<float>().ToArray();
            var rgb = GreyImages.ToRgb(test.Pixels.AsSpan(0, 784), size);
            Assert.AreEqual(3 * size * size, rgb.Length);
            for (int c = 0; c < 3; c++)
            {
                float max = 0;
                for (int i = 0; i < size * size; i++) max = Math.Max(max, Math.Abs(rgb[c * size * size + i] - expected[i]));
                Assert.IsTrue(max < 1e-5f, $"size {size}, channel {c}: max |ours - torch| {max}");
            }
        }
        Assert.ThrowsExactly<ArgumentException>(() => GreyImages.ToRgb(new float[100], 32));
    }
}
