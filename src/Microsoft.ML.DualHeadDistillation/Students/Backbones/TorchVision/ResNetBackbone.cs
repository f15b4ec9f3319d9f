using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students.Backbones.TorchVision;

/// <summary>
/// TorchVision's ResNet-18/34/50 as a student backbone. TorchVision.NET's <c>ResNet</c> keeps <c>fc</c> private and
/// calls it in <c>forward</c>, so this wrapper takes the model's own stages (<c>conv1, bn1, relu, maxpool,
/// layer1..layer4</c>, by their registered names), registers them under the same names and runs them itself; the
/// model's <c>fc</c> is disposed. z is the global average of layer4 (512 channels, 2048 for ResNet-50), where
/// torchvision's <c>fc</c> would read; DHO's two heads replace <c>fc</c>. Parameter names equal torchvision's
/// <c>state_dict</c> keys without <c>fc.*</c>. With the small-input stem, <c>conv1</c> is a 3x3 stride-1
/// convolution (64 channels, no bias) and there is no max-pool.
/// </summary>
public sealed class ResNetBackbone : TorchVisionBackbone
{
    private readonly nn.Module<Tensor, Tensor> conv1;
    private readonly nn.Module<Tensor, Tensor> bn1;
    private readonly nn.Module<Tensor, Tensor> relu;
    private readonly nn.Module<Tensor, Tensor> maxpool;
    private readonly nn.Module<Tensor, Tensor> layer1;
    private readonly nn.Module<Tensor, Tensor> layer2;
    private readonly nn.Module<Tensor, Tensor> layer3;
    private readonly nn.Module<Tensor, Tensor> layer4;
    private readonly string _architecture;

    public ResNetBackbone(BackboneSpec spec) : base(spec)
    {
        _architecture = spec.Name;
        var model = spec.Name.ToLowerInvariant() switch
        {
            "resnet18" => torchvision.models.resnet18(num_classes: 1),
            "resnet34" => torchvision.models.resnet34(num_classes: 1),
            "resnet50" => torchvision.models.resnet50(num_classes: 1),
            _ => throw new ArgumentException($"ResNetBackbone builds ResNet18, ResNet34 or ResNet50; the spec names '{spec.Name}'.", nameof(spec)),
        };
        conv1 = Child(model, "conv1");
        bn1 = Child(model, "bn1");
        relu = Child(model, "relu");
        maxpool = Child(model, "maxpool");
        layer1 = Child(model, "layer1");
        layer2 = Child(model, "layer2");
        layer3 = Child(model, "layer3");
        layer4 = Child(model, "layer4");
        Child(model, "fc").Dispose();
        if (SmallInput)
        {
            conv1.Dispose();
            conv1 = nn.Conv2d(3, 64, 3, stride: 1, padding: 1, bias: false);
            InitConv(conv1);
            maxpool.Dispose();
            maxpool = nn.Identity();
        }
        RegisterComponents();
    }

    public override IReadOnlyList<string> PretrainedIgnoredKeys => ["fc."];

    public override string Description => $"{_architecture} {ShapeDescription}, {StemDescription} -> {EmbeddingSize} (TorchVision)";

    /// <summary>"stem" (conv1, bn1, relu, maxpool), then layer1 .. layer4.</summary>
    protected override IReadOnlyList<Stage> Stages => _stages ??=
    [
        new Stage("stem", [conv1, bn1, relu, maxpool], x => maxpool.call(relu.call(bn1.call(conv1.call(x))))),
        new Stage("layer1", layer1), new Stage("layer2", layer2), new Stage("layer3", layer3), new Stage("layer4", layer4),
    ];
    private Stage[]? _stages;

    protected override OnnxValue ExportFeatures(OnnxExportContext context, OnnxValue images)
    {
        var x = images;
        foreach (var (name, module) in new (string, nn.Module)[] { ("conv1", conv1), ("bn1", bn1), ("relu", relu), ("maxpool", maxpool), ("layer1", layer1), ("layer2", layer2), ("layer3", layer3), ("layer4", layer4) })
            x = context.Export(module, $"backbone.{name}", x);
        return x;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            conv1.Dispose();
            bn1.Dispose();
            relu.Dispose();
            maxpool.Dispose();
            layer1.Dispose();
            layer2.Dispose();
            layer3.Dispose();
            layer4.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>"ResNet18": TorchVision's ResNet-18 (basic blocks 2-2-2-2), z = 512 pooled features; 11.2M parameters without fc.</summary>
[DualHeadComponent]
internal sealed class ResNet18BackboneDefinition : TorchVisionBackboneDefinition
{
    public override string Name => "ResNet18";
    public override string Summary => "TorchVision ResNet-18 (basic blocks 2-2-2-2) on [3, H, W] images, z = 512 pooled features; setting stem=small for images under ~96 px.";
    public override int NumFeatures => 512;
    protected override int MinimumSide => 16;
    public override StudentBackbone Create(BackboneSpec spec) => new ResNetBackbone(spec);
}

/// <summary>"ResNet34": TorchVision's ResNet-34 (basic blocks 3-4-6-3), z = 512 pooled features.</summary>
[DualHeadComponent]
internal sealed class ResNet34BackboneDefinition : TorchVisionBackboneDefinition
{
    public override string Name => "ResNet34";
    public override string Summary => "TorchVision ResNet-34 (basic blocks 3-4-6-3) on [3, H, W] images, z = 512 pooled features; setting stem=small for images under ~96 px.";
    public override int NumFeatures => 512;
    protected override int MinimumSide => 16;
    public override StudentBackbone Create(BackboneSpec spec) => new ResNetBackbone(spec);
}

/// <summary>"ResNet50": TorchVision's ResNet-50 (bottleneck blocks 3-4-6-3), z = 2048 pooled features.</summary>
[DualHeadComponent]
internal sealed class ResNet50BackboneDefinition : TorchVisionBackboneDefinition
{
    public override string Name => "ResNet50";
    public override string Summary => "TorchVision ResNet-50 (bottleneck blocks 3-4-6-3) on [3, H, W] images, z = 2048 pooled features; setting stem=small for images under ~96 px.";
    public override int NumFeatures => 2048;
    protected override int MinimumSide => 16;
    public override StudentBackbone Create(BackboneSpec spec) => new ResNetBackbone(spec);
}
