namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Separable image resampling of planar float images, with the support-scaled ("antialiased") filters
/// that PIL uses, so downscaling matches how CLIP's preprocessing was trained (PIL BICUBIC, a = -0.5).
/// </summary>
internal static class ImageResampler
{
    // Coefficients depend only on the sizes and the filter: computed once per (in, out, filter), not per image.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int, int, ResizeInterpolation), (int[] Start, double[][] Weights)> s_coefficients = new();

    /// <summary>
    /// Separable resampling (horizontal pass, then vertical), each output value summed in double in tap order. The vertical
    /// pass runs over whole rows with SIMD vectors, the same multiplications and additions per value as the scalar loop,
    /// so the result is bit-identical to it.
    /// </summary>
    public static float[] Resize(float[] source, int channels, int height, int width, int newHeight, int newWidth, ResizeInterpolation interpolation)
    {
        var output = new float[channels * newHeight * newWidth];
        Resize(source, channels, height, width, newHeight, newWidth, interpolation, output);
        return output;
    }

    /// <summary>As <see cref="Resize(float[], int, int, int, int, int, ResizeInterpolation)"/>, into <paramref name="output"/> (at least C·H'·W' long; a rented buffer need not allocate per image).</summary>
    public static void Resize(float[] source, int channels, int height, int width, int newHeight, int newWidth, ResizeInterpolation interpolation, float[] output)
    {
        var (hx, wx) = Cached(width, newWidth, interpolation);
        var (hy, wy) = Cached(height, newHeight, interpolation);
        int horizontalLength = channels * height * newWidth;
        var horizontal = System.Buffers.ArrayPool<float>.Shared.Rent(horizontalLength);
        try
        {
            for (int c = 0; c < channels; c++)
                for (int y = 0; y < height; y++)
                {
                    var src = source.AsSpan((c * height + y) * width, width);
                    var dst = horizontal.AsSpan((c * height + y) * newWidth, newWidth);
                    for (int x = 0; x < dst.Length; x++)
                    {
                        double sum = 0;
                        var weights = wx[x];
                        var taps = src.Slice(hx[x], weights.Length);
                        for (int j = 0; j < weights.Length; j++) sum += weights[j] * taps[j];
                        dst[x] = (float)sum;
                    }
                }
            var accumulator = new double[newWidth];
            for (int c = 0; c < channels; c++)
                for (int y = 0; y < newHeight; y++)
                {
                    var weights = wy[y];
                    accumulator.AsSpan().Clear();
                    for (int j = 0; j < weights.Length; j++)
                        AddScaled(accumulator, horizontal.AsSpan((c * height + hy[y] + j) * newWidth, newWidth), weights[j]);
                    var dst = output.AsSpan((c * newHeight + y) * newWidth, newWidth);
                    for (int x = 0; x < dst.Length; x++) dst[x] = (float)accumulator[x];
                }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(horizontal);
        }
    }

    private static (int[] Start, double[][] Weights) Cached(int inSize, int outSize, ResizeInterpolation interpolation) =>
        s_coefficients.Count > 256 ? Coefficients(inSize, outSize, interpolation) // many distinct sizes: do not grow without bound
            : s_coefficients.GetOrAdd((inSize, outSize, interpolation), k => Coefficients(k.Item1, k.Item2, k.Item3));

    /// <summary>accumulator[x] += weight * row[x] in double, vectorised (a multiply then an add per value, as the scalar form).</summary>
    private static void AddScaled(Span<double> accumulator, ReadOnlySpan<float> row, double weight)
    {
        int x = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var w = new System.Numerics.Vector<double>(weight);
            int step = System.Numerics.Vector<float>.Count;
            for (; x <= row.Length - step; x += step)
            {
                System.Numerics.Vector.Widen(new System.Numerics.Vector<float>(row.Slice(x, step)), out var low, out var high);
                var a = accumulator.Slice(x, step);
                int half = System.Numerics.Vector<double>.Count;
                var lowSum = new System.Numerics.Vector<double>(a[..half]) + w * low;
                var highSum = new System.Numerics.Vector<double>(a.Slice(half, half)) + w * high;
                lowSum.CopyTo(a[..half]);
                highSum.CopyTo(a.Slice(half, half));
            }
        }
        for (; x < row.Length; x++) accumulator[x] += weight * row[x];
    }

    /// <summary>For each output index: the first input index and the normalised weights from there on.</summary>
    internal static (int[] Start, double[][] Weights) Coefficients(int inSize, int outSize, ResizeInterpolation interpolation)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = (interpolation == ResizeInterpolation.Bicubic ? 2.0 : 1.0) * filterScale;
        var start = new int[outSize];
        var weights = new double[outSize][];
        for (int i = 0; i < outSize; i++)
        {
            double center = (i + 0.5) * scale;
            int min = Math.Max((int)Math.Floor(center - support + 0.5), 0);
            int max = Math.Min((int)Math.Floor(center + support + 0.5), inSize);
            var w = new double[max - min];
            double total = 0;
            for (int j = min; j < max; j++)
            {
                double v = Filter((j - center + 0.5) / filterScale, interpolation);
                w[j - min] = v;
                total += v;
            }
            if (total != 0) for (int j = 0; j < w.Length; j++) w[j] /= total;
            start[i] = min;
            weights[i] = w;
        }
        return (start, weights);
    }

    private static double Filter(double x, ResizeInterpolation interpolation)
    {
        x = Math.Abs(x);
        if (interpolation == ResizeInterpolation.Bilinear) return x < 1 ? 1 - x : 0;
        const double a = -0.5;
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }
}
