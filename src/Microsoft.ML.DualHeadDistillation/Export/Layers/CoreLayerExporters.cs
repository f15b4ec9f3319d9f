using TorchSharp;
using TorchSharp.Modules;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Export.Layers;

/// <summary>
/// The built-in layer exporters: Sequential (children in order), Linear (Gemm), ReLU, Flatten, and Dropout /
/// Identity (nothing: inference is the identity). Convolution, pooling and batch norm have their own files.
/// Shapes are tracked without the batch dimension.
/// </summary>
internal static class CoreLayerExporters
{
    public static void RegisterAll()
    {
        OnnxLayerExporters.Register<Sequential>(Sequential);
        OnnxLayerExporters.Register<Linear>(Linear);
        OnnxLayerExporters.Register<ReLU>((c, _, path, x) => c.Relu(x, path));
        OnnxLayerExporters.Register<Flatten>(Flatten);
        OnnxLayerExporters.Register<Dropout>((_, _, _, x) => x);
        OnnxLayerExporters.Register<Identity>((_, _, _, x) => x);
        ConvolutionExporters.Register();
        PoolingExporters.Register();
        BatchNormExporters.Register();
        TorchVisionExporters.Register();
    }

    private static OnnxValue Sequential(OnnxExportContext c, Sequential sequential, string path, OnnxValue x)
    {
        foreach (var (name, child) in sequential.named_children())
            x = c.Export(child, $"{path}.{name}", x);
        return x;
    }

    /// <summary>x W^T + b as one Gemm node (transB = 1).</summary>
    private static OnnxValue Linear(OnnxExportContext c, Linear linear, string path, OnnxValue x)
    {
        if (x.Shape.Length != 1 || x.Shape[0] != linear.in_features)
            throw OnnxExportContext.Unsupported(path, linear, $"it expects {linear.in_features} input features but receives shape [{string.Join(", ", x.Shape)}]");
        var inputs = new List<string> { x.Name, c.Weights($"{path}.weight", linear.weight!) };
        if (linear.bias is not null) inputs.Add(c.Weights($"{path}.bias", linear.bias));
        return c.Node("Gemm", [.. inputs], [linear.out_features], path, Int("transB", 1));
    }

    private static OnnxValue Flatten(OnnxExportContext c, Flatten flatten, string path, OnnxValue x)
    {
        if (flatten.start_dim != 1 || flatten.end_dim != -1)
            throw OnnxExportContext.Unsupported(path, flatten, $"only Flatten(start_dim: 1, end_dim: -1) is exported; this one has start_dim {flatten.start_dim}, end_dim {flatten.end_dim}");
        return c.Node("Flatten", [x.Name], [x.Size], path, Int("axis", 1));
    }
}
