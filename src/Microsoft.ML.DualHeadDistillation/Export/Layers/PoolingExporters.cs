using TorchSharp;
using TorchSharp.Modules;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Export.Layers;

/// <summary>MaxPool2d (MaxPool) and AdaptiveAvgPool2d (an exact averaging MatMul, or GlobalAveragePool for a 1x1 output).</summary>
internal static class PoolingExporters
{
    public static void Register()
    {
        OnnxLayerExporters.Register<MaxPool2d>(MaxPool);
        OnnxLayerExporters.Register<AdaptiveAvgPool2d>(AdaptiveAveragePool);
    }

    private static OnnxValue MaxPool(OnnxExportContext c, MaxPool2d pool, string path, OnnxValue x)
    {
        long[] k = pool.kernel_size, s = pool.stride ?? pool.kernel_size, p = pool.padding ?? [0, 0], d = pool.dilation ?? [1, 1];
        if (k.Length == 1) k = [k[0], k[0]];
        if (s.Length == 1) s = [s[0], s[0]];
        if (p.Length == 1) p = [p[0], p[0]];
        if (d.Length == 1) d = [d[0], d[0]];
        long Out(long size, int i)
        {
            double v = (double)(size + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i] + 1;
            return pool.ceil_mode ? (long)Math.Ceiling(v) : (long)Math.Floor(v);
        }
        return c.Node("MaxPool", [x.Name], [x.Shape[0], Out(x.Shape[1], 0), Out(x.Shape[2], 1)], path,
            Ints("kernel_shape", k[0], k[1]), Ints("strides", s[0], s[1]), Ints("pads", p[0], p[1], p[0], p[1]), Ints("dilations", d[0], d[1]), Int("ceil_mode", pool.ceil_mode ? 1 : 0));
    }

    /// <summary>
    /// PyTorch's adaptive average pooling (output bin i covers input rows floor(i*H/oh) .. ceil((i+1)*H/oh) - 1)
    /// as a MatMul of [C, H*W] with a fixed [H*W, oh*ow] averaging matrix, exact for any sizes.
    /// </summary>
    private static OnnxValue AdaptiveAveragePool(OnnxExportContext c, AdaptiveAvgPool2d pool, string path, OnnxValue x)
    {
        long ch = x.Shape[0], h = x.Shape[1], w = x.Shape[2];
        long oh = pool.output_size[0], ow = pool.output_size.Length > 1 ? pool.output_size[1] : pool.output_size[0];
        if (oh == 1 && ow == 1)
            return c.Node("GlobalAveragePool", [x.Name], [ch, 1, 1], path);
        var matrix = new float[h * w * oh * ow];
        for (long i = 0; i < oh; i++)
            for (long j = 0; j < ow; j++)
            {
                long h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh, w0 = j * w / ow, w1 = ((j + 1) * w + ow - 1) / ow;
                float weight = 1f / ((h1 - h0) * (w1 - w0));
                for (long y = h0; y < h1; y++)
                    for (long xx = w0; xx < w1; xx++)
                        matrix[(y * w + xx) * oh * ow + i * ow + j] = weight;
            }
        var g = c.Graph;
        string flat = g.Node("Reshape", [x.Name, g.Int64s($"{path}.in_shape", 0, ch, h * w)], outputHint: $"{path}.flat");
        string pooled = g.Node("MatMul", [flat, g.Floats($"{path}.pooling", matrix, h * w, oh * ow)], outputHint: $"{path}.pooled");
        return new(g.Node("Reshape", [pooled, g.Int64s($"{path}.out_shape", 0, ch, oh, ow)], outputHint: path), [ch, oh, ow]);
    }
}
