using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students.Backbones.TorchVision;

/// <summary>
/// A student backbone built from a TorchVision.NET model (TorchSharp's port of torchvision): the model's own stages
/// are reused as they are (same module names as torchvision's <c>state_dict</c>, so PyTorch weights load), only its
/// classifier is left out, and z is the pooled features (timm's <c>forward_features</c> + global pool). The rows are
/// 3-channel images [3, H, W] flattened; grey images are replicated to 3 channels by the image column.
/// </summary>
public abstract class TorchVisionBackbone : StudentBackbone
{
    private readonly InputImageShape _shape;

    protected TorchVisionBackbone(BackboneSpec spec) : base(spec)
    {
        _shape = spec.ImageShape ?? throw new ArgumentException($"A {spec.Name} spec needs an image shape.", nameof(spec));
        SmallInput = TorchVisionBackboneDefinition.IsSmallStem(spec.Settings);
    }

    public sealed override bool AcceptsOtherImageSizes => true;

    /// <summary>True when the stem is the small-input one (3x3 stride-1 convolution, no downsampling before the stages).</summary>
    public bool SmallInput { get; }

    /// <summary>One stage of the features: its name (the first module's registered name), its modules and how it runs.</summary>
    protected sealed record Stage(string Name, nn.Module[] Modules, Func<Tensor, Tensor> Forward)
    {
        public Stage(string name, nn.Module<Tensor, Tensor> module) : this(name, [module], module.call) { }
    }

    /// <summary>The stages whose composition gives the features [N, C, h, w] before pooling, from the input side.</summary>
    protected abstract IReadOnlyList<Stage> Stages { get; }

    public sealed override IReadOnlyList<string> StageNames => Stages.Select(s => s.Name).ToArray();

    /// <summary>The features [N, C, h, w] before pooling, of images [N, 3, H, W]: every stage in turn.</summary>
    private Tensor ForwardFeatures(Tensor images, int from = 0, int to = int.MaxValue)
    {
        var stages = Stages;
        var x = images;
        for (int i = from; i < Math.Min(to, stages.Count); i++) x = stages[i].Forward(x);
        return x;
    }

    private Tensor Images(Tensor input) => input.dim() == 4 ? input : input.view(-1, _shape.Channels, _shape.Height, _shape.Width);

    internal sealed override Tensor ForwardPrefix(Tensor input, int stages)
    {
        CheckStages(stages);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return ForwardFeatures(Images(input), 0, stages).MoveToOuterDisposeScope();
    }

    internal sealed override Tensor ForwardSuffix(Tensor prefix, int stages)
    {
        CheckStages(stages);
        using var scope = NewDisposeScope();
        return Pool(ForwardFeatures(prefix, stages)).MoveToOuterDisposeScope();
    }

    internal sealed override IReadOnlyList<nn.Module> StageModules(int stages)
    {
        CheckStages(stages);
        return Stages.Take(stages).SelectMany(s => s.Modules).ToArray();
    }

    private void CheckStages(int stages)
    {
        if (stages < 0 || stages > Stages.Count)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.FrozenStages), stages, $"{GetType().Name} has {Stages.Count} stages ({string.Join(", ", StageNames)}); FrozenStages must be in 0..{Stages.Count}.");
    }

    /// <summary>Writes the stages as ONNX nodes reading [3, H, W] and returns the features [C, h, w].</summary>
    protected abstract OnnxValue ExportFeatures(OnnxExportContext context, OnnxValue images);

    /// <summary>z = flatten(global average pool(features)); subclasses with layers after the pool override this.</summary>
    protected virtual Tensor Pool(Tensor features) => nn.functional.adaptive_avg_pool2d(features, [1, 1]).flatten(1);

    /// <summary>The ONNX form of <see cref="Pool"/>.</summary>
    protected virtual OnnxValue ExportPool(OnnxExportContext context, OnnxValue features)
    {
        var pooled = context.Node("GlobalAveragePool", [features.Name], [features.Shape[0], 1, 1], "backbone.pool");
        return context.Node("Flatten", [pooled.Name], [features.Shape[0]], "backbone.flatten", OnnxExportContext.IntAttribute("axis", 1));
    }

    public sealed override Tensor forward(Tensor input)
    {
        // TorchVision's modules leave their intermediates to the caller's dispose scope: keep only z.
        using var scope = NewDisposeScope();
        // Images [N, 3, h, w] of another size (a resolution schedule) are read as they are: the features are pooled globally.
        var images = Images(input);
        if (FrozenStages > 0) return ForwardSuffix(ForwardPrefix(images, FrozenStages), FrozenStages).MoveToOuterDisposeScope();
        return Pool(ForwardFeatures(images)).MoveToOuterDisposeScope();
    }

    public sealed override OnnxValue ExportOnnx(OnnxExportContext context, OnnxValue input)
    {
        var images = context.Reshape(input, "backbone.image", _shape.Channels, _shape.Height, _shape.Width);
        return ExportPool(context, ExportFeatures(context, images));
    }

    /// <summary>The child of a TorchVision model registered under <paramref name="name"/> (its fields are private).</summary>
    protected static nn.Module<Tensor, Tensor> Child(nn.Module model, string name) =>
        model.named_children().FirstOrDefault(c => c.name == name).module as nn.Module<Tensor, Tensor>
        ?? throw new InvalidOperationException($"TorchVision's {model.GetType().Name} has no child module '{name}' (children: {string.Join(", ", model.named_children().Select(c => c.name))}); this TorchVision version is not the one DualHeadML was built against.");

    /// <summary>Kaiming-normal (fan out, ReLU) initialisation, as TorchVision initialises the convolutions it builds.</summary>
    protected static void InitConv(nn.Module conv)
    {
        if (conv is TorchSharp.Modules.Conv2d c)
        {
            nn.init.kaiming_normal_(c.weight, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);
            if (c.bias is not null) nn.init.zeros_(c.bias);
        }
    }

    protected string StemDescription => SmallInput ? "small-input stem (3x3 stride 1)" : "ImageNet stem";
    protected string ShapeDescription => _shape.ToString();
}

