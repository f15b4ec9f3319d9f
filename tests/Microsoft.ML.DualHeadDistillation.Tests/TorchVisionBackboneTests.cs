using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Students.Backbones.TorchVision;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The TorchVision students: shapes, parameter counts, determinism, ONNX parity on real images, option errors.</summary>
[TestClass]
public sealed class TorchVisionBackboneTests
{
    [TestMethod]
    [DataRow("ResNet18", 512, 11_176_512L)]
    [DataRow("ResNet34", 512, 21_284_672L)]
    [DataRow("ResNet50", 2048, 23_508_032L)]
    [DataRow("MobileNetV2", 1280, 2_223_872L)]
    [DataRow("MobileNetV3Small", 1024, 1_517_856L)]
    [DataRow("MobileNetV3Large", 1280, 4_202_032L)]
    public void BackboneGivesPooledFeaturesWithTorchvisionsParameterCount(string name, int features, long torchvisionParametersWithoutClassifier)
    {
        // The expected counts are torchvision 0.14's (sum of numel over parameters) minus its last Linear.
        using var student = TorchVisionFixtures.Student(name, 64, seed: 1);
        long backbone = student.Backbone.parameters().Sum(p => p.numel());
        Assert.AreEqual(torchvisionParametersWithoutClassifier, backbone, $"{name}: backbone parameters");
        Assert.AreEqual(backbone + 2 * (features * 10 + 10), student.ParameterCount, "two Linear heads on z");
        Assert.AreEqual(features, student.Backbone.EmbeddingSize);
        var x = TorchVisionFixtures.Images(3, 64);
        var z = TorchVisionFixtures.Embed(student, x, 3);
        Assert.AreEqual(3 * features, z.Length);
        Assert.IsTrue(z.All(float.IsFinite));
        using var scope = NewDisposeScope();
        student.train();
        var (ce, kd) = student.forward(tensor(x, [3, x.Length / 3]));
        CollectionAssert.AreEqual(new long[] { 3, 10 }, ce.shape);
        CollectionAssert.AreEqual(new long[] { 3, 10 }, kd.shape);
        StringAssert.Contains(student.Description, name);
    }

    [TestMethod]
    [DataRow("ResNet18")]
    [DataRow("MobileNetV2")]
    [DataRow("MobileNetV3Small")]
    public void SmallInputStemKeepsResolutionIntoTheFirstStage(string name)
    {
        // A 32x32 image: the ImageNet stem divides it by 4 before the first stage (by 2 for MobileNet), the small stem does not.
        using var small = TorchVisionFixtures.Student(name, 32, seed: 1, stem: "small");
        using var imagenet = TorchVisionFixtures.Student(name, 32, seed: 1);
        Assert.IsTrue(((TorchVisionBackbone)small.Backbone).SmallInput);
        Assert.IsFalse(((TorchVisionBackbone)imagenet.Backbone).SmallInput);
        StringAssert.Contains(small.Backbone.Description, "small-input stem");
        var first = small.Backbone.named_parameters().First();
        Assert.AreEqual(3L, first.parameter.shape[^1], $"{first.name}: the small stem is a 3x3 convolution");
        var x = TorchVisionFixtures.Images(2, 32);
        Assert.AreEqual(2 * small.Backbone.EmbeddingSize, TorchVisionFixtures.Embed(small, x, 2).Length);
        Assert.AreEqual("small", TorchVisionFixtures.Spec(name, 32, "small").Settings["stem"]);
        // The stem's first convolution has stride 1 (ImageNet stem: 2), and ResNet's max-pool is gone.
        var smallConv = small.Backbone.named_modules().Select(m => m.module).OfType<TorchSharp.Modules.Conv2d>().First();
        var imagenetConv = imagenet.Backbone.named_modules().Select(m => m.module).OfType<TorchSharp.Modules.Conv2d>().First();
        Assert.AreEqual(1L, smallConv.stride[0]);
        Assert.AreEqual(2L, imagenetConv.stride[0]);
        if (name.StartsWith("ResNet"))
        {
            Assert.IsFalse(small.Backbone.named_modules().Any(m => m.module is TorchSharp.Modules.MaxPool2d), "no max-pool in the small stem");
            Assert.IsTrue(imagenet.Backbone.named_modules().Any(m => m.module is TorchSharp.Modules.MaxPool2d));
        }
    }

    [TestMethod]
    public void SameSeedSameWeightsOtherSeedOtherWeights()
    {
        float[] Weights(int seed)
        {
            using var s = TorchVisionFixtures.Student("MobileNetV3Small", 32, seed);
            return s.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();
        }
        var a = Weights(5);
        CollectionAssert.AreEqual(a, Weights(5));
        CollectionAssert.AreNotEqual(a, Weights(6));
    }

    [TestMethod]
    [DataRow("ResNet18", "imagenet", 64)]
    [DataRow("ResNet18", "small", 32)]
    [DataRow("ResNet34", "imagenet", 64)]
    [DataRow("ResNet50", "imagenet", 64)]
    [DataRow("MobileNetV2", "imagenet", 64)]
    [DataRow("MobileNetV2", "small", 32)]
    [DataRow("MobileNetV3Small", "imagenet", 64)]
    [DataRow("MobileNetV3Large", "imagenet", 64)]
    [DataRow("MobileNetV3Large", "small", 32)]
    public void ExportedBackboneMatchesTorchSharpOnRealImages(string name, string stem, int size)
    {
        using var student = TorchVisionFixtures.Student(name, size, seed: 3, stem: stem);
        TorchVisionFixtures.RandomizeBatchNorm(student, seed: 4);
        int n = 6;
        var x = TorchVisionFixtures.Images(n, size);
        var expected = TorchVisionFixtures.Embed(student, x, n);

        var actual = TorchVisionFixtures.ExportedEmbedding(student, x, n);
        var (absolute, relative) = TorchVisionFixtures.Difference(actual, expected);
        Console.WriteLine($"{name} ({stem} stem, {size}x{size}): max |ONNX - TorchSharp| = {absolute:E2} ({relative:E2} of max |z|) over {n} real images");
        Assert.IsTrue(relative <= 1e-4f, $"{name}: ONNX export differs from TorchSharp by {absolute} ({relative} of the feature scale)");
    }

    [TestMethod]
    public void GreyImageShapeIsRefusedNamingTheOption()
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => DualHeadRegistry.Backbones.Get("ResNet18")
            .Resolve(new BackboneRequest(784, 128, [1, 28, 28], null, Specs.SpecSettings.Empty, "Features")));
        StringAssert.Contains(e.Message, "ImageShape");
        StringAssert.Contains(e.Message, "3-channel");
        var tiny = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TorchVisionFixtures.Spec("MobileNetV2", 8));
        StringAssert.Contains(tiny.Message, "at least 16x16");
        Assert.AreEqual("small", TorchVisionFixtures.Spec("MobileNetV2", 8, "small").Settings["stem"], "the small stem takes 8x8 images");
        var stem = Assert.ThrowsExactly<ArgumentException>(() => TorchVisionFixtures.Spec("ResNet50", 64, "cifar"));
        StringAssert.Contains(stem.Message, "'stem'");
        StringAssert.Contains(stem.Message, "'cifar'");
    }
}
