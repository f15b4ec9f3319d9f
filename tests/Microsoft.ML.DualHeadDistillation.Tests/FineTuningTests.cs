using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Students.Backbones.TorchVision;
using Microsoft.ML.DualHeadDistillation.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// BackboneWeights and the fine-tuning options on a small TorchVision student (MobileNetV3 small, 3x16x16 synthetic
/// images): what is frozen does not move, what is scaled moves less, the weights' ImageNet statistics standardise
/// the input, the report says so, and a resume under other fine-tuning is refused naming the option.
/// </summary>
[TestClass]
public sealed class FineTuningTests
{
    private const int Side = 16, D = 3 * Side * Side, K = 3;
    private static readonly MLContext s_ml = new(seed: 1);

    private sealed class Row
    {
        public string Label { get; set; } = "";
        [VectorType(D)] public float[] Features { get; set; } = [];
        [VectorType(K)] public float[] TeacherLogits { get; set; } = [];
    }

    private sealed class Key { public string Label { get; set; } = ""; }

    internal static IDataView Data(int labeled = 24, int unlabeled = 48)
    {
        var r = new Random(3);
        var rows = Enumerable.Range(0, labeled + unlabeled).Select(i =>
        {
            int c = i % K;
            var x = new float[D];
            for (int j = 0; j < D; j++) x[j] = (float)r.NextDouble() * 0.5f + (j / (Side * Side) == c ? 0.4f : 0f);
            var t = Enumerable.Range(0, K).Select(k => (k == c ? 3f : 0f) + (float)(r.NextDouble() - 0.5)).ToArray();
            return new Row { Label = i < labeled ? SyntheticData.ClassNames[c] : "", Features = x, TeacherLogits = t };
        }).ToList();
        var data = s_ml.Data.LoadFromEnumerable(rows);
        var keys = s_ml.Data.LoadFromEnumerable(SyntheticData.ClassNames.Select(n => new Key { Label = n }));
        return s_ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys).Fit(data).Transform(data);
    }

    internal static DualHeadDistillOptions Options(string? weights) => new()
    {
        Backbone = "MobileNetV3Small",
        ImageShape = [3, Side, Side],
        BackboneWeights = weights,
        NumberOfEpochs = 1,
        LabeledBatchSize = 8,
        UnlabeledBatchSize = 8,
        Seed = 4,
        Device = DualHeadDevice.Cpu,
    };

    /// <summary>A torch.save file (written by PyBridge) of a MobileNetV3 small backbone seeded differently from the runs.</summary>
    internal static string WeightsFile(TempDir dir)
    {
        using var student = TorchVisionFixtures.Student("MobileNetV3Small", Side, seed: 77, classes: K);
        TorchVisionFixtures.RandomizeBatchNorm(student, seed: 78);
        string path = Path.Combine(dir.Path, "mobilenet_v3_small.pt");
        student.Backbone.save_py(path);
        return path;
    }

    internal static Dictionary<string, float[]> BackboneState(DualHeadDistillTransformer model) =>
        model.Student.Backbone.state_dict().Where(p => p.Value.is_floating_point())
            .ToDictionary(p => p.Key, p => p.Value.detach().cpu().data<float>().ToArray());

    internal static Dictionary<string, float[]> FileState(string path)
    {
        using var student = TorchVisionFixtures.Student("MobileNetV3Small", Side, seed: 1, classes: K);
        student.Backbone.LoadPyTorchWeights(path);
        return student.Backbone.state_dict().Where(p => p.Value.is_floating_point()).ToDictionary(p => p.Key, p => p.Value.detach().cpu().data<float>().ToArray());
    }

    internal static float MaxChange(Dictionary<string, float[]> a, Dictionary<string, float[]> b, Func<string, bool> which) =>
        a.Where(p => which(p.Key)).Max(p => p.Value.Zip(b[p.Key], (x, y) => Math.Abs(x - y)).DefaultIfEmpty(0).Max());

    internal static bool IsStatistic(string key) => key.EndsWith("running_mean") || key.EndsWith("running_var");

    [TestMethod]
    public void FrozenBackboneStaysAsLoadedWhileTheHeadsLearnThenTrainsAfterResume()
    {
        using var dir = new TempDir();
        string weights = WeightsFile(dir);
        DualHeadDistillOptions Frozen(int epochs) 
        {
            var o = Options(weights);
            o.FreezeBackboneEpochs = 1;
            o.BackboneLearningRateScale = 0.5f; // two AdamW groups, saved and resumed
            o.NumberOfEpochs = epochs;
            o.CheckpointPath = Path.Combine(dir.Path, "run.ckpt");
            return o;
        }
        var data = Data();
        var loaded = FileState(weights);
        using (var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Frozen(1)).Fit(data))
        {
            Assert.AreEqual(0f, MaxChange(BackboneState(model), loaded, _ => true), "a frozen backbone, BatchNorm statistics included, is exactly the file's");
            Assert.IsTrue(model.Student.Backbone.parameters().All(p => p.requires_grad), "parameters learn again after Fit");
            var report = model.TrainingReport;
            Assert.IsNotNull(report.BackboneWeights);
            Assert.AreEqual(model.Student.Backbone.state_dict().Count, report.BackboneWeights.LoadedTensors);
            StringAssert.Contains(report.FineTuning, "mobilenet_v3_small.pt");
            StringAssert.Contains(report.FineTuning, "backbone lr x 0.5");
            StringAssert.Contains(report.FineTuning, "backbone frozen for 1 epoch");
            CollectionAssert.AreEqual(TorchVisionBackboneDefinition.ImageNet.Mean, report.InputStatistics!.Mean.ToArray(), "the weights' ImageNet mean standardises the input");
            CollectionAssert.AreEqual(TorchVisionBackboneDefinition.ImageNet.Std, report.InputStatistics.Std.ToArray());
            using var fresh = TorchVisionFixtures.Student("MobileNetV3Small", Side, seed: 4, classes: K);
            CollectionAssert.AreNotEqual(SyntheticData.HeadWeights(fresh.CeHead), SyntheticData.HeadWeights(model.Student.CeHead), "the heads learned");
        }
        // Epoch 2, resumed from the checkpoint (two parameter groups in the optimizer state): the backbone trains.
        using var resumed = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Frozen(2)).Fit(data, DualHeadCheckpoint.Load(Path.Combine(dir.Path, "run.ckpt")));
        var after = BackboneState(resumed);
        Assert.IsTrue(MaxChange(after, loaded, k => !IsStatistic(k)) > 1e-4f, "after the frozen epoch the backbone's weights move");
        Assert.IsTrue(MaxChange(after, loaded, IsStatistic) > 1e-4f, "and its BatchNorm statistics");
    }

    [TestMethod]
    public void WithoutFreezingTheLoadedBackboneTrainsAndItsStatisticsMove()
    {
        using var dir = new TempDir();
        string weights = WeightsFile(dir);
        var loaded = FileState(weights);
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(weights)).Fit(Data());
        var after = BackboneState(model);
        Assert.IsTrue(MaxChange(after, loaded, k => !IsStatistic(k)) > 1e-4f, "the backbone's weights moved");
        Assert.IsTrue(MaxChange(after, loaded, IsStatistic) > 1e-4f, "BatchNorm statistics moved");

        var o = Options(weights);
        o.FreezeBatchNormStatistics = true;
        using var frozenStatistics = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(Data());
        var frozen = BackboneState(frozenStatistics);
        Assert.AreEqual(0f, MaxChange(frozen, loaded, IsStatistic), "FreezeBatchNormStatistics keeps the running statistics");
        Assert.IsTrue(MaxChange(frozen, loaded, k => !IsStatistic(k)) > 1e-4f, "the weights still learn");
    }

    [TestMethod]
    public void ScaledBackboneLearningRateMovesTheBackboneLess()
    {
        using var dir = new TempDir();
        string weights = WeightsFile(dir);
        var loaded = FileState(weights);
        float Change(float scale)
        {
            var o = Options(weights);
            o.BackboneLearningRateScale = scale;
            o.FreezeBatchNormStatistics = true;
            using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(Data());
            return MaxChange(BackboneState(model), loaded, k => !IsStatistic(k));
        }
        float full = Change(1f), scaled = Change(0.01f);
        Console.WriteLine($"max backbone change: lr x 1 {full:E2}, lr x 0.01 {scaled:E2}");
        Assert.IsTrue(scaled > 0, "a scaled backbone still learns");
        Assert.IsTrue(scaled < 0.05f * full, $"lr x 0.01 moved the backbone by {scaled}, lr x 1 by {full}");
    }

    [TestMethod]
    public void ResumeUnderOtherFineTuningIsRefusedNamingTheOption()
    {
        using var dir = new TempDir();
        string weights = WeightsFile(dir);
        var o = Options(weights);
        o.CheckpointPath = Path.Combine(dir.Path, "run.ckpt");
        var data = Data();
        using (s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data)) { }
        var checkpoint = DualHeadCheckpoint.Load(o.CheckpointPath);
        var other = Options(weights);
        other.NumberOfEpochs = 2;
        other.BackboneLearningRateScale = 0.1f;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(other).Fit(data, checkpoint));
        StringAssert.Contains(e.Message, "BackboneLearningRateScale");
        var same = Options(weights);
        same.NumberOfEpochs = 2;
        using var resumed = s_ml.MulticlassClassification.Trainers.DualHeadDistill(same).Fit(data, checkpoint);
        Assert.AreEqual(2, resumed.TrainingReport.Epochs.Count);
    }

    [TestMethod]
    public void MissingOrUnfittingWeightsFailTheFitNamingOptionFileAndKeys()
    {
        using var dir = new TempDir();
        var missing = Assert.ThrowsExactly<FileNotFoundException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(Options(Path.Combine(dir.Path, "none.pt"))).Fit(Data()));
        StringAssert.Contains(missing.Message, "BackboneWeights");
        StringAssert.Contains(missing.Message, "none.pt");
        // MobileNetV3 small weights for a MobileNetV2 student.
        var o = Options(WeightsFile(dir));
        o.Backbone = "MobileNetV2";
        var wrong = Assert.ThrowsExactly<InvalidDataException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(Data()));
        StringAssert.Contains(wrong.Message, "mobilenet_v3_small.pt");
        StringAssert.Contains(wrong.Message, "missing keys");
        var bad = Options(null);
        bad.BackboneLearningRateScale = 0;
        var range = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(bad));
        StringAssert.Contains(range.Message, "BackboneLearningRateScale");
    }
}