/// <summary>
/// The definition shared by the TorchVision backbones: 3-channel images, z as wide as the model's pooled features,
/// the ImageNet preprocessing as the pretrained configuration, and the <see cref="StemSetting"/> setting.
/// </summary>
public abstract class TorchVisionBackboneDefinition : BackboneDefinition
{
    /// <summary>
    /// Backbone setting "stem": "imagenet" (the model's own stem, the default; needed for ImageNet weights) or "small"
    /// (for images under about 96 px, as CIFAR ResNets do: a 3x3 stride-1 first convolution and no max-pool, so a
    /// 32x32 image keeps 32x32 maps into the first stage). Set it with
    /// <c>BackboneSettings = new() { ["stem"] = "small" }</c>.
    /// </summary>
    public const string StemSetting = "stem";

    /// <summary>The smallest image side this model accepts with the ImageNet stem (with "small", a quarter of it); below it the last stage sees 1x1 maps of mostly padding.</summary>
    protected abstract int MinimumSide { get; }

    /// <summary>Width of the pooled features (timm's <c>num_features</c>): z's width; EmbeddingSize does not apply.</summary>
    public abstract int NumFeatures { get; }

    public sealed override bool ReadsImages => true;

    /// <summary>
    /// ImageNet's mean and std on [0, 1] RGB, 224x224, bilinear: what torchvision's pretrained weights were trained with
    /// (the backbone itself trains from scratch with the statistics of the rows, so <see cref="BackboneDefinition.Pretrained"/> stays null).
    /// </summary>
    public static PretrainedConfig ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f], new InputImageShape(3, 224, 224), "bilinear");

    /// <summary>torchvision's weights were trained on ImageNet: <see cref="ImageNet"/>.</summary>
    public override PretrainedConfig? PretrainedWeightsConfig => ImageNet;

    public override BackboneSpec Resolve(BackboneRequest request)
    {
        var spec = base.Resolve(request);
        var shape = spec.ImageShape!.Value;
        if (shape.Channels != 3)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"{Name} reads 3-channel RGB images; ImageShape is {shape}. Set ImageShape to [3, H, W] (grey images are then replicated to 3 channels by the image column).");
        string stem = spec.Settings.TryGetValue(StemSetting, out var s) ? s.Trim().ToLowerInvariant() : "imagenet";
        if (stem is not ("imagenet" or "small"))
            throw new ArgumentException($"Backbone setting '{StemSetting}' of {Name} is '{s}'; expected 'imagenet' or 'small'.", nameof(DualHeadDistillOptions.BackboneSettings));
        int minimum = stem == "small" ? Math.Max(1, MinimumSide / 4) : MinimumSide;
        if (shape.Height < minimum || shape.Width < minimum)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"{Name} with the {stem} stem needs images of at least {minimum}x{minimum} pixels; ImageShape is {shape}.");
        return spec with { EmbeddingSize = NumFeatures, Settings = spec.Settings.With(StemSetting, stem) };
    }

    internal static bool IsSmallStem(SpecSettings settings) =>
        settings.TryGetValue(StemSetting, out var s) && string.Equals(s, "small", StringComparison.OrdinalIgnoreCase);
}
