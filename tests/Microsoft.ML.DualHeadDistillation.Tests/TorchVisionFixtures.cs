using System.Diagnostics;
using System.Reflection;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Shared by the TorchVision backbone tests: real Fashion-MNIST test images as 3-channel [3, S, S] rows, students
/// built through the registry, and the PyTorch reference (tests/fixtures/torchvision/torchvision_reference.py run
/// with Debian's python3-torchvision; scripts/install-test-tools.sh installs it).
/// </summary>
internal static class TorchVisionFixtures
{
    public const string Python = "/usr/bin/python3";

    /// <summary>The registry's names and torchvision's for each TorchVision backbone.</summary>
    public static readonly (string Ours, string Torchvision)[] Architectures =
    [
        ("ResNet18", "resnet18"), ("ResNet34", "resnet34"), ("ResNet50", "resnet50"),
        ("MobileNetV2", "mobilenet_v2"), ("MobileNetV3Small", "mobilenet_v3_small"), ("MobileNetV3Large", "mobilenet_v3_large"),
    ];

    /// <summary>
    /// The first <paramref name="n"/> Fashion-MNIST test images, bilinearly resized to S x S, as three different channels
    /// (x, x^2, 1 - x, so that a channel-order error shows), in [0, 1].
    /// </summary>
    public static float[] Images(int n, int size)
    {
        var test = FashionMnist.Load(FashionMnist.Locate(allowDownload: false), train: false);
        using var scope = NewDisposeScope();
        var grey = tensor(test.Pixels.AsSpan(0, n * 784).ToArray(), [n, 1, 28, 28]);
        var x = nn.functional.interpolate(grey, [size, size], mode: InterpolationMode.Bilinear, align_corners: false);
        return cat([x, x * x, 1 - x], 1).contiguous().data<float>().ToArray();
    }

    public static BackboneSpec Spec(string name, int size, string stem = "imagenet")
    {
        var definition = DualHeadRegistry.Backbones.Get(name);
        return definition.Resolve(new BackboneRequest(3 * size * size, 128, [3, size, size], null, SpecSettings.Empty.With("stem", stem), "Features"));
    }

    public static DualHeadStudent Student(string name, int size, int seed, string stem = "imagenet", int classes = 10) =>
        StudentFactory.Create(new StudentSpec(Spec(name, size, stem), classes, 2, DualHeadInputNormalization.None), seed);

    /// <summary>z of <paramref name="x"/> ([N, D] rows) in eval mode.</summary>
    public static float[] Embed(DualHeadStudent student, float[] x, int n)
    {
        student.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return student.Embed(tensor(x, [n, x.Length / n])).data<float>().ToArray();
    }

    /// <summary>z of <paramref name="x"/> ([N, D] rows) through the student's exported embedding graph, run by ONNX Runtime.</summary>
    public static float[] ExportedEmbedding(DualHeadStudent student, float[] x, int n)
    {
        var g = new Export.OnnxGraphBuilder("z");
        int d = student.Backbone.InputSize;
        g.Input("x", Onnx.TensorProto.Types.DataType.Float, -1, d);
        var z = student.ExportEmbedding(new Export.OnnxExportContext(g), new Export.OnnxValue("x", [d]));
        CollectionAssert.AreEqual(new long[] { student.Backbone.EmbeddingSize }, z.Shape);
        g.Node("Identity", [z.Name], g.Reserve("z"));
        g.Output("z", Onnx.TensorProto.Types.DataType.Float, -1, student.Backbone.EmbeddingSize);
        var model = new Onnx.ModelProto { IrVersion = Export.StudentOnnxExporter.IrVersion, Graph = g.Graph };
        model.OpsetImport.Add(new Onnx.OperatorSetIdProto { Domain = "", Version = Export.StudentOnnxExporter.OpsetVersion });
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(Google.Protobuf.MessageExtensions.ToByteArray(model));
        using var input = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(x, [n, d]);
        using var outputs = session.Run(new Microsoft.ML.OnnxRuntime.RunOptions(), ["x"], [input], ["z"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>Random but fixed BatchNorm statistics and affine values, so that eval-mode comparisons exercise them.</summary>
    public static void RandomizeBatchNorm(nn.Module module, int seed)
    {
        var rng = new Random(seed);
        float[] Uniform(long n, float lo, float hi) => Enumerable.Range(0, (int)n).Select(_ => lo + (float)rng.NextDouble() * (hi - lo)).ToArray();
        using var noGrad = no_grad();
        foreach (var (_, m) in module.named_modules())
        {
            if (m is not TorchSharp.Modules.BatchNorm2d bn) continue;
            long c = bn.num_features;
            using var mean = tensor(Uniform(c, -0.2f, 0.2f)); bn.running_mean!.copy_(mean);
            using var variance = tensor(Uniform(c, 0.5f, 1.5f)); bn.running_var!.copy_(variance);
            using var weight = tensor(Uniform(c, 0.5f, 1.5f)); bn.weight!.copy_(weight);
            using var bias = tensor(Uniform(c, -0.2f, 0.2f)); bn.bias!.copy_(bias);
        }
    }

    /// <summary>
    /// Runs the PyTorch reference for <paramref name="arch"/> on <paramref name="images"/> ([N, 3, S, S]) in
    /// <paramref name="dir"/>: returns the paths of its .pt and .safetensors state dicts and its features z.
    /// </summary>
    public static (string Pt, string Safetensors, float[] Features) PyTorchReference(string arch, float[] images, int n, int size, string dir)
    {
        string input = Path.Combine(dir, "input.bin");
        File.WriteAllBytes(input, System.Runtime.InteropServices.MemoryMarshal.AsBytes(images.AsSpan()).ToArray());
        string script = Path.Combine(RepositoryRoot(), "tests", "fixtures", "torchvision", "torchvision_reference.py");
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { script, "--arch", arch, "--input", input, "--n", n.ToString(), "--size", size.ToString(), "--out", dir })
            start.ArgumentList.Add(a);
        start.Environment["OMP_NUM_THREADS"] = "1";
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"{Python} could not start ({e.Message}): install Debian's python3-torchvision (bash scripts/install-test-tools.sh does).");
            throw;
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            Assert.IsTrue(process.WaitForExit(300_000), "the PyTorch reference did not finish in 5 minutes");
            Assert.AreEqual(0, process.ExitCode, $"the PyTorch reference failed (python3-torchvision installed? bash scripts/install-test-tools.sh installs it):\n{output.Result}\n{error.Result}");
            Console.WriteLine(output.Result.Trim());
        }
        var bytes = File.ReadAllBytes(Path.Combine(dir, $"{arch}.features.bin"));
        return (Path.Combine(dir, $"{arch}.pt"), Path.Combine(dir, $"{arch}.safetensors"), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());
    }

    public static string RepositoryRoot() =>
        typeof(TorchVisionFixtures).Assembly.GetCustomAttributes<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!;

    /// <summary>max |a - b| / max(|b|): the difference relative to the feature scale.</summary>
    public static (float Absolute, float Relative) Difference(float[] a, float[] b)
    {
        Assert.AreEqual(b.Length, a.Length, "length");
        float diff = 0, scale = 0;
        for (int i = 0; i < a.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(a[i] - b[i]));
            scale = Math.Max(scale, Math.Abs(b[i]));
        }
        return (diff, diff / Math.Max(scale, 1e-12f));
    }
}
