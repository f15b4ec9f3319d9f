using TorchSharp;
using TorchSharp.Modules;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Export.Layers;

/// <summary>Conv2d as one ONNX Conv node (zero padding, groups, strides, dilations).</summary>
internal static class ConvolutionExporters
{
    public static void Register() => OnnxLayerExporters.Register<Conv2d>(Conv);

    private static OnnxValue Conv(OnnxExportContext c, Conv2d conv, string path, OnnxValue x)
    {
        if (conv.transposed || conv.padding_mode != PaddingModes.Zeros || conv.padding_type is not null && conv.padding_type != Padding.Valid && conv.padding is null)
            throw OnnxExportContext.Unsupported(path, conv, "only zero-padded, non-transposed convolutions with explicit padding are exported");
        if (x.Shape.Length != 3 || x.Shape[0] != conv.in_channels)
            throw OnnxExportContext.Unsupported(path, conv, $"it expects [{conv.in_channels}, H, W] inputs but receives shape [{string.Join(", ", x.Shape)}]");
        long[] k = conv.kernel_size, s = conv.stride, d = conv.dilation, p = conv.padding ?? [0, 0];
        var inputs = new List<string> { x.Name, c.Weights($"{path}.weight", conv.weight!) };
        if (conv.bias is not null) inputs.Add(c.Weights($"{path}.bias", conv.bias));
        long h = (x.Shape[1] + 2 * p[0] - d[0] * (k[0] - 1) - 1) / s[0] + 1;
        long w = (x.Shape[2] + 2 * p[1] - d[1] * (k[1] - 1) - 1) / s[1] + 1;
        return c.Node("Conv", [.. inputs], [conv.out_channels, h, w], path,
            Ints("kernel_shape", k[0], k[1]), Ints("strides", s[0], s[1]), Ints("dilations", d[0], d[1]), Ints("pads", p[0], p[1], p[0], p[1]), Int("group", conv.groups));
    }
}
