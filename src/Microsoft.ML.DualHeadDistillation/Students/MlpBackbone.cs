using Microsoft.ML.DualHeadDistillation.Export;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>Fully connected backbone: [Linear ReLU] per hidden layer, then Linear(->hidden) ReLU as z.</summary>
public sealed class MlpBackbone : StudentBackbone
{
    private readonly nn.Module<Tensor, Tensor> layers;
    private readonly int[] _widths;

    public MlpBackbone(int inputSize, int[] hiddenLayers, int embeddingSize) : base(nameof(MlpBackbone), inputSize, embeddingSize)
    {
        _widths = hiddenLayers;
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        int width = inputSize, i = 0;
        foreach (int h in hiddenLayers.Append(embeddingSize))
        {
            modules.Add(($"fc{i}", nn.Linear(width, h)));
            modules.Add(($"relu{i}", nn.ReLU()));
            width = h;
            i++;
        }
        layers = nn.Sequential(modules);
        RegisterComponents();
    }

    public override string Description =>
        $"MLP {InputSize} -> {string.Join(" -> ", _widths.Append(EmbeddingSize))} (ReLU)";

    public override Tensor forward(Tensor input) => layers.forward(input);

    internal override (string Output, long[] Shape) ExportOnnx(OnnxGraphBuilder graph, string input)
        => TorchLayerExporter.Export(graph, layers, "backbone", input, [InputSize]);

    protected override void Dispose(bool disposing)
    {
        if (disposing) layers.Dispose();
        base.Dispose(disposing);
    }
}
