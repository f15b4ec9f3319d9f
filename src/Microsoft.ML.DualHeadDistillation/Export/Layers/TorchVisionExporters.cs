using System.Reflection;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Export.Layers;

/// <summary>
/// Exporters for the layers of TorchVision's ResNet and MobileNet: ReLU6 (Clip 0..6), Hardsigmoid (HardSigmoid
/// alpha 1/6, beta 1/2), Hardswish (x * HardSigmoid(x), opset 13 has no HardSwish), squeeze-excitation (pool, two
/// 1x1 convolutions, a per-channel Mul), ResNet's BasicBlock and Bottleneck, and MobileNetV2/V3's InvertedResidual
/// (its body plus an Add when the block has a residual connection). TorchVision.NET keeps the blocks' classes and
/// fields private: the blocks are found by type name and read through their registered children (and, for the
/// residual flag, the block's own field), and a version with other names fails here with a clear message.
/// </summary>
internal static class TorchVisionExporters
{
    private const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;

    public static void Register()
    {
        OnnxLayerExporters.Register<ReLU6>((c, _, path, x) => Clip(c, x, 0f, 6f, path));
        OnnxLayerExporters.Register<Hardsigmoid>((c, _, path, x) => HardSigmoid(c, x, path));
        OnnxLayerExporters.Register<Hardswish>((c, _, path, x) => c.Node("Mul", [x.Name, HardSigmoid(c, x, $"{path}.gate").Name], x.Shape, path));
        OnnxLayerExporters.Register<torchvision.SqueezeExcitation>(SqueezeExcitation);
        var resnet = typeof(TorchSharp.Modules.ResNet);
        RegisterPrivate(resnet, "BasicBlock", ResNetBlock);
        RegisterPrivate(resnet, "Bottleneck", ResNetBlock);
        RegisterPrivate(typeof(TorchSharp.Modules.MobileNetV2), "InvertedResidual", (c, m, path, x) => InvertedResidual(c, m, "conv", path, x));
        RegisterPrivate(typeof(TorchSharp.Modules.MobileNetV3), "InvertedResidual", (c, m, path, x) => InvertedResidual(c, m, "block", path, x));
    }

    private static void RegisterPrivate(Type owner, string name, OnnxLayerExporter<nn.Module> exporter)
    {
        var type = owner.GetNestedType(name, BindingFlags.NonPublic | BindingFlags.Public)
            ?? throw new InvalidOperationException($"TorchVision's {owner.Name} has no nested type '{name}'; this TorchVision version is not the one DualHeadML was built against.");
        OnnxLayerExporters.Register(type, exporter);
    }

    private static OnnxValue Clip(OnnxExportContext c, OnnxValue x, float min, float max, string path) =>
        c.Node("Clip", [x.Name, c.Weights($"{path}.min", [min]), c.Weights($"{path}.max", [max])], x.Shape, path);

    private static OnnxValue HardSigmoid(OnnxExportContext c, OnnxValue x, string path) =>
        c.Node("HardSigmoid", [x.Name], x.Shape, path, Float("alpha", 1f / 6f), Float("beta", 0.5f));

    private static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    private static nn.Module Child(nn.Module module, string name, string path) =>
        module.named_children().FirstOrDefault(c => c.name == name).module
        ?? throw OnnxExportContext.Unsupported(path, module, $"it has no child '{name}' (children: {string.Join(", ", module.named_children().Select(c => c.name))})");

    private static nn.Module? OptionalChild(nn.Module module, string name) => module.named_children().FirstOrDefault(c => c.name == name).module;

    /// <summary>x * scale_activation(fc2(activation(fc1(avgpool(x))))), the scale broadcast over H and W.</summary>
    private static OnnxValue SqueezeExcitation(OnnxExportContext c, torchvision.SqueezeExcitation se, string path, OnnxValue x)
    {
        var s = x;
        foreach (var name in new[] { "avgpool", "fc1", "activation", "fc2", "scale_activation" })
            s = c.Export(Child(se, name, path), $"{path}.{name}", s);
        return c.Node("Mul", [x.Name, s.Name], x.Shape, path);
    }

    /// <summary>ResNet's BasicBlock (conv1 bn1 relu1 conv2 bn2) or Bottleneck (... relu2 conv3 bn3), + identity or downsample(x), ReLU.</summary>
    private static OnnxValue ResNetBlock(OnnxExportContext c, nn.Module block, string path, OnnxValue x)
    {
        var y = x;
        foreach (var name in new[] { "conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3" })
            if (OptionalChild(block, name) is { } layer) y = c.Export(layer, $"{path}.{name}", y);
        var shortcut = OptionalChild(block, "downsample") is { } downsample ? c.Export(downsample, $"{path}.downsample", x) : x;
        return c.Relu(c.Add(y, shortcut, $"{path}.add"), path);
    }

    /// <summary>MobileNet's inverted residual: its body (child <paramref name="body"/>), plus x when the block's use_res_connect is set.</summary>
    private static OnnxValue InvertedResidual(OnnxExportContext c, nn.Module block, string body, string path, OnnxValue x)
    {
        var y = c.Export(Child(block, body, path), $"{path}.{body}", x);
        var flag = block.GetType().GetField("use_res_connect", Private)
            ?? throw OnnxExportContext.Unsupported(path, block, "it has no use_res_connect field; this TorchVision version is not the one DualHeadML was built against");
        return (bool)flag.GetValue(block)! ? c.Add(y, x, $"{path}.add") : y;
    }
}
