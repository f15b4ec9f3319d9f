using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The teacher's resampler (vectorised vertical pass, cached coefficients) against the plain scalar form it replaced.</summary>
[TestClass]
public sealed class ImageResamplerTests
{
    /// <summary>The scalar separable resampler as it was: horizontal pass, then vertical, each value summed in double in tap order.</summary>
    private static float[] Reference(float[] source, int channels, int height, int width, int newHeight, int newWidth, ResizeInterpolation interpolation)
    {
        var (hx, wx) = ImageResampler.Coefficients(width, newWidth, interpolation);
        var (hy, wy) = ImageResampler.Coefficients(height, newHeight, interpolation);
        var horizontal = new float[channels * height * newWidth];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < height; y++)
                for (int x = 0; x < newWidth; x++)
                {
                    double sum = 0;
                    for (int j = 0; j < wx[x].Length; j++) sum += wx[x][j] * source[(c * height + y) * width + hx[x] + j];
                    horizontal[(c * height + y) * newWidth + x] = (float)sum;
                }
        var output = new float[channels * newHeight * newWidth];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < newHeight; y++)
                for (int x = 0; x < newWidth; x++)
                {
                    double sum = 0;
                    for (int j = 0; j < wy[y].Length; j++) sum += wy[y][j] * horizontal[(c * height + hy[y] + j) * newWidth + x];
                    output[(c * newHeight + y) * newWidth + x] = (float)sum;
                }
        return output;
    }

    [TestMethod]
    public void TheVectorisedResamplerIsBitIdenticalToTheScalarOne()
    {
        var random = new Random(4);
        foreach (var (h, w, nh, nw) in new[] { (480, 640, 224, 298), (28, 28, 112, 112), (37, 53, 19, 23), (5, 300, 64, 7), (224, 224, 224, 224) })
            foreach (var interpolation in new[] { ResizeInterpolation.Bicubic, ResizeInterpolation.Bilinear })
            {
                var source = Enumerable.Range(0, 3 * h * w).Select(_ => (float)(random.NextDouble() * 255)).ToArray();
                var expected = Reference(source, 3, h, w, nh, nw, interpolation);
                for (int round = 0; round < 2; round++) // the second call takes the cached coefficients and a pooled buffer
                    CollectionAssert.AreEqual(expected, ImageResampler.Resize(source, 3, h, w, nh, nw, interpolation), $"{h}x{w} -> {nh}x{nw} {interpolation}");
            }
    }
}
