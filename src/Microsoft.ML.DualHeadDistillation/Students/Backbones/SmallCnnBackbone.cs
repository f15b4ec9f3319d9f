using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>
/// The default image student: conv3x3(C->32) ReLU maxpool2, conv3x3(32->64) ReLU maxpool2,
/// Linear(64*h*w -> hidden) ReLU as z. On 28x28 inputs h = w = 7 (Linear 3136 -> 128, 422k parameters
/// with two 10-class heads). Inputs larger than 28x28 are average-pooled to 7x7 before the Linear.
/// </summary>
public sealed class SmallCnnBackbone : StudentBackbone
{
    private readonly nn.Module<Tensor, Tensor> features;
    private readonly nn.Module<Tensor, Tensor> embed;
    private readonly int _c, _h, _w, _ph, _pw;

    public SmallCnnBackbone(int channels, int height, int width, int embeddingSize)
        : base(nameof(SmallCnnBackbone), channels * height * width, embeddingSize)
    {
        if (height < 4 || width < 4)
            throw new ArgumentOutOfRangeException(nameof(height), $"SmallCnn needs images of at least 4x4 pixels; got {height}x{width}.");
        (_c, _h, _w) = (channels, height, width);
        ImageShape = new InputImageShape(channels, height, width);
        _ph = Math.Min(height / 4, 7);
        _pw = Math.Min(width / 4, 7);
        var conv = new List<(string, nn.Module<Tensor, Tensor>)>
        {
            ("conv1", nn.Conv2d(channels, 32, 3, padding: 1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(32, 64, 3, padding: 1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        };
        if (height / 4 > 7 || width / 4 > 7) conv.Add(("avgpool", nn.AdaptiveAvgPool2d([_ph, _pw])));
        features = nn.Sequential(conv);
        embed = nn.Sequential(("flatten", nn.Flatten()), ("fc", nn.Linear(64 * _ph * _pw, embeddingSize)), ("relu3", nn.ReLU()));
        RegisterComponents();
    }

    public override string Description =>
        $"SmallCnn [{_c},{_h},{_w}] conv32-pool conv64-pool -> {64 * _ph * _pw} -> {EmbeddingSize} (ReLU)";

    public override Tensor forward(Tensor input)
    {
        using var image = input.view(-1, _c, _h, _w);
        using var maps = features.forward(image);
        return embed.forward(maps);
    }

    public override OnnxValue ExportOnnx(OnnxExportContext context, OnnxValue input)
    {
        var image = context.Reshape(input, "backbone.image", _c, _h, _w);
        var maps = context.Export(features, "backbone.features", image);
        return context.Export(embed, "backbone.embed", maps);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            features.Dispose();
            embed.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>"SmallCnn": <see cref="SmallCnnBackbone"/> over flattened [C, H, W] pixels (<see cref="DualHeadDistillOptions.ImageShape"/>).</summary>
[DualHeadComponent]
internal sealed class SmallCnnBackboneDefinition : BackboneDefinition
{
    public override string Name => "SmallCnn";
    public override string Summary => "conv3x3(C->32) ReLU maxpool2, conv3x3(32->64) ReLU maxpool2, Linear(->EmbeddingSize) ReLU, over [C, H, W] pixels (the default).";
    public override bool ReadsImages => true;

    public override BackboneSpec Resolve(BackboneRequest request)
    {
        var spec = base.Resolve(request);
        if (spec.ImageShape is { Height: < 4 } or { Width: < 4 })
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"SmallCnn needs images of at least 4x4 pixels; ImageShape is {spec.ImageShape}.");
        return spec;
    }

    public override StudentBackbone Create(BackboneSpec spec)
    {
        var s = spec.ImageShape ?? throw new ArgumentException("A SmallCnn spec needs an image shape.", nameof(spec));
        return new SmallCnnBackbone(s.Channels, s.Height, s.Width, spec.EmbeddingSize);
    }
}
