namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>What the teacher sees when the student trains on augmented images.</summary>
public enum DualHeadTeacherView
{
    /// <summary>The teacher sees each image once, un-augmented, with its own preprocessing; its logits are stored with the sample and the student trains on augmented crops (the default; also what an upstream TeacherSoftLabels column gives).</summary>
    Cached,
    /// <summary>Every step the teacher runs on the very crop the student gets (resized and normalised for the teacher), as the DHO reference does. Costs one teacher pass per sample per epoch; the cost is in the training report.</summary>
    SameCropOnline,
    /// <summary>V augmented views of each image are labelled once by the teacher; in epoch e the student trains on view (e - 1) mod V with exactly that crop: same-crop fidelity at a cached cost.</summary>
    CachedViews,
}

/// <summary>
/// How an image feature column becomes the student's input, fixed when Fit starts. Every image is decoded once,
/// its shorter side resized to <see cref="StorageSize"/> and center-cropped to a square, and kept as 8-bit
/// pixels in the sample store. Training takes a <see cref="StudentSpec"/>-sized crop of that square (random with
/// <see cref="Augmentation"/>, the center crop without); inference takes the center crop, so a model
/// trained without augmentation sees exactly the pixels it is scored on.
/// </summary>
/// <param name="Crop">[C, H, W] of the student's input: the crop taken from the stored square.</param>
/// <param name="StorageSize">Side of the stored square (at least the student's input height and width).</param>
/// <param name="Augmentation">The per-sample training augmentation.</param>
/// <param name="TeacherView">What the teacher sees: each image once (Cached), the student's crop every step (SameCropOnline), or V cached crops (CachedViews).</param>
/// <param name="TeacherViews">V, the views per image labelled once by the teacher (CachedViews; 1 otherwise).</param>
public sealed record ImageInputSpec(
    [property: SpecOption(nameof(DualHeadDistillOptions.ImageShape))] InputImageShape Crop,
    [property: SpecOption(nameof(DualHeadDistillOptions.ImageStorageSize))] int StorageSize,
    [property: SpecOption(nameof(DualHeadDistillOptions.Augmentation))] ImageAugmentation Augmentation,
    [property: SpecOption(nameof(DualHeadDistillOptions.TeacherView))] DualHeadTeacherView TeacherView = DualHeadTeacherView.Cached,
    [property: SpecOption(nameof(DualHeadDistillOptions.TeacherViews))] int TeacherViews = 1)
{
    /// <summary>The default storage side for a crop: 8/7 of its larger side (224 gives 256, as torchvision's Resize(256) + CenterCrop(224)).</summary>
    public static int DefaultStorageSize(InputImageShape crop) => (int)Math.Ceiling(Math.Max(crop.Height, crop.Width) * 8.0 / 7.0);

    /// <summary>The view key of an epoch: the epoch itself, or for CachedViews the cached view it reuses, (epoch - 1) mod V + 1.</summary>
    public int ViewEpoch(int epoch) => TeacherView == DualHeadTeacherView.CachedViews ? (epoch - 1) % TeacherViews + 1 : epoch;

    public override string ToString() => $"images stored at {StorageSize}x{StorageSize}, input {Crop}; augmentation {Augmentation}; teacher {(TeacherView == DualHeadTeacherView.CachedViews ? $"CachedViews({TeacherViews})" : TeacherView.ToString())}";
}
