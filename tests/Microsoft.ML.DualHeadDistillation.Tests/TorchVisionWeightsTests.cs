using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// PyTorch weights into the TorchVision students: torchvision state dicts (torch.save and safetensors) made by
/// Debian's torchvision 0.14 from random models with non-trivial BatchNorm statistics; our pooled features must equal
/// PyTorch's on real images; bad files fail naming the file and the keys, and leave the student untouched.
/// </summary>
[TestClass]
public sealed class TorchVisionWeightsTests
{
    [TestMethod]
    [DataRow("ResNet18", "resnet18")]
    [DataRow("ResNet34", "resnet34")]
    [DataRow("ResNet50", "resnet50")]
    [DataRow("MobileNetV2", "mobilenet_v2")]
    [DataRow("MobileNetV3Small", "mobilenet_v3_small")]
    [DataRow("MobileNetV3Large", "mobilenet_v3_large")]
    public void TorchvisionStateDictGivesPyTorchsFeatures(string name, string arch)
    {
        const int n = 4, size = 64;
        using var dir = new TempDir();
        var x = TorchVisionFixtures.Images(n, size);
        var (pt, safetensors, expected) = TorchVisionFixtures.PyTorchReference(arch, x, n, size, dir.Path);

        using var fromPt = TorchVisionFixtures.Student(name, size, seed: 1);
        var report = fromPt.Backbone.LoadPyTorchWeights(pt);
        Console.WriteLine(report);
        Assert.AreEqual("torch.save", report.Format);
        Assert.AreEqual(fromPt.Backbone.state_dict().Count, report.LoadedTensors, "every parameter and buffer of the backbone loaded");
        Assert.IsTrue(report.IgnoredKeys.Count > 0 && report.IgnoredKeys.All(k => fromPt.Backbone.PretrainedIgnoredKeys.Any(p => k.StartsWith(p)) || k.EndsWith("num_batches_tracked")),
            $"only the classifier is left out: {string.Join(", ", report.IgnoredKeys)}");
        var ours = TorchVisionFixtures.Embed(fromPt, x, n);
        var (absolute, relative) = TorchVisionFixtures.Difference(ours, expected);
        Console.WriteLine($"{name} from torch.save: max |ours - PyTorch| = {absolute:E2} ({relative:E2} of max |z|) on {n} real images");
        Assert.IsTrue(relative <= 1e-4f, $"{name}: our features differ from PyTorch's by {absolute} ({relative} of the feature scale)");

        using var fromSafetensors = TorchVisionFixtures.Student(name, size, seed: 2);
        Assert.AreEqual("safetensors", fromSafetensors.Backbone.LoadPyTorchWeights(safetensors).Format);
        CollectionAssert.AreEqual(ours, TorchVisionFixtures.Embed(fromSafetensors, x, n), "the safetensors file gives the same model as the torch.save file");
    }

    [TestMethod]
    public void WrongArchitectureListsMissingAndUnexpectedKeysAndLeavesTheStudentUntouched()
    {
        const int n = 2, size = 64;
        using var dir = new TempDir();
        var x = TorchVisionFixtures.Images(n, size);
        var (pt, _, _) = TorchVisionFixtures.PyTorchReference("resnet18", x, n, size, dir.Path);

        using var resnet34 = TorchVisionFixtures.Student("ResNet34", size, seed: 1);
        var before = TorchVisionFixtures.Embed(resnet34, x, n);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => resnet34.Backbone.LoadPyTorchWeights(pt));
        StringAssert.Contains(e.Message, pt);
        StringAssert.Contains(e.Message, "missing keys");
        StringAssert.Contains(e.Message, "layer1.2.conv1.weight", "ResNet-34's third block of layer1 is not in a ResNet-18 file");
        CollectionAssert.AreEqual(before, TorchVisionFixtures.Embed(resnet34, x, n), "a refused file changes nothing");

        using var small = TorchVisionFixtures.Student("ResNet18", size, seed: 1, stem: "small");
        var shape = Assert.ThrowsExactly<InvalidDataException>(() => small.Backbone.LoadPyTorchWeights(pt));
        StringAssert.Contains(shape.Message, "shape mismatches");
        StringAssert.Contains(shape.Message, "conv1.weight: file [64, 3, 7, 7], model [64, 3, 3, 3]");

        using var mobilenet = TorchVisionFixtures.Student("MobileNetV2", size, seed: 1);
        var unexpected = Assert.ThrowsExactly<InvalidDataException>(() => mobilenet.Backbone.LoadPyTorchWeights(pt));
        StringAssert.Contains(unexpected.Message, "unexpected keys");
        StringAssert.Contains(unexpected.Message, "layer1.0.bn1.bias");
        StringAssert.Contains(unexpected.Message, "more)", "long lists are cut, with the count of the rest");
    }

    [TestMethod]
    public void DamagedOrMissingFilesNameTheFile()
    {
        using var dir = new TempDir();
        using var student = TorchVisionFixtures.Student("MobileNetV3Small", 32, seed: 1);
        var missing = Assert.ThrowsExactly<FileNotFoundException>(() => student.Backbone.LoadPyTorchWeights(Path.Combine(dir.Path, "absent.pt")));
        StringAssert.Contains(missing.Message, "absent.pt");
        string junk = dir.File("junk.pt", [.. "PK\u0003\u0004 not really a zip"u8]);
        var damaged = Assert.ThrowsExactly<InvalidDataException>(() => student.Backbone.LoadPyTorchWeights(junk));
        StringAssert.Contains(damaged.Message, junk);
        string text = dir.File("weights.txt", [.. "hello, these are not weights"u8]);
        var notWeights = Assert.ThrowsExactly<InvalidDataException>(() => student.Backbone.LoadPyTorchWeights(text));
        StringAssert.Contains(notWeights.Message, "neither a torch.save zip");
    }

    [TestMethod]
    public void NonFiniteWeightsAreRefused()
    {
        using var dir = new TempDir();
        using var source = TorchVisionFixtures.Student("MobileNetV3Small", 32, seed: 1);
        using (torch.no_grad())
            source.Backbone.named_parameters().First(p => p.name == "features.1.block.0.0.weight").parameter[0, 0, 0, 0] = float.NaN;
        string path = Path.Combine(dir.Path, "nan.safetensors");
        TorchSharp.PyBridge.PyBridgeModuleExtensions.save_safetensors(source.Backbone, path);
        using var target = TorchVisionFixtures.Student("MobileNetV3Small", 32, seed: 2);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => target.Backbone.LoadPyTorchWeights(path));
        StringAssert.Contains(e.Message, "features.1.block.0.0.weight");
        StringAssert.Contains(e.Message, "NaN");
    }
}
