using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Precise BatchNorm (on by default): it changes only the running statistics (every weight is bit-identical to a run
/// without it), and a MobileNetV2 trained from scratch then scores in eval mode as it does with batch statistics.
/// </summary>
[TestClass]
public sealed class PreciseBatchNormTests
{
    private static DualHeadDistillOptions Options(string backbone, int preciseBatches, int epochs = 2)
    {
        var o = FineTuningTests.Options(weights: null);
        o.Backbone = backbone;
        o.Precision = DualHeadPrecision.Float32; // bit-for-bit comparisons
        o.NumberOfEpochs = epochs;
        o.PreciseBatchNormBatches = preciseBatches;
        return o;
    }

    [TestMethod]
    public void PreciseBatchNormChangesOnlyTheRunningStatistics()
    {
        var ml = new MLContext(seed: 1);
        var data = FineTuningTests.Data();
        Assert.AreEqual(DualHeadDefaults.PreciseBatchNormBatches, new DualHeadDistillOptions().PreciseBatchNormBatches, "on by default");
        using var plain = ml.MulticlassClassification.Trainers.DualHeadDistill(Options("MobileNetV3Small", 0)).Fit(data);
        using var precise = ml.MulticlassClassification.Trainers.DualHeadDistill(Options("MobileNetV3Small", 4)).Fit(data);
        Assert.AreEqual(0, plain.TrainingReport.PreciseBatchNormRows);
        Assert.AreEqual(64, precise.TrainingReport.PreciseBatchNormRows, "4 batches of 8 + 8 rows");

        var a = FineTuningTests.BackboneState(plain);
        var b = FineTuningTests.BackboneState(precise);
        Assert.AreEqual(0f, FineTuningTests.MaxChange(a, b, k => !FineTuningTests.IsStatistic(k)), "every weight is bit-identical");
        CollectionAssert.AreEqual(SyntheticData.HeadWeights(plain.Student.CeHead), SyntheticData.HeadWeights(precise.Student.CeHead));
        CollectionAssert.AreEqual(SyntheticData.HeadWeights(plain.Student.KdHead!), SyntheticData.HeadWeights(precise.Student.KdHead!));
        Assert.IsTrue(FineTuningTests.MaxChange(a, b, FineTuningTests.IsStatistic) > 1e-4f, "the running statistics were recomputed");
        Assert.IsTrue(b.Where(p => p.Key.EndsWith("running_var", StringComparison.Ordinal)).All(p => p.Value.All(v => v >= 0 && float.IsFinite(v))), "variances are finite and >= 0");
    }

    [TestMethod]
    public void PreciseBatchNormIsDeterministicAndSkippedUnderFrozenStatistics()
    {
        var ml = new MLContext(seed: 1);
        var data = FineTuningTests.Data();
        using var once = ml.MulticlassClassification.Trainers.DualHeadDistill(Options("MobileNetV3Small", 4, epochs: 1)).Fit(data);
        using var again = ml.MulticlassClassification.Trainers.DualHeadDistill(Options("MobileNetV3Small", 4, epochs: 1)).Fit(data);
        Assert.AreEqual(0f, FineTuningTests.MaxChange(FineTuningTests.BackboneState(once), FineTuningTests.BackboneState(again), _ => true), "same seed, same statistics");
        var frozen = Options("MobileNetV3Small", 4, epochs: 1);
        frozen.FreezeBatchNormStatistics = true;
        using var kept = ml.MulticlassClassification.Trainers.DualHeadDistill(frozen).Fit(data);
        Assert.AreEqual(0, kept.TrainingReport.PreciseBatchNormRows, "FreezeBatchNormStatistics keeps the statistics as they are");
        var bad = Options("MobileNetV3Small", -1);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(bad).Fit(data));
        Assert.AreEqual(nameof(DualHeadDistillOptions.PreciseBatchNormBatches), e.ParamName);
    }

    [TestMethod]
    public void MobileNetV2FromScratchScoresInEvalModeAsWithBatchStatistics()
    {
        var ml = new MLContext(seed: 1);
        var train = FineTuningTests.Data(labeled: 96, unlabeled: 192);
        var validation = FineTuningTests.Data(labeled: 90, unlabeled: 0);
        DualHeadTrainingReport Fit(int preciseBatches)
        {
            var o = Options("MobileNetV2", preciseBatches, epochs: 3);
            o.LabeledBatchSize = 16;
            o.UnlabeledBatchSize = 16;
            o.LearningRate = 3e-3f;
            using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(train, validation);
            return model.TrainingReport;
        }
        var precise = Fit(DualHeadDefaults.PreciseBatchNormBatches);
        var momentum = Fit(0);
        double evalPrecise = precise.Epochs[^1].ValidationAccuracy!.Value, batchPrecise = precise.BatchStatisticsValidationAccuracy!.Value;
        double evalMomentum = momentum.Epochs[^1].ValidationAccuracy!.Value, batchMomentum = momentum.BatchStatisticsValidationAccuracy!.Value;
        Console.WriteLine($"MobileNetV2 from scratch, validation: Precise BN eval {evalPrecise:P1} / batch statistics {batchPrecise:P1}; momentum statistics eval {evalMomentum:P1} / batch statistics {batchMomentum:P1}");
        Assert.IsTrue(batchPrecise > 0.5, $"the student learned (batch-statistics accuracy {batchPrecise:P1})");
        Assert.AreEqual(batchMomentum, batchPrecise, 1e-9, "the same weights either way");
        Assert.IsTrue(Math.Abs(evalPrecise - batchPrecise) <= 0.03, $"with Precise BN eval mode is within 3 points of batch statistics ({evalPrecise:P1} vs {batchPrecise:P1})");
        bool warned = momentum.Warnings.Any(w => w.Contains("differ by more than 5 points", StringComparison.Ordinal));
        Assert.AreEqual(Math.Abs(evalMomentum - batchMomentum) > 0.05, warned, "Fit warns exactly when eval mode and batch statistics differ by more than 5 points");
        Assert.IsFalse(precise.Warnings.Any(w => w.Contains("differ by more than 5 points", StringComparison.Ordinal)));
    }
}
