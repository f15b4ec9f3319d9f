using System.Globalization;

namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>
/// Per-sample augmentation of image inputs, drawn independently for every row of every epoch from a generator
/// keyed by (seed, epoch, row): the same seed gives the same crops, a resumed run gets the crops of an
/// uninterrupted one, and the number of workers does not matter. Applied in this order: random resized crop
/// (or, without it, the center crop of the stored image), horizontal flip, colour jitter (brightness, contrast,
/// saturation, each a factor drawn uniformly from [1 - x, 1 + x]).
/// </summary>
/// <param name="RandomResizedCrop">Crop a random area (a fraction in [MinScale, MaxScale] of the stored image, aspect ratio in [MinRatio, MaxRatio], log-uniform) and resize it to the student's input size, as torchvision's RandomResizedCrop does.</param>
/// <param name="MinScale">Smallest area fraction of the crop (DHO: 0.5).</param>
/// <param name="MaxScale">Largest area fraction of the crop (1).</param>
/// <param name="MinRatio">Smallest width/height ratio of the crop (3/4).</param>
/// <param name="MaxRatio">Largest width/height ratio of the crop (4/3).</param>
/// <param name="HorizontalFlip">Mirror the crop left-right with probability 1/2.</param>
/// <param name="Brightness">Brightness jitter strength in [0, 1); 0 turns it off.</param>
/// <param name="Contrast">Contrast jitter strength in [0, 1); 0 turns it off.</param>
/// <param name="Saturation">Saturation jitter strength in [0, 1) (3-channel inputs only); 0 turns it off.</param>
public sealed record ImageAugmentation(
    bool RandomResizedCrop,
    float MinScale,
    float MaxScale,
    float MinRatio,
    float MaxRatio,
    bool HorizontalFlip,
    float Brightness = 0,
    float Contrast = 0,
    float Saturation = 0)
{
    /// <summary>The DHO reference's training augmentation: RandomResizedCrop(scale 0.5-1, ratio 3/4-4/3) and a horizontal flip.</summary>
    public static ImageAugmentation Default { get; } = new(true, 0.5f, 1f, 3f / 4f, 4f / 3f, true);

    /// <summary>No augmentation: every epoch sees the center crop of each stored image (the view used at inference).</summary>
    public static ImageAugmentation None { get; } = new(false, 1f, 1f, 1f, 1f, false);

    /// <summary>True when nothing is random: the samples are the same every epoch.</summary>
    public bool IsIdentity => !RandomResizedCrop && !HorizontalFlip && Brightness == 0 && Contrast == 0 && Saturation == 0;

    internal void Validate(string option)
    {
        if (RandomResizedCrop)
        {
            if (!(MinScale > 0 && MinScale <= MaxScale && MaxScale <= 1))
                throw new ArgumentOutOfRangeException(option, $"{option}: the crop scale range [{MinScale}, {MaxScale}] must satisfy 0 < MinScale <= MaxScale <= 1.");
            if (!(MinRatio > 0 && MinRatio <= MaxRatio && float.IsFinite(MaxRatio)))
                throw new ArgumentOutOfRangeException(option, $"{option}: the crop ratio range [{MinRatio}, {MaxRatio}] must satisfy 0 < MinRatio <= MaxRatio (finite).");
        }
        foreach (var (name, value) in new[] { (nameof(Brightness), Brightness), (nameof(Contrast), Contrast), (nameof(Saturation), Saturation) })
            if (!(value >= 0 && value < 1))
                throw new ArgumentOutOfRangeException(option, $"{option}: {name} is {value}; expected a jitter strength in [0, 1).");
    }

    public override string ToString()
    {
        if (IsIdentity) return "none (center crop)";
        var parts = new List<string>();
        parts.Add(RandomResizedCrop ? string.Create(CultureInfo.InvariantCulture, $"RandomResizedCrop(scale {MinScale:0.###}-{MaxScale:0.###}, ratio {MinRatio:0.###}-{MaxRatio:0.###})") : "center crop");
        if (HorizontalFlip) parts.Add("flip");
        if (Brightness > 0 || Contrast > 0 || Saturation > 0)
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"jitter(brightness {Brightness:0.###}, contrast {Contrast:0.###}, saturation {Saturation:0.###})"));
        return string.Join(" + ", parts);
    }
}
