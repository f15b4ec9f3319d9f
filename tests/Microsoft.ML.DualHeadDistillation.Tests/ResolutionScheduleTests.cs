using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The resolution schedule: its sizes are visited in order, the last at the full size, and the final BatchNorm refresh happens at the full size.</summary>
[TestClass]
public sealed class ResolutionScheduleTests
{
    private static (DualHeadDistillTransformer Model, List<string> Log) Fit(int[]? schedule, int epochs = 2)
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var o = FineTuningTests.Options(weights: null);
        o.Precision = DualHeadPrecision.Float32;
        o.NumberOfEpochs = epochs;
        o.ResolutionSchedule = schedule;
        o.PreciseBatchNormBatches = 2;
        return (ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()), log);
    }

    [TestMethod]
    public void TheScheduleVisitsTheSizesInOrderAndRefreshesBatchNormAtTheFullSize()
    {
        var (scheduled, log) = Fit([8, 12, 16]);
        using var _ = scheduled;
        var lines = log.Where(l => l.Contains("images at height", StringComparison.Ordinal) || l.Contains("Precise BatchNorm", StringComparison.Ordinal)).ToList();
        Console.WriteLine(string.Join("\n", lines));
        var heights = lines.Where(l => l.Contains("images at height", StringComparison.Ordinal)).Select(l => int.Parse(l[(l.LastIndexOf(' ') + 1)..])).ToArray();
        CollectionAssert.AreEqual(new[] { 8, 12, 16 }, heights, "each size once, in order");
        // 72 rows: 48 unlabeled in batches of 8 = 6 steps an epoch, 12 in all: 4 at each size.
        CollectionAssert.AreEqual(new[] { "from step 1,", "from step 5,", "from step 9," },
            lines.Where(l => l.Contains("images at height", StringComparison.Ordinal)).Select(l => string.Join(' ', l[l.IndexOf("from step", StringComparison.Ordinal)..].Split(' ').Take(3))).ToArray());
        int lastChange = lines.FindLastIndex(l => l.Contains("images at height", StringComparison.Ordinal));
        var refreshes = lines.Skip(lastChange).Where(l => l.Contains("Precise BatchNorm", StringComparison.Ordinal)).ToList();
        Assert.AreEqual(1, refreshes.Count, "one refresh after the last change (the end of the last epoch)");
        StringAssert.EndsWith(refreshes[0], "at 16x16", "the final BatchNorm refresh is at the full size");
        Assert.IsTrue(lines.Where(l => l.Contains("Precise BatchNorm", StringComparison.Ordinal)).All(l => l.EndsWith("at 16x16", StringComparison.Ordinal)), "every refresh is at the full size");

        var (full, _) = Fit(null);
        using (full)
            Assert.IsTrue(FineTuningTests.MaxChange(FineTuningTests.BackboneState(scheduled), FineTuningTests.BackboneState(full), k => !FineTuningTests.IsStatistic(k)) > 0,
                "training at lower sizes gives other weights");
        var metrics = scheduled.Transform(FineTuningTests.Data()).GetColumn<float[]>("Score").First();
        Assert.AreEqual(3, metrics.Length, "the model scores full-size rows");
    }

    [TestMethod]
    public void AScheduleIsRefusedWhereItCannotWork()
    {
        var ml = new MLContext(seed: 1);
        var o = FineTuningTests.Options(weights: null);
        o.ResolutionSchedule = [8, 12];
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()));
        Assert.AreEqual(nameof(DualHeadDistillOptions.ResolutionSchedule), e.ParamName);
        StringAssert.Contains(e.Message, "full height 16");
        o.ResolutionSchedule = [4, 16];
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()));
        StringAssert.Contains(e.Message, "height 4");
        o.Backbone = DualHeadBackbone.SmallCnn;
        o.ResolutionSchedule = [8, 16];
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()));
        Assert.AreEqual(nameof(DualHeadDistillOptions.ResolutionSchedule), e.ParamName);
        StringAssert.Contains(e.Message, "SmallCnn");
    }
}
