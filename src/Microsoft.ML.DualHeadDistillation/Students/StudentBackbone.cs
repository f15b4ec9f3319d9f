using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>
/// The small interface every student backbone has (as timm's models do): it maps a batch of flattened
/// feature rows [N, D] to the shared representation z [N, <see cref="EmbeddingSize"/>] (timm's
/// <c>num_features</c>), and writes itself as ONNX nodes (<see cref="ExportOnnx"/>). Each backbone reshapes
/// its own input (a CNN views [N, D] as [N, C, H, W]), so the data path stays one flat copy.
/// </summary>
public abstract class StudentBackbone : nn.Module<Tensor, Tensor>
{
    protected StudentBackbone(string name, int inputSize, int embeddingSize) : base(Native.TorchSharpNative.Ensured(name))
    {
        InputSize = inputSize;
        EmbeddingSize = embeddingSize;
    }

    /// <summary>A backbone built from a spec.</summary>
    protected StudentBackbone(BackboneSpec spec) : this(spec.Name, spec.InputSize, spec.EmbeddingSize)
    {
        ImageShape = spec.ImageShape;
    }

    /// <summary>D, the length of one flattened input row.</summary>
    public int InputSize { get; }
    /// <summary>Width of z, the heads' input.</summary>
    public int EmbeddingSize { get; }
    /// <summary>One line describing the architecture, for logs and reports.</summary>
    public abstract string Description { get; }
    /// <summary>[C, H, W] of the flattened input for image backbones; null for feature-vector backbones.</summary>
    public InputImageShape? ImageShape { get; protected init; }

    /// <summary>
    /// True when <c>forward</c> also reads images [N, C, h, w] of another size than <see cref="ImageShape"/> (its
    /// features are pooled globally), which a resolution schedule needs. False (default): only flattened rows [N, D].
    /// </summary>
    public virtual bool AcceptsOtherImageSizes => false;

    /// <summary>True when the backbone's own weights are pretrained (an imported ONNX graph), not drawn from the seed.</summary>
    public virtual bool StartsPretrained => false;

    /// <summary>
    /// The stages of the backbone from the input side that can be frozen (<see cref="DualHeadDistillOptions.FrozenStages"/>),
    /// in order: "stem", "layer1", ... for ResNet, "features.0", ... for MobileNet. Empty (default): none can.
    /// </summary>
    public virtual IReadOnlyList<string> StageNames => [];

    /// <summary>
    /// The first stages that are frozen: <c>forward</c> runs them without gradients (their BatchNorm layers in eval
    /// mode, set by the training loop) and the rest as usual. 0 (default): none. Set by the training loop, reset after.
    /// </summary>
    internal int FrozenStages { get; set; }

    /// <summary>The output of the first <paramref name="stages"/> stages (no gradient) for flattened rows [N, D] or images [N, C, h, w].</summary>
    internal virtual Tensor ForwardPrefix(Tensor input, int stages) => throw new NotSupportedException($"Backbone '{GetType().Name}' has no stages to freeze.");

    /// <summary>z from the output of the first <paramref name="stages"/> stages (<see cref="ForwardPrefix"/>, or its cached copy).</summary>
    internal virtual Tensor ForwardSuffix(Tensor prefix, int stages) => throw new NotSupportedException($"Backbone '{GetType().Name}' has no stages to freeze.");

    /// <summary>The modules of the first <paramref name="stages"/> stages (their parameters do not learn, their BatchNorm layers keep their statistics).</summary>
    internal virtual IReadOnlyList<nn.Module> StageModules(int stages) => stages == 0 ? [] : throw new NotSupportedException($"Backbone '{GetType().Name}' has no stages to freeze.");

    /// <summary>
    /// Key prefixes of a pretrained state dict that this backbone leaves out on purpose (the original classifier,
    /// which DHO's two heads replace: "fc." for TorchVision's ResNet); <see cref="LoadPyTorchWeights"/> skips them.
    /// </summary>
    public virtual IReadOnlyList<string> PretrainedIgnoredKeys => [];

    /// <summary>
    /// Loads a PyTorch state dict (a <c>torch.save</c> .pt / .pth file or a .safetensors file) into this backbone, all or
    /// nothing (<see cref="Pretrained.PyTorchWeights"/>): the file's keys must be this module's parameter names
    /// (torchvision's, for the TorchVision backbones), bar <see cref="PretrainedIgnoredKeys"/>.
    /// </summary>
    public Pretrained.PretrainedLoadReport LoadPyTorchWeights(string path) => Pretrained.PyTorchWeights.Load(this, path, PretrainedIgnoredKeys);

    /// <summary>
    /// Writes the backbone as ONNX nodes reading the flattened input [N, D] (<paramref name="input"/>) and returns
    /// z (shape [<see cref="EmbeddingSize"/>] without the batch dimension). Most backbones are one line:
    /// <c>context.Export(layers, "backbone", input)</c>, which finds an exporter for every layer by its type
    /// (<see cref="OnnxLayerExporters"/>: Sequential, Linear, Conv2d, BatchNorm1d/2d, ReLU, MaxPool2d,
    /// AdaptiveAvgPool2d, Flatten, Dropout, Identity, <see cref="Residual"/>, and any you register).
    /// </summary>
    public virtual OnnxValue ExportOnnx(OnnxExportContext context, OnnxValue input) =>
        throw new NotSupportedException($"ONNX export does not support the backbone '{GetType().Name}': it does not override StudentBackbone.ExportOnnx to describe its layers (see docs/architecture.md, \"Add a backbone\").");
}
