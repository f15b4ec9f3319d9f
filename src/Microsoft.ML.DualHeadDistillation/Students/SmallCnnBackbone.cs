using Microsoft.ML.DualHeadDistillation.Export;
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

    public override int[]? ImageShape => [_c, _h, _w];

    public override Tensor forward(Tensor input)
    {
        using var image = input.view(-1, _c, _h, _w);
        using var maps = features.forward(image);
        return embed.forward(maps);
    }

    internal override (string Output, long[] Shape) ExportOnnx(OnnxGraphBuilder graph, string input)
    {
        string image = graph.Node("Reshape", [input, graph.Int64s("backbone.image_shape", -1, _c, _h, _w)], outputHint: "backbone.image");
        var (maps, shape) = TorchLayerExporter.Export(graph, features, "backbone.features", image, [_c, _h, _w]);
        return TorchLayerExporter.Export(graph, embed, "backbone.embed", maps, shape);
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
