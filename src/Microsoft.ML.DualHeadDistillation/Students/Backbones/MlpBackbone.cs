using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
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

    public override OnnxValue ExportOnnx(OnnxExportContext context, OnnxValue input) => context.Export(layers, "backbone", input);

    protected override void Dispose(bool disposing)
    {
        if (disposing) layers.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// "Mlp": <see cref="MlpBackbone"/> over a plain feature vector. Setting <c>hidden_layers</c> ("256,128"; from
/// <see cref="DualHeadDistillOptions.MlpHiddenLayers"/>, default one layer of 2*EmbeddingSize).
/// </summary>
[DualHeadComponent]
internal sealed class MlpBackboneDefinition : BackboneDefinition
{
    public const string HiddenLayersSetting = "hidden_layers";

    public override string Name => "Mlp";
    public override string Summary => "Fully connected layers over a feature vector: [Linear ReLU] per hidden layer, then Linear(->EmbeddingSize) ReLU.";

    public override BackboneSpec Resolve(BackboneRequest request)
    {
        var spec = base.Resolve(request);
        int[] widths = request.MlpHiddenLayers ?? spec.Settings.GetInts(HiddenLayersSetting, [2 * request.EmbeddingSize]);
        if (widths.Any(w => w < 1))
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.MlpHiddenLayers), "Every MLP hidden layer width must be at least 1.");
        return spec with { Settings = spec.Settings.With(HiddenLayersSetting, string.Join(",", widths)) };
    }

    public override StudentBackbone Create(BackboneSpec spec) =>
        new MlpBackbone(spec.InputSize, spec.Settings.GetInts(HiddenLayersSetting, [2 * spec.EmbeddingSize]), spec.EmbeddingSize);
}
