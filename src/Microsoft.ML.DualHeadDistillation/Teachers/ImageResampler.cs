namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Separable image resampling of planar float images, with the support-scaled ("antialiased") filters
/// that PIL uses, so downscaling matches how CLIP's preprocessing was trained (PIL BICUBIC, a = -0.5).
/// </summary>
internal static class ImageResampler
{
    public static float[] Resize(float[] source, int channels, int height, int width, int newHeight, int newWidth, ResizeInterpolation interpolation)
    {
        var (hx, wx) = Coefficients(width, newWidth, interpolation);
        var (hy, wy) = Coefficients(height, newHeight, interpolation);
        var horizontal = new float[channels * height * newWidth];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < height; y++)
            {
                int src = (c * height + y) * width, dst = (c * height + y) * newWidth;
                for (int x = 0; x < newWidth; x++)
                {
                    double sum = 0;
                    var weights = wx[x];
                    for (int j = 0; j < weights.Length; j++) sum += weights[j] * source[src + hx[x] + j];
                    horizontal[dst + x] = (float)sum;
                }
            }
        var output = new float[channels * newHeight * newWidth];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < newHeight; y++)
            {
                var weights = wy[y];
                int dst = (c * newHeight + y) * newWidth;
                for (int x = 0; x < newWidth; x++)
                {
                    double sum = 0;
                    for (int j = 0; j < weights.Length; j++) sum += weights[j] * horizontal[(c * height + hy[y] + j) * newWidth + x];
                    output[dst + x] = (float)sum;
                }
            }
        return output;
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
