using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>
/// The preprocessing a backbone's pretrained weights expect (timm's <c>pretrained_cfg</c>): input size and the
/// per-channel mean and std the weights were trained with. With <see cref="DualHeadInputNormalization.Standardize"/>
/// these are the student's standardisation instead of statistics of the training rows.
/// </summary>
/// <param name="Mean">Per-channel mean, in the units of the feature column.</param>
/// <param name="Std">Per-channel standard deviation.</param>
/// <param name="InputShape">[C, H, W] the weights were trained at, when fixed.</param>
/// <param name="Interpolation">How images are resized for it ("bilinear", "bicubic"), informational.</param>
public sealed record PretrainedConfig(float[] Mean, float[] Std, InputImageShape? InputShape = null, string? Interpolation = null);

/// <summary>What Fit knows when it resolves a backbone's spec: the options and the feature column's size.</summary>
public sealed record BackboneRequest(int InputSize, int EmbeddingSize, int[]? ImageShape, int[]? MlpHiddenLayers, SpecSettings Settings, string FeatureColumnName);

/// <summary>
/// A registered student backbone: it turns the options into a <see cref="BackboneSpec"/> (checking them) and
/// builds the module from that spec alone. One file per backbone (module and definition), marked
/// <see cref="DualHeadComponentAttribute"/> inside this library, or registered with
/// <c>DualHeadRegistry.Backbones.Register(...)</c> from outside.
/// </summary>
public abstract class BackboneDefinition : IDualHeadComponent
{
    /// <inheritdoc/>
    public abstract string Name { get; }
    /// <inheritdoc/>
    public abstract string Summary { get; }
    /// <summary>True when the backbone reads images ([C, H, W] rows); the spec then carries the image shape.</summary>
    public virtual bool ReadsImages => false;
    /// <summary>
    /// Whether <see cref="DualHeadPrecision.Auto"/> trains this backbone in bfloat16 where the hardware does bfloat16 natively
    /// (default true). False for backbones measured slower in bfloat16 than in float32 channels-last on such a CPU
    /// (depthwise convolutions: the MobileNets; `bench speed`, docs/performance.md).
    /// </summary>
    public virtual bool BFloat16Pays => true;
    /// <summary>The pretrained configuration, when the backbone comes with weights; null otherwise.</summary>
    public virtual PretrainedConfig? Pretrained => null;
    /// <summary>
    /// The preprocessing of weights loaded with <see cref="DualHeadDistillOptions.BackboneWeights"/> (ImageNet's mean/std for
    /// the TorchVision backbones); null when such weights bring none (then <see cref="Pretrained"/>, else the rows' statistics).
    /// </summary>
    public virtual PretrainedConfig? PretrainedWeightsConfig => null;
    /// <summary>
    /// The preprocessing the student's starting weights expect, for a spec: by default <see cref="PretrainedWeightsConfig"/>
    /// (or <see cref="Pretrained"/>) when weights were loaded, else <see cref="Pretrained"/>. Backbones whose weights come
    /// with the spec (an imported ONNX graph) override it. Null: the rows' own statistics standardise the input.
    /// </summary>
    public virtual PretrainedConfig? PretrainedFor(BackboneSpec spec, bool weightsLoaded) => weightsLoaded ? PretrainedWeightsConfig ?? Pretrained : Pretrained;

    /// <summary>
    /// The spec for a request: by default the name, the input size, <see cref="BackboneRequest.EmbeddingSize"/> as z's
    /// width, the image shape (resolved and checked when <see cref="ReadsImages"/>) and the settings as given.
    /// Override to fold options into <see cref="BackboneSpec.Settings"/> or to check them.
    /// </summary>
    public virtual BackboneSpec Resolve(BackboneRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var shape = ReadsImages ? ResolveImageShape(request.ImageShape, request.InputSize, request.FeatureColumnName) : (InputImageShape?)null;
        return new BackboneSpec(Name, request.InputSize, request.EmbeddingSize, shape, request.Settings);
    }

    /// <summary>Builds the backbone (fresh weights, from TorchSharp's generator, seeded by the caller) for <paramref name="spec"/>.</summary>
    public abstract StudentBackbone Create(BackboneSpec spec);

    /// <summary>The declared [C, H, W], checked against the vector length, or a square single-channel image.</summary>
    public static InputImageShape ResolveImageShape(int[]? shape, int inputSize, string featureColumn)
    {
        if (shape is { Length: 3 })
        {
            long n = (long)shape[0] * shape[1] * shape[2];
            if (n != inputSize)
                throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"ImageShape [{string.Join(", ", shape)}] holds {n} values but feature column '{featureColumn}' has {inputSize} per row.");
            return new InputImageShape(shape[0], shape[1], shape[2]);
        }
        int side = (int)Math.Round(Math.Sqrt(inputSize));
        if (side * side != inputSize)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"Feature column '{featureColumn}' has {inputSize} values per row, which is not a square single-channel image; set ImageShape to [C, H, W] for an image backbone.");
        return new InputImageShape(1, side, side);
    }

    public override string ToString() => $"{Name}: {Summary}";
}
