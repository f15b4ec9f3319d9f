using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students.Backbones.TorchVision;

/// <summary>
/// TorchVision's MobileNetV2 (width 1.0) as a student backbone: the model's <c>features</c> (stem, 17 inverted
/// residual blocks, the 1x1 conv to 1280 channels, ReLU6 throughout) are reused under the same name, z is their
/// global average (1280), and the classifier (Dropout, Linear) is left out. Parameter names equal torchvision's
/// <c>state_dict</c> keys without <c>classifier.*</c>. With the small-input stem, <c>features.0</c> is the same
/// conv-BN-ReLU6 with stride 1 instead of 2 (so 32x32 images reach the last stage at 2x2, not 1x1).
/// </summary>
public sealed class MobileNetV2Backbone : TorchVisionBackbone
{
    private readonly nn.Module<Tensor, Tensor> features;

    public MobileNetV2Backbone(BackboneSpec spec) : base(spec)
    {
        var model = torchvision.models.mobilenet_v2(num_classes: 1);
        var stages = Child(model, "features");
        Child(model, "classifier").Dispose();
        var children = stages.named_children().Select(c => (c.name, (nn.Module<Tensor, Tensor>)c.module)).ToList();
        if (SmallInput)
        {
            children[0].Item2.Dispose();
            var stem = torchvision.ops.Conv2dNormActivation(3, 32, stride: 1, norm_layer: c => nn.BatchNorm2d(c), activation_layer: inplace => nn.ReLU6(inplace));
            foreach (var (_, m) in stem.named_modules()) InitConv(m);
            children[0] = ("0", stem);
        }
        features = nn.Sequential(children);
        RegisterComponents();
    }

    public override IReadOnlyList<string> PretrainedIgnoredKeys => ["classifier."];

    public override string Description => $"MobileNetV2 {ShapeDescription}, {StemDescription} -> {EmbeddingSize} (TorchVision)";

    /// <summary>Each child of <c>features</c> ("features.0" the stem, then the blocks).</summary>
    protected override IReadOnlyList<Stage> Stages => _stages ??=
        features.named_children().Select(c => new Stage($"features.{c.name}", (nn.Module<Tensor, Tensor>)c.module)).ToArray();
    private Stage[]? _stages;

    protected override OnnxValue ExportFeatures(OnnxExportContext context, OnnxValue images) => context.Export(features, "backbone.features", images);

    protected override void Dispose(bool disposing)
    {
        if (disposing) features.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>"MobileNetV2": TorchVision's MobileNetV2, z = 1280 pooled features; 2.2M parameters without the classifier.</summary>
[DualHeadComponent]
internal sealed class MobileNetV2BackboneDefinition : TorchVisionBackboneDefinition
{
    /// <summary>Depthwise convolutions: measured slower in bfloat16 than in float32 channels-last on an avx512_bf16 CPU (docs/performance.md).</summary>
    public override bool BFloat16Pays => false;
    public override string Name => "MobileNetV2";
    public override string Summary => "TorchVision MobileNetV2 (width 1.0, ReLU6) on [3, H, W] images, z = 1280 pooled features; setting stem=small for images under ~96 px.";
    public override int NumFeatures => 1280;
    protected override int MinimumSide => 16;
    public override StudentBackbone Create(BackboneSpec spec) => new MobileNetV2Backbone(spec);
}
