namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>Builds the backbone named by the options for a given input length.</summary>
internal static class BackboneFactory
{
    public static StudentBackbone Create(DualHeadDistillOptions options, int inputSize)
    {
        switch (options.Backbone)
        {
            case DualHeadBackbone.Mlp:
                return new MlpBackbone(inputSize, options.MlpHiddenLayers ?? [2 * options.HiddenSize], options.HiddenSize);
            case DualHeadBackbone.SmallCnn:
                var (c, h, w) = ResolveImageShape(options.ImageShape, inputSize, options.FeatureColumnName);
                return new SmallCnnBackbone(c, h, w, options.HiddenSize);
            default:
                throw new ArgumentOutOfRangeException(nameof(options.Backbone), options.Backbone, "Unknown backbone.");
        }
    }

    /// <summary>The declared [C,H,W], checked against the vector length, or a square single-channel image.</summary>
    public static (int C, int H, int W) ResolveImageShape(int[]? shape, int inputSize, string featureColumn)
    {
        if (shape is { Length: 3 })
        {
            long n = (long)shape[0] * shape[1] * shape[2];
            if (n != inputSize)
                throw new ArgumentOutOfRangeException("ImageShape", $"ImageShape [{string.Join(", ", shape)}] holds {n} values but feature column '{featureColumn}' has {inputSize} per row.");
            return (shape[0], shape[1], shape[2]);
        }
        int side = (int)Math.Round(Math.Sqrt(inputSize));
        if (side * side != inputSize)
            throw new ArgumentOutOfRangeException("ImageShape", $"Feature column '{featureColumn}' has {inputSize} values per row, which is not a square single-channel image; set ImageShape to [C, H, W] for the CNN backbone.");
        return (1, side, side);
    }
}
