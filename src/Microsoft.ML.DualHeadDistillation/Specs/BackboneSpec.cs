using System.Text.Json.Serialization;

namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>[C, H, W] of the images a backbone reads as flattened rows of C*H*W values.</summary>
public readonly record struct InputImageShape(int Channels, int Height, int Width)
{
    /// <summary>C*H*W.</summary>
    [JsonIgnore]
    public long Size => (long)Channels * Height * Width;
    public override string ToString() => $"[{Channels}, {Height}, {Width}]";
}

/// <summary>
/// Everything that fixes a backbone's architecture: the registered name, the input it reads, the width of
/// z and the component's own settings. Two equal specs build the same architecture; a backbone's factory
/// (<see cref="Students.BackboneDefinition.Create"/>) reads nothing else, so nothing escapes the resume check.
/// </summary>
/// <param name="Name">The registered backbone name (<see cref="DualHeadRegistry.Backbones"/>).</param>
/// <param name="InputSize">D, the length of one flattened input row.</param>
/// <param name="EmbeddingSize">Width of z, the heads' input.</param>
/// <param name="ImageShape">[C, H, W] of the flattened input, for image backbones; null for feature vectors.</param>
/// <param name="Settings">The backbone's own settings (for example the MLP's hidden layer widths).</param>
public sealed record BackboneSpec(
    [property: SpecOption(nameof(DualHeadDistillOptions.Backbone))] string Name,
    [property: SpecOption(nameof(DualHeadDistillOptions.FeatureColumnName))] int InputSize,
    [property: SpecOption(nameof(DualHeadDistillOptions.EmbeddingSize))] int EmbeddingSize,
    [property: SpecOption(nameof(DualHeadDistillOptions.ImageShape))] InputImageShape? ImageShape,
    [property: SpecOption(nameof(DualHeadDistillOptions.BackboneSettings))] SpecSettings Settings)
{
    public override string ToString() => $"{Name}(input {InputSize}{(ImageShape is { } s ? $" as {s}" : "")}, z {EmbeddingSize}{(Settings.Count > 0 ? $", {Settings}" : "")})";
}
