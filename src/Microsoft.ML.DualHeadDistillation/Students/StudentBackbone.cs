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
    protected StudentBackbone(string name, int inputSize, int embeddingSize) : base(name)
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
}
