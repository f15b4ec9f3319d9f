using System.Globalization;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>Resampling filter used to resize teacher inputs.</summary>
public enum ResizeInterpolation
{
    /// <summary>Triangle filter (PIL's BILINEAR, antialiased when shrinking).</summary>
    Bilinear,
    /// <summary>Cubic filter a = -0.5 (PIL's BICUBIC, antialiased when shrinking) — CLIP's choice.</summary>
    Bicubic,
}

/// <summary>Channel order of the tensor the teacher expects.</summary>
public enum ChannelOrder
{
    Rgb,
    Bgr,
}

/// <summary>
/// The teacher's own input pipeline, independent of the student's: resize the shorter side, center-crop,
/// scale, normalise per channel, and lay out as planar [C, H, W] in the teacher's channel order.
/// Applied to an ML.NET image column (MLImage; bytes 0..255) or to a pixel vector with a declared
/// [C, H, W] shape (values already scaled as <see cref="Scale"/> expects).
/// </summary>
public sealed class TeacherPreprocessing
{
    /// <summary>CLIP's normalisation constants (OpenAI CLIP, <c>clip/clip.py</c>).</summary>
    public static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];
    /// <summary>ImageNet's normalisation constants (torchvision).</summary>
    public static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];
    public static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    /// <summary>Resize so the shorter side has this length (keeping the aspect ratio); null: no resize.</summary>
    public int? ResizeShorterSide { get; set; }
    /// <summary>Center crop to [CropHeight, CropWidth]; null: no crop.</summary>
    public int? CropHeight { get; set; }
    public int? CropWidth { get; set; }
    public ResizeInterpolation Interpolation { get; set; } = ResizeInterpolation.Bicubic;
    /// <summary>Multiplier applied to raw values first (1/255 turns image bytes into [0, 1]).</summary>
    public float Scale { get; set; } = 1f / 255f;
    /// <summary>Per-channel mean subtracted after scaling (length C, in RGB order); null: none.</summary>
    public float[]? Mean { get; set; }
    /// <summary>Per-channel standard deviation divided after subtracting the mean; null: none.</summary>
    public float[]? Std { get; set; }
    public ChannelOrder ChannelOrder { get; set; } = ChannelOrder.Rgb;
    /// <summary>For a pixel-vector input column: its [C, H, W] layout (RGB channel order). Not used for MLImage columns.</summary>
    public int[]? SourceShape { get; set; }

    /// <summary>CLIP's preprocessing: bicubic resize of the shorter side to <paramref name="size"/>, center crop, CLIP mean/std, RGB.</summary>
    public static TeacherPreprocessing Clip(int size = 224) => new()
    {
        ResizeShorterSide = size,
        CropHeight = size,
        CropWidth = size,
        Interpolation = ResizeInterpolation.Bicubic,
        Scale = 1f / 255f,
        Mean = ClipMean,
        Std = ClipStd,
        ChannelOrder = ChannelOrder.Rgb,
    };

    internal TeacherPreprocessing Clone()
    {
        var copy = (TeacherPreprocessing)MemberwiseClone();
        copy.Mean = (float[]?)Mean?.Clone();
        copy.Std = (float[]?)Std?.Clone();
        copy.SourceShape = (int[]?)SourceShape?.Clone();
        return copy;
    }

    /// <summary>A stable description, part of the soft-label cache key (so a change of preprocessing never reuses old logits).</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"resize={ResizeShorterSide};crop={CropHeight}x{CropWidth};interp={Interpolation};scale={Scale:R};mean={Join(Mean)};std={Join(Std)};order={ChannelOrder};source={Join(SourceShape)}");

    private static string Join<T>(T[]? values) => values is null ? "-" : string.Join(",", values.Select(v => Convert.ToString(v, CultureInfo.InvariantCulture)));

    internal void Validate()
    {
        if (ResizeShorterSide is < 1) throw new ArgumentOutOfRangeException(nameof(ResizeShorterSide), ResizeShorterSide, "ResizeShorterSide must be at least 1.");
        if (CropHeight is < 1 || CropWidth is < 1 || (CropHeight is null) != (CropWidth is null))
            throw new ArgumentOutOfRangeException(nameof(CropHeight), "CropHeight and CropWidth must both be set, to at least 1, or both be null.");
        if (!float.IsFinite(Scale) || Scale == 0) throw new ArgumentOutOfRangeException(nameof(Scale), Scale, "Scale must be finite and non-zero.");
        if (Std is { } std && std.Any(s => !(s > 0))) throw new ArgumentOutOfRangeException(nameof(Std), "Every Std value must be > 0.");
        if (SourceShape is { } shape && (shape.Length != 3 || shape.Any(d => d < 1)))
            throw new ArgumentOutOfRangeException(nameof(SourceShape), "SourceShape must be [C, H, W] with positive sizes.");
    }

    /// <summary>
    /// Turns one planar RGB image [c, h, w] of raw values into the teacher's input, written to
    /// <paramref name="output"/> (length c * outH * outW). Returns the output [C, H, W].
    /// </summary>
    internal (int C, int H, int W) Apply(float[] planarRgb, int c, int h, int w, Span<float> output)
    {
        if (ResizeShorterSide is int side && Math.Min(h, w) != side)
        {
            var (_, nh, nw) = ResizedShape(c, h, w, side);
            // The resized image is pooled, not allocated per row (for a 224 px teacher it would be a large-object heap array).
            var resized = System.Buffers.ArrayPool<float>.Shared.Rent(c * nh * nw);
            try
            {
                ImageResampler.Resize(planarRgb, c, h, w, nh, nw, Interpolation, resized);
                return CropAndStandardise(resized, c, nh, nw, output);
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(resized);
            }
        }
        return CropAndStandardise(planarRgb, c, h, w, output);
    }

    private (int C, int H, int W) CropAndStandardise(float[] image, int c, int h, int w, Span<float> output)
    {
        int ch = CropHeight ?? h, cw = CropWidth ?? w;
        if (ch > h || cw > w)
            throw new InvalidOperationException($"Center crop {ch}x{cw} is larger than the image ({h}x{w}); set ResizeShorterSide to at least the crop size.");
        int top = (int)Math.Round((h - ch) / 2.0), left = (int)Math.Round((w - cw) / 2.0);
        if (output.Length != c * ch * cw)
            throw new InvalidOperationException($"The teacher input holds {output.Length} values per row but preprocessing gives [{c}, {ch}, {cw}] = {c * ch * cw}.");
        for (int k = 0; k < c; k++)
        {
            int src = ChannelOrder == ChannelOrder.Bgr && c == 3 ? 2 - k : k; // output channel k comes from source channel src
            float mean = Mean is { } m && src < m.Length ? m[src] : 0f;
            float std = Std is { } s && src < s.Length ? s[src] : 1f;
            for (int y = 0; y < ch; y++)
            {
                int srcRow = (src * h + top + y) * w + left;
                int dstRow = (k * ch + y) * cw;
                for (int x = 0; x < cw; x++) output[dstRow + x] = (image[srcRow + x] * Scale - mean) / std;
            }
        }
        return (c, ch, cw);
    }

    /// <summary>The [C, H, W] produced from a source of the given size.</summary>
    internal (int C, int H, int W) OutputShape(int c, int h, int w)
    {
        if (ResizeShorterSide is int side && Math.Min(h, w) != side) (_, h, w) = ResizedShape(c, h, w, side);
        return (c, CropHeight ?? h, CropWidth ?? w);
    }

    private static (int C, int H, int W) ResizedShape(int c, int h, int w, int side) =>
        h <= w ? (c, side, (int)((double)w * side / h)) : (c, (int)((double)h * side / w), side); // truncated, as torchvision and Hugging Face do
}
