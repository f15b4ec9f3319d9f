namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>How the student standardises its input before the backbone.</summary>
public enum DualHeadInputNormalization
{
    /// <summary>
    /// Per-channel (x - mean) / std inside the student, exported into its ONNX graph: the backbone's pretrained
    /// mean/std when it has them, otherwise statistics of the training rows (labeled and unlabeled), computed in
    /// the first pass. Channels are the image channels for image backbones and the features themselves for
    /// feature-vector backbones; a constant channel keeps std 1.
    /// </summary>
    Standardize,
    /// <summary>The features reach the backbone as they are.</summary>
    None,
}

/// <summary>
/// The student: backbone, class count, number of heads and input standardisation. Equal specs build
/// students whose weights are interchangeable. The standardisation statistics are data (like weights): they
/// live in the student's buffers and travel with its weights, not in the spec.
/// </summary>
public sealed record StudentSpec(
    BackboneSpec Backbone,
    [property: SpecOption("label column")] int ClassCount,
    [property: SpecOption(nameof(DualHeadDistillOptions.Objective))] int Heads,
    [property: SpecOption(nameof(DualHeadDistillOptions.InputNormalization))] DualHeadInputNormalization InputNormalization)
{
    public override string ToString() => $"{Backbone}; {Heads} head{(Heads == 1 ? "" : "s")} of {ClassCount} classes; input {InputNormalization}";
}
