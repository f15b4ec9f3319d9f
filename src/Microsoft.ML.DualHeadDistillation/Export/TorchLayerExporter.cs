using TorchSharp;
using TorchSharp.Modules;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>
/// Writes TorchSharp layers as ONNX nodes: Sequential (in order), Linear (Gemm), Conv2d (Conv),
/// ReLU (Relu), MaxPool2d (MaxPool), AdaptiveAvgPool2d (an exact pooling MatMul), Flatten, and Dropout /
/// Identity (nothing: inference is the identity). Any other layer is a <see cref="NotSupportedException"/>
/// that names it. Shapes are tracked without the batch dimension.
/// </summary>
internal static class TorchLayerExporter
{
    public static (string Output, long[] Shape) Export(OnnxGraphBuilder g, nn.Module module, string path, string input, long[] shape)
    {
        switch (module)
        {
            case Sequential sequential:
                foreach (var (name, child) in sequential.named_children())
                    (input, shape) = Export(g, child, $"{path}.{name}", input, shape);
                return (input, shape);
            case Linear linear:
                return Linear(g, linear, path, input, shape);
            case Conv2d conv:
                return Conv(g, conv, path, input, shape);
            case ReLU:
                return (g.Node("Relu", [input], outputHint: path), shape);
            case MaxPool2d pool:
                return MaxPool(g, pool, path, input, shape);
            case AdaptiveAvgPool2d adaptive:
                return AdaptiveAveragePool(g, adaptive, path, input, shape);
            case Flatten flatten:
                return Flatten(g, flatten, path, input, shape);
            case Dropout or Identity:
                return (input, shape);
            default:
                throw Unsupported(path, module, "it is not one of Sequential, Linear, Conv2d, ReLU, MaxPool2d, AdaptiveAvgPool2d, Flatten, Dropout, Identity");
        }
    }

    /// <summary>x W^T + b as one Gemm node (transB = 1).</summary>
    public static (string, long[]) Linear(OnnxGraphBuilder g, Linear linear, string path, string input, long[] shape)
    {
        if (shape.Length != 1 || shape[0] != linear.in_features)
            throw Unsupported(path, linear, $"it expects {linear.in_features} input features but receives shape [{string.Join(", ", shape)}]");
        var inputs = new List<string> { input, g.Floats($"{path}.weight", Values(linear.weight!), linear.out_features, linear.in_features) };
        if (linear.bias is not null) inputs.Add(g.Floats($"{path}.bias", Values(linear.bias), linear.out_features));
        return (g.Node("Gemm", [.. inputs], outputHint: path, attributes: Int("transB", 1)), [linear.out_features]);
    }

    private static (string, long[]) Conv(OnnxGraphBuilder g, Conv2d conv, string path, string input, long[] shape)
    {
        if (conv.transposed || conv.padding_mode != PaddingModes.Zeros || conv.padding_type is not null && conv.padding_type != Padding.Valid && conv.padding is null)
            throw Unsupported(path, conv, "only zero-padded, non-transposed convolutions with explicit padding are exported");
        if (shape.Length != 3 || shape[0] != conv.in_channels)
            throw Unsupported(path, conv, $"it expects [{conv.in_channels}, H, W] inputs but receives shape [{string.Join(", ", shape)}]");
        long[] k = conv.kernel_size, s = conv.stride, d = conv.dilation, p = conv.padding ?? [0, 0];
        var weight = g.Floats($"{path}.weight", Values(conv.weight!), conv.out_channels, conv.in_channels / conv.groups, k[0], k[1]);
        var inputs = new List<string> { input, weight };
        if (conv.bias is not null) inputs.Add(g.Floats($"{path}.bias", Values(conv.bias), conv.out_channels));
        string output = g.Node("Conv", [.. inputs], outputHint: path, attributes:
            [Ints("kernel_shape", k[0], k[1]), Ints("strides", s[0], s[1]), Ints("dilations", d[0], d[1]), Ints("pads", p[0], p[1], p[0], p[1]), Int("group", conv.groups)]);
        long h = (shape[1] + 2 * p[0] - d[0] * (k[0] - 1) - 1) / s[0] + 1;
        long w = (shape[2] + 2 * p[1] - d[1] * (k[1] - 1) - 1) / s[1] + 1;
        return (output, [conv.out_channels, h, w]);
    }

