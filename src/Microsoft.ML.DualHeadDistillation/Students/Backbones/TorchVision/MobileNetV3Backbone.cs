using System.Reflection;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students.Backbones.TorchVision;

/// <summary>
/// TorchVision's MobileNetV3 small or large as a student backbone: the model's <c>features</c> (Hardswish / ReLU
/// inverted residuals with squeeze-excitation), the global average pool and the first two layers of its classifier
/// (<c>classifier.0</c> Linear to 1024 / 1280 and Hardswish, as timm's pre-logits) are reused under the same names;
/// z is that 1024 / 1280 vector, and the classifier's Dropout and last Linear are left out. Parameter names equal
/// torchvision's <c>state_dict</c> keys without <c>classifier.3.*</c>.
/// <para>
/// TorchVision.NET 0.107 builds the squeeze-excitation blocks with ReLU6 after their first 1x1 convolution where
/// torchvision uses ReLU; this wrapper puts ReLU back (in the module's field and its registered child) so that
/// PyTorch weights give PyTorch's outputs.
/// </para>
/// With the small-input stem, <c>features.0</c> is the same conv-BN-Hardswish with stride 1 instead of 2.
/// </summary>
public sealed class MobileNetV3Backbone : TorchVisionBackbone
{
    private readonly nn.Module<Tensor, Tensor> features;
    private readonly nn.Module<Tensor, Tensor> classifier;
    private readonly bool _large;

    public MobileNetV3Backbone(BackboneSpec spec) : base(spec)
    {
        _large = spec.Name.Equals("MobileNetV3Large", StringComparison.OrdinalIgnoreCase);
        if (!_large && !spec.Name.Equals("MobileNetV3Small", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"MobileNetV3Backbone builds MobileNetV3Small or MobileNetV3Large; the spec names '{spec.Name}'.", nameof(spec));
        nn.Module model = _large ? torchvision.models.mobilenet_v3_large() : torchvision.models.mobilenet_v3_small();
        var stages = Child(model, "features");
        var head = Child(model, "classifier").named_children().Select(c => (c.name, (nn.Module<Tensor, Tensor>)c.module)).ToList();
        head[2].Item2.Dispose(); // Dropout
        head[3].Item2.Dispose(); // the 1000-way Linear
        classifier = nn.Sequential(head.Take(2));
        foreach (var (_, m) in stages.named_modules())
            if (m is torchvision.SqueezeExcitation se) UseReluInSqueezeExcitation(se);
        var children = stages.named_children().Select(c => (c.name, (nn.Module<Tensor, Tensor>)c.module)).ToList();
        if (SmallInput)
        {
            children[0].Item2.Dispose();
            var stem = torchvision.ops.Conv2dNormActivation(3, 16, stride: 1, norm_layer: c => nn.BatchNorm2d(c, eps: 0.001, momentum: 0.01), activation_layer: inplace => nn.Hardswish(inplace));
            foreach (var (_, m) in stem.named_modules()) InitConv(m);
            children[0] = ("0", stem);
        }
        features = nn.Sequential(children);
        RegisterComponents();
    }

    public override IReadOnlyList<string> PretrainedIgnoredKeys => ["classifier.2.", "classifier.3."];

    public override string Description => $"MobileNetV3{(_large ? "Large" : "Small")} {ShapeDescription}, {StemDescription} -> {EmbeddingSize} (TorchVision)";

    /// <summary>Each child of <c>features</c> ("features.0" the stem, then the blocks).</summary>
    protected override IReadOnlyList<Stage> Stages => _stages ??=
        features.named_children().Select(c => new Stage($"features.{c.name}", (nn.Module<Tensor, Tensor>)c.module)).ToArray();
    private Stage[]? _stages;

    protected override Tensor Pool(Tensor maps) => classifier.call(base.Pool(maps));

    protected override OnnxValue ExportFeatures(OnnxExportContext context, OnnxValue images) => context.Export(features, "backbone.features", images);

    protected override OnnxValue ExportPool(OnnxExportContext context, OnnxValue maps) =>
        context.Export(classifier, "backbone.classifier", base.ExportPool(context, maps));

    /// <summary>Replaces the ReLU6 TorchVision.NET puts in a squeeze-excitation block by torchvision's ReLU.</summary>
    private static void UseReluInSqueezeExcitation(torchvision.SqueezeExcitation se)
    {
        const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;
        var field = typeof(torchvision.SqueezeExcitation).GetField("activation", Private);
        var children = typeof(nn.Module).GetField("_internal_submodules", Private)?.GetValue(se) as IDictionary<string, nn.Module>;
        if (field is null || children is null || !children.ContainsKey("activation"))
            throw new InvalidOperationException("TorchVision's SqueezeExcitation no longer has an 'activation' field and child; this TorchVision version is not the one DualHeadML was built against.");
        if (field.GetValue(se) is not TorchSharp.Modules.ReLU6 old) return; // already torchvision's activation
        var relu = nn.ReLU();
        field.SetValue(se, relu);
        children["activation"] = relu;
        old.Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            features.Dispose();
            classifier.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>"MobileNetV3Small": TorchVision's MobileNetV3 small, z = 1024 (pre-logits: Linear 576 -> 1024, Hardswish).</summary>
[DualHeadComponent]
internal sealed class MobileNetV3SmallBackboneDefinition : TorchVisionBackboneDefinition
{
    /// <summary>Depthwise convolutions: measured slower in bfloat16 than in float32 channels-last on an avx512_bf16 CPU (docs/performance.md).</summary>
    public override bool BFloat16Pays => false;
    public override string Name => "MobileNetV3Small";
    public override string Summary => "TorchVision MobileNetV3 small (Hardswish, squeeze-excitation) on [3, H, W] images, z = 1024 pre-logits; setting stem=small for images under ~96 px.";
    public override int NumFeatures => 1024;
    protected override int MinimumSide => 16;
    public override StudentBackbone Create(BackboneSpec spec) => new MobileNetV3Backbone(spec);
}

/// <summary>"MobileNetV3Large": TorchVision's MobileNetV3 large, z = 1280 (pre-logits: Linear 960 -> 1280, Hardswish).</summary>
[DualHeadComponent]
internal sealed class MobileNetV3LargeBackboneDefinition : TorchVisionBackboneDefinition
{
    /// <summary>Depthwise convolutions: measured slower in bfloat16 than in float32 channels-last on an avx512_bf16 CPU (docs/performance.md).</summary>
    public override bool BFloat16Pays => false;
    public override string Name => "MobileNetV3Large";
    public override string Summary => "TorchVision MobileNetV3 large (Hardswish, squeeze-excitation) on [3, H, W] images, z = 1280 pre-logits; setting stem=small for images under ~96 px.";
    public override int NumFeatures => 1280;
    protected override int MinimumSide => 16;
    public override StudentBackbone Create(BackboneSpec spec) => new MobileNetV3Backbone(spec);
}
