using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Issue 9, points 5 and 9: disposing a PredictionEngine breaks nothing; nothing leaks native memory.</summary>
[TestClass]
public sealed class DisposalTests
{
    public sealed class Scored
    {
        public float[] Score { get; set; } = [];
        public uint PredictedLabel { get; set; }
    }

    /// <summary>TorchSharp's per-thread count of live tensors (created and not yet disposed) — internal, read by reflection.</summary>
    internal static long LiveTensors()
    {
        var manager = typeof(TorchSharp.DisposeScopeManager).GetProperty("ThreadSingleton", BindingFlags.NonPublic | BindingFlags.Static)!.GetValue(null)!;
        var stats = (TorchSharp.ThreadDisposeScopeStatistics)manager.GetType().GetProperty("Statistics")!.GetValue(manager)!;
        return stats.ThreadTotalLiveCount;
    }

    private static void EnginesSurviveTheDisposalOfOne(MLContext ml, ITransformer model, IDataView data, List<SyntheticData.Row> rows)
    {
        var expected = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        var engines = Enumerable.Range(0, 3).Select(_ => ml.Model.CreatePredictionEngine<SyntheticData.Row, Scored>(model)).ToArray();
        for (int e = 0; e < 3; e++) CollectionAssert.AreEqual(expected[e], engines[e].Predict(rows[e]).Score);

        var pending = model.Transform(data); // a view made before, read after the disposal
        using var open = model.Transform(data).GetRowCursor(model.Transform(data).Schema); // a cursor opened before
        engines[0].Dispose(); // ML.NET disposes the model it was created from (OwnsTransformer = true)
        var fromPending = pending.GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], fromPending[i], $"view made before, row {i}");
        var scoreGetter = open.GetGetter<VBuffer<float>>(open.Schema["Score"]);
        VBuffer<float> first = default;
        Assert.IsTrue(open.MoveNext());
        scoreGetter(ref first);
        CollectionAssert.AreEqual(expected[0], first.DenseValues().ToArray(), "cursor opened before");
        for (int i = 0; i < 6; i++)
        {
            CollectionAssert.AreEqual(expected[i], engines[1].Predict(rows[i]).Score, $"engine 1, row {i}");
            CollectionAssert.AreEqual(expected[i], engines[2].Predict(rows[i]).Score, $"engine 2, row {i}");
        }
        var after = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], after[i], $"Transform, row {i}");
        engines[1].Dispose();
        CollectionAssert.AreEqual(expected[3], engines[2].Predict(rows[3]).Score);
        using var fresh = ml.Model.CreatePredictionEngine<SyntheticData.Row, Scored>(model);
        CollectionAssert.AreEqual(expected[4], fresh.Predict(rows[4]).Score);
        engines[2].Dispose();
    }

    [TestMethod]
    public void DisposingOnePredictionEngineLeavesTheFittedModelAndTheOtherEnginesWorking()
    {
        var ml = new MLContext(seed: 1);
        var rows = SyntheticData.Rows(30, 60);
        var data = SyntheticData.Load(ml, rows);
        var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        EnginesSurviveTheDisposalOfOne(ml, model, data, rows);
        model.Dispose();
        Assert.IsTrue(model.IsReleased);
        model.Dispose(); // idempotent, never throws
    }

    [TestMethod]
    public void DisposingOnePredictionEngineLeavesTheLoadedModelAndTheOtherEnginesWorking()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var rows = SyntheticData.Rows(30, 60);
        var data = SyntheticData.Load(ml, rows);
        using (var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data))
            DualHeadModel.Save(ml, model, data.Schema, Path.Combine(dir.Path, "model.zip"));
        var fresh = new MLContext();
        var loaded = DualHeadModel.Load(fresh, Path.Combine(dir.Path, "model.zip"), out _);
        EnginesSurviveTheDisposalOfOne(fresh, loaded, data, rows);
        ((IDisposable)loaded).Dispose();
        // A loaded (and disposed) model saves again, and the copy loads and scores the same.
        string copy = Path.Combine(dir.Path, "copy.zip");
        DualHeadModel.Save(fresh, loaded, data.Schema, copy);
        var a = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
        var b = DualHeadModel.Load(new MLContext(), copy, out _).Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i]);
    }

    /// <summary>One thread predicts while another creates and disposes engines on the same model (each disposal disposes the model).</summary>
    private static void PredictingWhileAnotherThreadDisposesEngines(MLContext ml, ITransformer model, IDataView data, List<SyntheticData.Row> rows)
    {
        var expected = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        using var stop = new CancellationTokenSource();
        int disposals = 0;
        var disposer = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var engine = ml.Model.CreatePredictionEngine<SyntheticData.Row, Scored>(model);
                engine.Predict(rows[0]);
                Interlocked.Increment(ref disposals);
            }
        });
        var predictor = ml.Model.CreatePredictionEngine<SyntheticData.Row, Scored>(model, new PredictionEngineOptions { OwnsTransformer = false });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int predictions = 0;
        try
        {
            while (watch.Elapsed < TimeSpan.FromSeconds(2) || disposals < 20)
            {
                int i = predictions++ % rows.Count;
                var rowCopy = new SyntheticData.Row { Label = "", Features = (float[])rows[i].Features.Clone(), TeacherLogits = rows[i].TeacherLogits };
                CollectionAssert.AreEqual(expected[i], predictor.Predict(rowCopy).Score, $"prediction {predictions}");
            }
        }
        finally
        {
            stop.Cancel();
            disposer.Wait();
        }
        Console.WriteLine($"{predictions} predictions while {disposals} engines were created and disposed on another thread");
    }

    [TestMethod]
    public void PredictingWhileAnotherThreadDisposesEnginesOfTheSameModel()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var rows = SyntheticData.Rows(30, 60);
        var data = SyntheticData.Load(ml, rows);
        var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        PredictingWhileAnotherThreadDisposesEngines(ml, model, data, rows);
        DualHeadModel.Save(ml, model, data.Schema, Path.Combine(dir.Path, "model.zip"));
        model.Dispose();
        var fresh = new MLContext();
        PredictingWhileAnotherThreadDisposesEngines(fresh, DualHeadModel.Load(fresh, Path.Combine(dir.Path, "model.zip"), out _), data, rows);
    }

    [TestMethod]
    public void FourThreadsScoringOneModelGetTheSameScores()
    {
        var ml = new MLContext(seed: 1);
        var rows = SyntheticData.Rows(30, 600);
        var data = SyntheticData.Load(ml, rows);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        var expected = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        var results = Enumerable.Range(0, 4).AsParallel().WithDegreeOfParallelism(4)
            .Select(_ => Enumerable.Range(0, 5).Select(__ => model.Transform(data).GetColumn<float[]>("Score").ToArray()).ToList()).ToList();
        foreach (var run in results.SelectMany(r => r))
            for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], run[i], $"row {i}");
    }

    [TestMethod]
    public void DisposedModelReleasesItsNativeMemoryAndRebuildsItOnUse()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 60));
        ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data).Dispose(); // warm-up
        long before = LiveTensors();
        var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        var expected = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        float[] weights;
        using (TorchSharp.torch.NewDisposeScope()) weights = SyntheticData.Weights(model);
        model.Dispose();
        Assert.AreEqual(before, LiveTensors(), "Dispose releases the student's tensors");
        Assert.IsTrue(model.IsReleased);
        var again = model.Transform(data).GetColumn<float[]>("Score").ToArray(); // scores from the kept graph
        for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], again[i]);
        Assert.AreEqual(before, LiveTensors(), "scoring a released model needs no TorchSharp tensors");
        using (TorchSharp.torch.NewDisposeScope())
            CollectionAssert.AreEqual(weights, SyntheticData.Weights(model)); // the student comes back with its weights
        model.Dispose();
        Assert.AreEqual(before, LiveTensors());
    }

    [TestMethod]
    public void TwentyFitCheckpointLoadDisposeLoopsLeaveNoLiveTensors()
    {
        var ml = new MLContext(seed: 1);
        var r = new Random(2);
        var images = SyntheticData.Rows(12, 24).Select(row => new ImageRow { Label = row.Label, Pixels = Enumerable.Range(0, 64).Select(_ => (float)r.NextDouble()).ToArray(), TeacherLogits = row.TeacherLogits }).ToList();
        var raw = ml.Data.LoadFromEnumerable(images);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw);
        var options = new DualHeadDistillOptions { FeatureColumnName = "Pixels", Backbone = DualHeadBackbone.SmallCnn, ImageShape = [1, 8, 8], EmbeddingSize = 8, NumberOfEpochs = 1, LabeledBatchSize = 4, UnlabeledBatchSize = 8, Seed = 9 };
        void Loop()
        {
            using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data);
            _ = model.Transform(data).GetColumn<float[]>("Score").ToArray();
            using var buffer = new MemoryStream();
            model.ToCheckpoint().Save(buffer);
            buffer.Position = 0;
            using var restored = DualHeadCheckpoint.Load(buffer).ToModel();
            _ = restored.Transform(data).GetColumn<float[]>("Score").ToArray();
        }
        Loop(); // warm-up
        long before = LiveTensors();
        for (int i = 0; i < 20; i++) Loop();
        long after = LiveTensors();
        Console.WriteLine($"live tensors before {before}, after 20 loops {after}");
        Assert.AreEqual(before, after);
    }

    [TestMethod]
    [DataRow("Mlp")]
    [DataRow("SmallCnn")]
    public void BuildingAndDisposingAStudentLeavesNoLiveTensors(string backbone)
    {
        var options = new DualHeadDistillOptions { Backbone = backbone, ImageShape = [1, 8, 8], EmbeddingSize = 8 };
        var spec = Specs.RunSpecs.Resolve(options, 64, 3).Spec.Student;
        Students.StudentFactory.Create(spec, 1, TorchSharp.torch.CPU).Dispose();
        long before = LiveTensors();
        for (int i = 0; i < 5; i++) Students.StudentFactory.Create(spec, 1, TorchSharp.torch.CPU).Dispose();
        Assert.AreEqual(before, LiveTensors());
    }

    private sealed class ImageRow
    {
        public string Label { get; set; } = "";
        [VectorType(64)] public float[] Pixels { get; set; } = [];
        [VectorType(3)] public float[] TeacherLogits { get; set; } = [];
    }
}
