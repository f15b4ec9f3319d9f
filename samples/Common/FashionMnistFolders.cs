using DualHeadML.Samples.Onnx;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Teachers;
using SkiaSharp;

namespace DualHeadML.Samples;

/// <summary>
/// Fashion-MNIST as a folder of PNG files, the layout `dualhead train` reads: labeled/&lt;class&gt;/*.png,
/// unlabeled/**/*.png (in subfolders of 1,000), test/&lt;class&gt;/*.png; and a small real teacher for it.
/// </summary>
public static class FashionMnistFolders
{
    /// <summary>Class names usable as folder names ("T-shirt/top" becomes "T-shirt_top").</summary>
    public static readonly IReadOnlyList<string> ClassNames = FashionMnist.ClassNames.Select(n => n.Replace('/', '_')).ToArray();

    /// <summary>The training images the teacher is fitted on: the last 2,000, never written to the folders.</summary>
    public static IEnumerable<int> TeacherPool(FashionMnistSplit train) => Enumerable.Range(train.Count - 2000, 2000);

    /// <summary>The written images: file paths by role.</summary>
    public sealed record Written(string Root, string Labeled, string Unlabeled, string Test, int LabeledCount, int UnlabeledCount, int TestCount);

    /// <summary>
    /// Writes <paramref name="labeledPerClass"/> labeled images per class and <paramref name="unlabeled"/> unlabeled ones from
    /// the training split (in a seeded order, outside <see cref="TeacherPool"/>),
    /// and <paramref name="testPerClass"/> per class from the test split.
    /// </summary>
    public static Written Write(string root, FashionMnistSplit train, FashionMnistSplit test, int labeledPerClass, int unlabeled, int testPerClass, int seed = 7)
    {
        string labeledDir = Path.Combine(root, "labeled"), unlabeledDir = Path.Combine(root, "unlabeled"), testDir = Path.Combine(root, "test");
        var order = Order(train.Count - 2000, seed);
        int taken = 0;
        var perClass = new int[10];
        int position = 0;
        while (perClass.Sum() < 10 * labeledPerClass)
        {
            int i = order[position++];
            int c = train.Labels[i];
            if (perClass[c] >= labeledPerClass) continue;
            Png(train, i, Path.Combine(labeledDir, ClassNames[c], $"train{i:D5}.png"));
            perClass[c]++;
        }
        for (int n = 0; n < unlabeled; n++, position++)
        {
            int i = order[position];
            Png(train, i, Path.Combine(unlabeledDir, $"part{n / 1000:D3}", $"train{i:D5}.png"));
            taken++;
        }
        var testOrder = Order(test.Count, seed + 1);
        var testPer = new int[10];
        foreach (int i in testOrder)
        {
            int c = test.Labels[i];
            if (testPer[c] >= testPerClass) continue;
            Png(test, i, Path.Combine(testDir, ClassNames[c], $"test{i:D5}.png"));
            testPer[c]++;
            if (testPer.Sum() == 10 * testPerClass) break;
        }
        return new Written(root, labeledDir, unlabeledDir, testDir, 10 * labeledPerClass, taken, testPer.Sum());
    }

    private static int[] Order(int count, int seed)
    {
        var order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        return order;
    }

    /// <summary>One image as an 8-bit grey PNG.</summary>
    public static void Png(FashionMnistSplit split, int index, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var pixels = split.Image(index);
        using var bitmap = new SKBitmap(new SKImageInfo(FashionMnistSplit.Side, FashionMnistSplit.Side, SKColorType.Gray8, SKAlphaType.Opaque));
        var bytes = new byte[pixels.Length];
        for (int p = 0; p < bytes.Length; p++) bytes[p] = (byte)Math.Clamp((int)MathF.Round(pixels[p] * 255f), 0, 255);
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, bitmap.GetPixels(), bytes.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    /// <summary>
    /// A real (if weak) teacher as ONNX: nearest class centroid over <paramref name="pool"/> (logits -|x - mu_k|^2 / 2 up to a
    /// constant, scaled by <paramref name="sharpness"/>), on the [3, 28, 28] RGB image in [0, 1] flattened, with the class names
    /// and the preprocessing (28 x 28, pixels / 255) in its metadata, so `dualhead train --teacher` needs no other option.
    /// </summary>
    public static byte[] CentroidTeacher(FashionMnistSplit train, IEnumerable<int> pool, float sharpness = 0.5f)
    {
        const int d = FashionMnistSplit.PixelsPerImage;
        var sums = new double[10, d];
        var counts = new int[10];
        foreach (int i in pool)
        {
            int c = train.Labels[i];
            counts[c]++;
            var x = train.Image(i);
            for (int p = 0; p < d; p++) sums[c, p] += x[p];
        }
        var weights = new float[10, 3 * d];
        var bias = new float[10];
        for (int c = 0; c < 10; c++)
        {
            double norm = 0;
            for (int p = 0; p < d; p++)
            {
                double mu = sums[c, p] / Math.Max(1, counts[c]);
                norm += mu * mu;
                for (int ch = 0; ch < 3; ch++) weights[c, ch * d + p] = (float)(sharpness * mu / 3); // three equal channels sum to x . mu
            }
            bias[c] = (float)(-sharpness * norm / 2);
        }
        var metadata = TeacherMetadata.Write(ClassNames, new TeacherPreprocessing { ResizeShorterSide = 28, CropHeight = 28, CropWidth = 28, Scale = 1f / 255f });
        return TinyOnnxModels.Linear(weights, bias, "pixels", "logits", metadata);
    }
}
