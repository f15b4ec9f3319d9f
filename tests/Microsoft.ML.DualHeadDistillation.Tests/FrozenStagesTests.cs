using System.Reflection;
using Microsoft.ML.DualHeadDistillation.Training.Recipes;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// FrozenStages on a pretrained TorchVision student (MobileNetV3 small, 3x16x16 synthetic rows): no gradient reaches the
/// frozen stages, their weights and BatchNorm statistics stay as loaded while the rest learns, and their cached outputs
/// equal a fresh forward (a cached run trains the same student as one that runs the stages at every step).
/// </summary>
[TestClass]
public sealed class FrozenStagesTests
{
    private const int Stages = 3; // features.0 (stem), features.1, features.2

    private static bool InFrozenStage(string key) => Enumerable.Range(0, Stages).Any(i => key.StartsWith($"features.{i}.", StringComparison.Ordinal));

    private static (DualHeadDistillTransformer Model, List<string> Log) Fit(string weights, bool cache, int epochs = 3)
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var o = FineTuningTests.Options(weights);
        o.Precision = DualHeadPrecision.Float32;
        o.NumberOfEpochs = epochs;
        o.FrozenStages = Stages;
        o.CacheFrozenStageOutputs = cache;
        o.PreciseBatchNormBatches = 2;
        return (ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()), log);
    }

    [TestMethod]
    public void FrozenStagesGetNoGradient()
    {
        using var student = TorchVisionFixtures.Student("MobileNetV3Small", 16, seed: 3, classes: 3);
        student.Backbone.FrozenStages = Stages;
        student.train();
        using var scope = NewDisposeScope();
        var x = rand(8, 3 * 16 * 16);
        var (ce, kd) = student.ForwardTraining(x, 4);
        (ce.sum() + kd.sum()).backward();
        var named = student.Backbone.named_parameters().ToList();
        var frozen = named.Where(p => InFrozenStage(p.name)).ToList();
        Assert.IsTrue(frozen.Count > 0);
        Assert.IsTrue(frozen.All(p => p.parameter.grad is null), "no backward runs through the frozen stages: " + string.Join(", ", frozen.Where(p => p.parameter.grad is not null).Select(p => p.name)));
        Assert.IsTrue(named.Where(p => !InFrozenStage(p.name)).All(p => p.parameter.grad is not null), "every later stage gets its gradient");
        CollectionAssert.AreEqual(new[] { "features.0", "features.1", "features.2" }, student.Backbone.StageNames.Take(Stages).ToArray());
    }

    [TestMethod]
    public void CachedOutputsEqualAFreshForwardValueForValueAndStrideForStride()
    {
        using var student = TorchVisionFixtures.Student("MobileNetV3Small", 16, seed: 3, classes: 3);
        student.Backbone.FrozenStages = Stages;
        student.eval();
        using var scope = NewDisposeScope();
        var x = rand(6, 3 * 16 * 16);
        using var cache = new FrozenStageCache(rows: 10, views: 2, Path.GetTempPath());
        int[] rows = [7, 2, 9, 0, 4, 5];
        var fresh = student.FrozenPrefix(x);
        Assert.IsFalse(cache.Holds(rows, 1));
        cache.Write(rows, 1, fresh);
        Assert.IsTrue(cache.Holds(rows, 1));
        Assert.IsFalse(cache.Holds(rows, 0), "another view is another slot");
        int[] some = [5, 7];
        var read = cache.Read(some, 1, CPU);
        CollectionAssert.AreEqual(fresh.index_select(0, tensor(new long[] { 5, 0 })).contiguous().data<float>().ToArray(), read.contiguous().data<float>().ToArray(), "rows 5 and 7 as computed");
        // Channels-last outputs (a channels-last compute copy) come back channels-last.
        var nhwc = fresh.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        using var second = new FrozenStageCache(rows: 10, views: 1, Path.GetTempPath());
        second.Write(rows, 0, nhwc);
        var back = second.Read(rows, 0, CPU);
        CollectionAssert.AreEqual(nhwc.stride(), back.stride(), "the layout of a fresh forward");
        CollectionAssert.AreEqual(fresh.contiguous().data<float>().ToArray(), back.contiguous().data<float>().ToArray());
        Assert.AreEqual(10L * fresh[0].numel() * sizeof(float), second.Bytes);
    }

    [TestMethod]
    public void FrozenStagesKeepTheirWeightsAndTheCachedRunTrainsTheSameStudent()
    {
        using var dir = new TempDir();
        string weights = FineTuningTests.WeightsFile(dir);
        var loaded = FineTuningTests.FileState(weights);
        var (cached, log) = Fit(weights, cache: true);
        using var _ = cached;
        Console.WriteLine(string.Join("\n", log.Where(l => l.Contains("frozen", StringComparison.OrdinalIgnoreCase))));
        var after = FineTuningTests.BackboneState(cached);
        Assert.AreEqual(0f, FineTuningTests.MaxChange(after, loaded, InFrozenStage), "the frozen stages, BatchNorm statistics included, are exactly the file's");
        Assert.IsTrue(FineTuningTests.MaxChange(after, loaded, k => !InFrozenStage(k) && !FineTuningTests.IsStatistic(k)) > 1e-4f, "the later stages learn");
        Assert.IsTrue(FineTuningTests.MaxChange(after, loaded, k => !InFrozenStage(k) && FineTuningTests.IsStatistic(k)) > 1e-4f, "and their statistics move (Precise BatchNorm)");
        Assert.IsTrue(cached.Student.Backbone.parameters().All(p => p.requires_grad), "parameters learn again after Fit");
        Assert.AreEqual(0, cached.Student.Backbone.FrozenStages, "the saved student runs every stage as usual");
        Assert.IsTrue(cached.TrainingReport.FrozenStageCacheBytes > 0, "inputs repeat without augmentation: the outputs were cached");
        StringAssert.Contains(cached.TrainingReport.FineTuning, "first 3 backbone stages frozen");
        var summary = log.Single(l => l.Contains("outputs cached (", StringComparison.Ordinal));
        StringAssert.Contains(summary, "72 outputs cached", "every row once");
        // 6 steps an epoch; epochs 2 and 3 read every batch back.
        StringAssert.Contains(summary, "read back 12 times");

        var (fresh, freshLog) = Fit(weights, cache: false);
        using (fresh)
        {
            Assert.IsNull(fresh.TrainingReport.FrozenStageCacheBytes);
            Assert.IsTrue(freshLog.Any(l => l.Contains("not cached (CacheFrozenStageOutputs is false)", StringComparison.Ordinal)));
            // The same student up to float rounding: the cached outputs are what the stages would have computed.
            float difference = FineTuningTests.MaxChange(FineTuningTests.BackboneState(fresh), after, _ => true);
            Console.WriteLine($"max |cached - uncached| over the backbone's state: {difference:E2}");
            Assert.IsTrue(difference < 1e-4f, $"cached and uncached runs differ by {difference}");
        }
    }

    [TestMethod]
    public void FrozenStagesAreRefusedWhereTheBackboneHasNone()
    {
        var ml = new MLContext(seed: 1);
        var o = FineTuningTests.Options(weights: null);
        o.FrozenStages = 99;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()));
        Assert.AreEqual(nameof(DualHeadDistillOptions.FrozenStages), e.ParamName);
        StringAssert.Contains(e.Message, "features.0");
        o.Backbone = DualHeadBackbone.SmallCnn;
        o.FrozenStages = 1;
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()));
        Assert.AreEqual(nameof(DualHeadDistillOptions.FrozenStages), e.ParamName);
        StringAssert.Contains(e.Message, "SmallCnn");
        o.FrozenStages = -1;
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()));
        Assert.AreEqual(nameof(DualHeadDistillOptions.FrozenStages), e.ParamName);
    }

    [TestMethod]
    public void AnImportedOnnxStudentFreezesItsStemAndFirstBlocksAndCachesThem()
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        string models = typeof(FrozenStagesTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "DnnImageModels").Value!;
        var settings = Students.Onnx.DnnImageFeaturizerResNet18.BackboneSettings(models);
        var o = new DualHeadDistillOptions
        {
            Backbone = "OnnxCnn", BackboneSettings = settings, ImageShape = [3, 32, 32], FrozenStages = 3, NumberOfEpochs = 2,
            LabeledBatchSize = 8, UnlabeledBatchSize = 8, Seed = 4, Device = DualHeadDevice.Cpu, Precision = DualHeadPrecision.Float32, PreciseBatchNormBatches = 2,
        };
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(ImageData(32));
        using var imported = Students.Onnx.OnnxCnnNetwork.Import(settings["model"], swapInputChannels: true);
        var trained = model.Student.Backbone.state_dict();
        var frozenNames = imported.StageModules(3).SelectMany(m => m.named_parameters().Select(p => p.name)).ToList();
        Assert.IsTrue(frozenNames.Count > 0);
        float Change(Func<string, bool> which) => imported.state_dict().Where(p => which(p.Key) && p.Value.is_floating_point())
            .Max(p => (trained["network." + p.Key] - p.Value).abs().max().item<float>());
        var frozenKeys = imported.named_modules().Where(m => imported.StageModules(3).Contains(m.module)).SelectMany(m => m.module.state_dict().Keys.Select(k => $"{m.name}.{k}")).ToHashSet();
        Assert.AreEqual(0f, Change(frozenKeys.Contains), "the stem and the first two blocks are exactly the graph's, BatchNorm statistics included");
        Assert.IsTrue(Change(k => !frozenKeys.Contains(k)) > 1e-4f, "the later blocks learn");
        Assert.IsTrue(model.TrainingReport.FrozenStageCacheBytes > 0);
        Assert.IsFalse(log.Any(l => l.Contains("seeded random weights", StringComparison.Ordinal)), "an imported graph starts pretrained: no warning");
    }

    private static IDataView ImageData(int side)
    {
        var ml = new MLContext(seed: 1);
        int d = 3 * side * side;
        var r = new Random(5);
        var rows = Enumerable.Range(0, 48).Select(i =>
        {
            int c = i % 3;
            var x = new float[d];
            for (int j = 0; j < d; j++) x[j] = (float)r.NextDouble() * 0.5f + (j / (side * side) == c ? 0.4f : 0f);
            return new ImageRow { Label = i < 16 ? SyntheticData.ClassNames[c] : "", Features = x, TeacherLogits = Enumerable.Range(0, 3).Select(k => k == c ? 3f : 0f).ToArray() };
        }).ToList();
        var schema = Microsoft.ML.Data.SchemaDefinition.Create(typeof(ImageRow));
        schema[nameof(ImageRow.Features)].ColumnType = new Microsoft.ML.Data.VectorDataViewType(Microsoft.ML.Data.NumberDataViewType.Single, d);
        var data = ml.Data.LoadFromEnumerable(rows, schema);
        var keys = ml.Data.LoadFromEnumerable(SyntheticData.ClassNames.Take(3).Select(n => new KeyRow { Label = n }));
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys).Fit(data).Transform(data);
    }

    private sealed class ImageRow
    {
        public string Label { get; set; } = "";
        [Microsoft.ML.Data.VectorType] public float[] Features { get; set; } = [];
        [Microsoft.ML.Data.VectorType(3)] public float[] TeacherLogits { get; set; } = [];
    }

    private sealed class KeyRow { public string Label { get; set; } = ""; }
}