    private static (string, long[]) MaxPool(OnnxGraphBuilder g, MaxPool2d pool, string path, string input, long[] shape)
    {
        long[] k = pool.kernel_size, s = pool.stride ?? pool.kernel_size, p = pool.padding ?? [0, 0], d = pool.dilation ?? [1, 1];
        if (k.Length == 1) k = [k[0], k[0]];
        if (s.Length == 1) s = [s[0], s[0]];
        if (p.Length == 1) p = [p[0], p[0]];
        if (d.Length == 1) d = [d[0], d[0]];
        string output = g.Node("MaxPool", [input], outputHint: path, attributes:
            [Ints("kernel_shape", k[0], k[1]), Ints("strides", s[0], s[1]), Ints("pads", p[0], p[1], p[0], p[1]), Ints("dilations", d[0], d[1]), Int("ceil_mode", pool.ceil_mode ? 1 : 0)]);
        long Out(long size, int i)
        {
            double v = (double)(size + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i] + 1;
            return pool.ceil_mode ? (long)Math.Ceiling(v) : (long)Math.Floor(v);
        }
        return (output, [shape[0], Out(shape[1], 0), Out(shape[2], 1)]);
    }

    /// <summary>
    /// PyTorch's adaptive average pooling (output bin i covers input rows floor(i*H/oh) .. ceil((i+1)*H/oh) - 1)
    /// as a MatMul of [C, H*W] with a fixed [H*W, oh*ow] averaging matrix, exact for any sizes.
    /// </summary>
    private static (string, long[]) AdaptiveAveragePool(OnnxGraphBuilder g, AdaptiveAvgPool2d pool, string path, string input, long[] shape)
    {
        long c = shape[0], h = shape[1], w = shape[2];
        long oh = pool.output_size[0], ow = pool.output_size.Length > 1 ? pool.output_size[1] : pool.output_size[0];
        var matrix = new float[h * w * oh * ow];
        for (long i = 0; i < oh; i++)
        for (long j = 0; j < ow; j++)
        {
            long h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh, w0 = j * w / ow, w1 = ((j + 1) * w + ow - 1) / ow;
            float weight = 1f / ((h1 - h0) * (w1 - w0));
            for (long y = h0; y < h1; y++)
                for (long x = w0; x < w1; x++)
                    matrix[(y * w + x) * oh * ow + i * ow + j] = weight;
        }
        string flat = g.Node("Reshape", [input, g.Int64s($"{path}.in_shape", 0, c, h * w)], outputHint: $"{path}.flat");
        string pooled = g.Node("MatMul", [flat, g.Floats($"{path}.pooling", matrix, h * w, oh * ow)], outputHint: $"{path}.pooled");
        return (g.Node("Reshape", [pooled, g.Int64s($"{path}.out_shape", 0, c, oh, ow)], outputHint: path), [c, oh, ow]);
    }

    private static (string, long[]) Flatten(OnnxGraphBuilder g, Flatten flatten, string path, string input, long[] shape)
    {
        if (flatten.start_dim != 1 || flatten.end_dim != -1)
            throw Unsupported(path, flatten, $"only Flatten(start_dim: 1, end_dim: -1) is exported; this one has start_dim {flatten.start_dim}, end_dim {flatten.end_dim}");
        return (g.Node("Flatten", [input], outputHint: path, attributes: Int("axis", 1)), [shape.Aggregate(1L, (a, b) => a * b)]);
    }

    public static float[] Values(Tensor tensor)
    {
        using var scope = NewDisposeScope(); // detach/cpu/contiguous may each create a tensor
        return tensor.detach().cpu().contiguous().data<float>().ToArray();
    }

    public static NotSupportedException Unsupported(string path, nn.Module module, string reason) =>
        new($"ONNX export does not support layer '{path}' ({module.GetType().Name}): {reason}.");
}
