using Microsoft.ML.DualHeadDistillation.Export;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>
/// The small interface every student backbone has (as timm's models do): it maps a batch of flattened
/// feature rows [N, D] to the shared representation z [N, <see cref="EmbeddingSize"/>]. Each backbone
/// reshapes its own input (a CNN views [N, D] as [N, C, H, W]), so the data path stays one flat copy.
/// </summary>
public abstract class StudentBackbone : nn.Module<Tensor, Tensor>
{
    protected StudentBackbone(string name, int inputSize, int embeddingSize) : base(Native.TorchSharpNative.Ensured(name))
    {
        InputSize = inputSize;
        EmbeddingSize = embeddingSize;
    }

    /// <summary>D, the length of one flattened input row.</summary>
    public int InputSize { get; }
    /// <summary>Width of z, the heads' input.</summary>
    public int EmbeddingSize { get; }
    /// <summary>One line describing the architecture, for logs and reports.</summary>
    public abstract string Description { get; }
    /// <summary>[C, H, W] of the flattened input for image backbones; null for feature-vector backbones.</summary>
    public virtual int[]? ImageShape => null;

    /// <summary>
    /// Writes the backbone as ONNX nodes reading the flattened input [N, D] named <paramref name="input"/>;
    /// returns z's value name and shape without the batch dimension. Backbones that do not describe their
    /// layers cannot be exported.
    /// </summary>
    internal virtual (string Output, long[] Shape) ExportOnnx(OnnxGraphBuilder graph, string input) =>
        throw new NotSupportedException($"ONNX export does not support the backbone '{GetType().Name}': it does not describe its layers for export (MlpBackbone and SmallCnnBackbone do).");
}
