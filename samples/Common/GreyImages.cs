namespace DualHeadML.Samples;

/// <summary>Fashion-MNIST's 28x28 grey images as the 3-channel inputs of ImageNet-style students and teachers.</summary>
public static class GreyImages
{
    /// <summary>
    /// A 28x28 grey image (row-major, values in [0, 1]) as planar RGB [3, S, S] with three equal channels, resized
    /// bilinearly with half-pixel centres (torch's <c>interpolate(mode="bilinear", align_corners=False)</c>).
    /// </summary>
    public static float[] ToRgb(ReadOnlySpan<float> grey, int size)
    {
        const int n = 28;
        if (grey.Length != n * n) throw new ArgumentException($"Expected a 28x28 image ({n * n} values); got {grey.Length}.", nameof(grey));
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        var rgb = new float[3 * size * size];
        float scale = n / (float)size;
        for (int y = 0; y < size; y++)
        {
            float sy = Math.Max((y + 0.5f) * scale - 0.5f, 0);
            int y0 = Math.Min((int)sy, n - 1), y1 = Math.Min(y0 + 1, n - 1);
            float wy = sy - y0;
            for (int x = 0; x < size; x++)
            {
                float sx = Math.Max((x + 0.5f) * scale - 0.5f, 0);
                int x0 = Math.Min((int)sx, n - 1), x1 = Math.Min(x0 + 1, n - 1);
                float wx = sx - x0;
                float top = grey[y0 * n + x0] * (1 - wx) + grey[y0 * n + x1] * wx;
                float bottom = grey[y1 * n + x0] * (1 - wx) + grey[y1 * n + x1] * wx;
                rgb[y * size + x] = top * (1 - wy) + bottom * wy;
            }
        }
        int plane = size * size;
        rgb.AsSpan(0, plane).CopyTo(rgb.AsSpan(plane));
        rgb.AsSpan(0, plane).CopyTo(rgb.AsSpan(2 * plane));
        return rgb;
    }
}
