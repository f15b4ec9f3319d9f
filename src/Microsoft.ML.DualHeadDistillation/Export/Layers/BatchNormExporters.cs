using TorchSharp;
using TorchSharp.Modules;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Export.Layers;

/// <summary>
/// BatchNorm1d ([C] or [C, L] rows) and BatchNorm2d ([C, H, W] rows) in inference form: one ONNX
/// BatchNormalization node with the running statistics (the student is exported in eval mode).
/// </summary>
internal static class BatchNormExporters
{
    public static void Register()
    {
        OnnxLayerExporters.Register<BatchNorm1d>((c, bn, path, x) => Export(c, bn, path, x, x.Shape.Length is 1 or 2));
        OnnxLayerExporters.Register<BatchNorm2d>((c, bn, path, x) => Export(c, bn, path, x, x.Shape.Length == 3));
    }

    private static OnnxValue Export(OnnxExportContext c, NormBase bn, string path, OnnxValue x, bool shapeFits)
    {
        if (!shapeFits || x.Shape[0] != bn.num_features)
            throw OnnxExportContext.Unsupported(path, bn, $"it normalises {bn.num_features} channels but receives shape [{string.Join(", ", x.Shape)}]");
        if (bn.running_mean is null || bn.running_var is null)
            throw OnnxExportContext.Unsupported(path, bn, "it does not track running statistics (track_running_stats: false), so inference depends on the batch");
        long n = bn.num_features;
        string scale = bn.weight is { } w ? c.Weights($"{path}.weight", w) : c.Weights($"{path}.weight", Enumerable.Repeat(1f, (int)n).ToArray(), n);
        string bias = bn.bias is { } b ? c.Weights($"{path}.bias", b) : c.Weights($"{path}.bias", new float[n], n);
        string mean = c.Weights($"{path}.running_mean", bn.running_mean);
        string variance = c.Weights($"{path}.running_var", bn.running_var);
        var epsilon = new Onnx.AttributeProto { Name = "epsilon", Type = Onnx.AttributeProto.Types.AttributeType.Float, F = (float)bn.eps };
        return c.Node("BatchNormalization", [x.Name, scale, bias, mean, variance], x.Shape, path, epsilon);
    }
}
