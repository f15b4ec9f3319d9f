using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Data.Images;

/// <summary>
/// The geometry shared by the store, training and inference, so that they agree to the pixel: an image is
/// resized so its shorter side is S (antialiased bilinear, PIL's filter) and center-cropped to S x S (the stored
/// square); the student's input is a crop of that square, the center one at inference.
/// </summary>
internal static class ImageSquare
{
    /// <summary>Planar bytes [c, h, w] to the stored square [c, s, s] in <paramref name="square"/>.</summary>
    public static void Store(byte[] pixels, int c, int h, int w, int s, Span<byte> square)
    {
        if (square.Length != c * s * s) throw new ArgumentException($"The stored square holds {square.Length} bytes; [{c}, {s}, {s}] needs {c * s * s}.");
        if (Math.Min(h, w) == s)
        {
            Crop(pixels, c, h, w, s, square); // no resampling: a plain center crop (exact for images already at the storage size)
            return;
        }
        var planar = new float[c * h * w];
        for (int i = 0; i < planar.Length; i++) planar[i] = pixels[i];
        int nh = h <= w ? s : (int)((double)h * s / w), nw = h <= w ? (int)((double)w * s / h) : s;
        var resized = ImageResampler.Resize(planar, c, h, w, nh, nw, ResizeInterpolation.Bilinear);
        int top = (nh - s) / 2, left = (nw - s) / 2;
        for (int k = 0; k < c; k++)
            for (int y = 0; y < s; y++)
            {
                int src = (k * nh + top + y) * nw + left, dst = (k * s + y) * s;
                for (int x = 0; x < s; x++) square[dst + x] = (byte)Math.Clamp((int)MathF.Round(resized[src + x]), 0, 255);
            }
    }

    private static void Crop(byte[] pixels, int c, int h, int w, int s, Span<byte> square)
    {
        int top = (h - s) / 2, left = (w - s) / 2;
        for (int k = 0; k < c; k++)
            for (int y = 0; y < s; y++)
                pixels.AsSpan((k * h + top + y) * w + left, s).CopyTo(square.Slice((k * s + y) * s, s));
    }

    /// <summary>The center [c, outH, outW] crop of a stored square as floats in [0, 1]: the student's input at inference.</summary>
    public static void CenterCrop(ReadOnlySpan<byte> square, int c, int s, int outH, int outW, Span<float> destination)
        => CenterCrop(square, c, s, outH, outW, destination, (s - outH) / 2, (s - outW) / 2);

    /// <summary>The [c, outH, outW] window at (top, left) of a stored square, as floats in [0, 1].</summary>
    public static void CenterCrop(ReadOnlySpan<byte> square, int c, int s, int outH, int outW, Span<float> destination, int top, int left)
    {
        if (outH > s || outW > s) throw new InvalidOperationException($"The student's input {outH}x{outW} is larger than the stored square {s}x{s}.");
        const float scale = 1f / 255f;
        for (int k = 0; k < c; k++)
            for (int y = 0; y < outH; y++)
            {
                var src = square.Slice((k * s + top + y) * s + left, outW);
                var dst = destination.Slice((k * outH + y) * outW, outW);
                for (int x = 0; x < outW; x++) dst[x] = src[x] * scale;
            }
    }
}
