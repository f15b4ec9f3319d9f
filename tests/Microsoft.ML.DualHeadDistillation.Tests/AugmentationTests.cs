using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Training.Augmentation;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Per-sample augmentation: its draws, its pixels, and that training with it stays deterministic and resumable.</summary>
[TestClass]
public sealed class AugmentationTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    [TestMethod]
    public void RandomResizedCropDrawsStayInTheImageAndInTheirRanges()
    {
        var a = ImageAugmentation.Default;
        var sampler = new ImageSampler(a, 3, 40, new InputImageShape(3, 32, 32), seed: 9);
        var views = new HashSet<SampleView>();
        int flips = 0;
        for (int row = 0; row < 2000; row++)
        {
            var v = sampler.View(epoch: 1 + row % 4, row);
            Assert.IsTrue(v.Top >= 0 && v.Left >= 0 && v.Top + v.Height <= 40 && v.Left + v.Width <= 40, v.ToString());
            double area = (double)v.Height * v.Width / (40 * 40), ratio = (double)v.Width / v.Height;
            // Rounding w and h to whole pixels moves area and ratio a little past the ranges.
            Assert.IsTrue(area >= 0.5 - 0.05 && area <= 1.0, $"area {area} ({v})");
            Assert.IsTrue(ratio >= 0.75 * 0.93 && ratio <= 4.0 / 3 * 1.07, $"ratio {ratio} ({v})");
            if (v.Flip) flips++;
            views.Add(v);
        }
        Assert.IsTrue(flips is > 900 and < 1100, $"{flips} flips of 2000");
        Assert.IsTrue(views.Count > 1500, $"only {views.Count} distinct views of 2000");

        // A pure function of (seed, epoch, row): any order, any thread, same view; another epoch or seed, another one.
        var again = new ImageSampler(a, 3, 40, new InputImageShape(3, 32, 32), seed: 9);
        var parallel = new SampleView[500];
        Parallel.For(0, 500, i => parallel[499 - i] = again.View(2, 499 - i));
        for (int row = 0; row < 500; row++) Assert.AreEqual(sampler.View(2, row), parallel[row]);
        Assert.IsTrue(Enumerable.Range(0, 200).Count(r => sampler.View(1, r) != sampler.View(2, r)) > 190);
        var otherSeed = new ImageSampler(a, 3, 40, new InputImageShape(3, 32, 32), seed: 10);
        Assert.IsTrue(Enumerable.Range(0, 200).Count(r => sampler.View(1, r) != otherSeed.View(1, r)) > 190);
    }

    [TestMethod]
    public void CropsResampleThePixelsTheyCoverAndFlipMirrorsThem()
    {
        // A stored 20x20 square whose value is its column index * 10 (one channel): a horizontal ramp.
        const int s = 20;
        var square = new byte[s * s];
        for (int y = 0; y < s; y++) for (int x = 0; x < s; x++) square[y * s + x] = (byte)(x * 10);
        var sampler = new ImageSampler(ImageAugmentation.Default, 1, s, new InputImageShape(1, 10, 10), seed: 1);
        var scratch = new ImageSampler.Scratch();
        var plain = new float[100];
        var mirrored = new float[100];
        // The right half, 10x10 at (10, 5): no resampling, exactly those pixels.
        sampler.Render(square, new SampleView(5, 10, 10, 10, false, 1, 1, 1), plain, scratch);
        for (int y = 0; y < 10; y++) for (int x = 0; x < 10; x++) Assert.AreEqual((10 + x) * 10 / 255f, plain[y * 10 + x], 1e-6f);
        sampler.Render(square, new SampleView(5, 10, 10, 10, true, 1, 1, 1), mirrored, scratch);
        for (int y = 0; y < 10; y++) for (int x = 0; x < 10; x++) Assert.AreEqual(plain[y * 10 + 9 - x], mirrored[y * 10 + x], 1e-6f);
        // The whole square shrunk to 10x10: every output pixel averages two source columns (x*20 + 5 on average), within the crop.
        sampler.Render(square, new SampleView(0, 0, 20, 20, false, 1, 1, 1), plain, scratch);
        for (int x = 0; x < 10; x++)
        {
            float value = plain[3 * 10 + x] * 255f;
            Assert.IsTrue(value >= x * 20 - 10 && value <= x * 20 + 20, $"column {x}: {value}");
        }
        Assert.IsTrue(plain.All(v => v is >= 0 and <= 1));
        // Brightness x1.2 scales and clips.
        var bright = new float[100];
        sampler.Render(square, new SampleView(5, 10, 10, 10, false, 1.2f, 1, 1), bright, scratch);
        Assert.AreEqual(Math.Min(1f, 190 / 255f * 1.2f), bright[9], 1e-5f);
    }

    [TestMethod]
    public void AugmentedTrainingIsDeterministicForAnyWorkerCountAndResumesBitIdentically()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 16, 40);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows);
        var o = ImageFixtures.Options(epochs: 3);
        o.Augmentation = ImageAugmentation.Default with { Brightness = 0.2f, Contrast = 0.2f, Saturation = 0.2f };
        o.DataWorkers = 1;
        using var one = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        o.DataWorkers = 3;
        using var three = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        CollectionAssert.AreEqual(SyntheticData.Weights(one), SyntheticData.Weights(three), "the worker count changed the weights");

        var none = ImageFixtures.Options(epochs: 3);
        none.Augmentation = ImageAugmentation.None;
        using var plain = s_ml.MulticlassClassification.Trainers.DualHeadDistill(none).Fit(data);
        CollectionAssert.AreNotEqual(SyntheticData.Weights(one), SyntheticData.Weights(plain), "augmentation had no effect");

        // Interrupted after epoch 1, resumed from the checkpoint: the weights of the uninterrupted run.
        string path = Path.Combine(dir.Path, "run.ckpt");
        var interrupted = ImageFixtures.Options(epochs: 3);
        interrupted.Augmentation = o.Augmentation;
        interrupted.CheckpointPath = path;
        using var cts = new CancellationTokenSource();
        interrupted.CancellationToken = cts.Token;
        interrupted.Progress = new SyncProgress(r => { if (r.Epoch == 1) cts.Cancel(); });
        Assert.ThrowsExactly<OperationCanceledException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(interrupted).Fit(data));
        var checkpoint = DualHeadCheckpoint.Load(path);
        Assert.AreEqual(1, checkpoint.CompletedEpochs);
        Assert.AreEqual(o.Augmentation, checkpoint.Spec.Images!.Augmentation);
        var resume = ImageFixtures.Options(epochs: 3);
        resume.Augmentation = o.Augmentation;
        using var resumed = s_ml.MulticlassClassification.Trainers.DualHeadDistill(resume).Fit(data, checkpoint);
        CollectionAssert.AreEqual(SyntheticData.Weights(one), SyntheticData.Weights(resumed), "resumed weights differ from the uninterrupted run");

        // Resuming with other augmentation is refused, naming the option.
        var other = ImageFixtures.Options(epochs: 3);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(other).Fit(data, checkpoint));
        Assert.AreEqual("Augmentation", e.ParamName);

        // The checkpoint's model reads images again and scores as the fitted one.
        using var restored = DualHeadCheckpoint.Load(path).ToModel();
        var a = restored.Transform(data).GetColumn<float[]>("Score").ToArray();
        Assert.AreEqual(56, a.Length);
        Assert.IsTrue(a.All(s => s.All(float.IsFinite)));
    }

    private sealed class SyncProgress(Action<DualHeadEpochReport> action) : IProgress<DualHeadEpochReport>
    {
        public void Report(DualHeadEpochReport value) => action(value);
    }
}
