using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

[TestClass]
public sealed class TrainerTests
{
    private static DualHeadDistillTransformer Fit(MLContext ml, IDataView data, DualHeadDistillOptions options)
        => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data);

    [TestMethod]
    public void SameSeedGivesSameWeightsAndOtherSeedDiffers()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 120));
        using var a = Fit(ml, data, SyntheticData.MlpOptions(seed: 5));
        using var b = Fit(ml, data, SyntheticData.MlpOptions(seed: 5));
        using var c = Fit(ml, data, SyntheticData.MlpOptions(seed: 6));
        CollectionAssert.AreEqual(SyntheticData.Weights(a), SyntheticData.Weights(b));
        CollectionAssert.AreNotEqual(SyntheticData.Weights(a), SyntheticData.Weights(c));
    }

    [TestMethod]
    public void SameSeedGivesSameWeightsForTheCnn()
    {
        var ml = new MLContext(seed: 1);
        var r = new Random(2);
        var rows = SyntheticData.Rows(12, 24);
        var images = rows.Select(row => new ImageRow { Label = row.Label, Pixels = Enumerable.Range(0, 64).Select(_ => (float)r.NextDouble()).ToArray(), TeacherLogits = row.TeacherLogits }).ToList();
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(images)).Transform(ml.Data.LoadFromEnumerable(images));
        var options = new DualHeadDistillOptions { FeatureColumnName = "Pixels", Backbone = DualHeadBackbone.SmallCnn, ImageShape = [1, 8, 8], EmbeddingSize = 8, NumberOfEpochs = 1, LabeledBatchSize = 4, UnlabeledBatchSize = 8, Seed = 9 };
        using var a = Fit(ml, data, options);
        using var b = Fit(ml, data, options);
        CollectionAssert.AreEqual(SyntheticData.Weights(a), SyntheticData.Weights(b));
        Assert.AreEqual(3, a.TrainingReport.TotalSteps); // 24 unlabeled rows / 8 per step
    }

    private sealed class ImageRow
    {
        public string Label { get; set; } = "";
        [VectorType(64)] public float[] Pixels { get; set; } = [];
        [VectorType(3)] public float[] TeacherLogits { get; set; } = [];
    }

    [TestMethod]
    public void UnlabeledRowsNeverReachTheCeHead()
    {
        // With lambda = 1 only the CE term trains. If any unlabeled row reached the CE head (or the CE
        // mean), changing the unlabeled rows' features would change the weights. Input standardisation is off:
        // its statistics are those of every training row, unlabeled ones included (as the PyTorch reference does).
        var ml = new MLContext(seed: 1);
        var options = SyntheticData.MlpOptions();
        options.Lambda = 1f;
        options.InputNormalization = Specs.DualHeadInputNormalization.None;
        var original = SyntheticData.Load(ml, SyntheticData.Rows(30, 90));
        var noise = new Random(99);
        var altered = SyntheticData.Load(ml, SyntheticData.Rows(30, 90, unlabeledFeatures: _ => Enumerable.Range(0, SyntheticData.D).Select(_ => (float)(noise.NextDouble() * 20 - 10)).ToArray()));
        using var a = Fit(ml, original, options);
        using var b = Fit(ml, altered, options);
        CollectionAssert.AreEqual(SyntheticData.HeadWeights(a.Student.CeHead), SyntheticData.HeadWeights(b.Student.CeHead));
        CollectionAssert.AreEqual(SyntheticData.HeadWeights(a.Student.Backbone), SyntheticData.HeadWeights(b.Student.Backbone));

        // And with distillation on, the unlabeled rows do matter (through h_KD and the shared backbone).
        options.Lambda = 0.5f;
        using var c = Fit(ml, original, options);
        using var d = Fit(ml, altered, options);
        CollectionAssert.AreNotEqual(SyntheticData.HeadWeights(c.Student.KdHead), SyntheticData.HeadWeights(d.Student.KdHead));
    }

    [TestMethod]
    public void SchemaIsKnownBeforeFit()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(SyntheticData.Rows(3, 3));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.DualHeadDistill(backbone: DualHeadBackbone.Mlp));
        var shape = pipeline.GetOutputSchema(MLNet.SchemaShapes.FromSchema(data.Schema));
        var byName = shape.ToDictionary(c => c.Name);
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, byName["Score"].Kind);
        Assert.AreEqual(NumberDataViewType.Single, byName["Score"].ItemType);
        Assert.IsTrue(byName["Score"].Annotations.Any(a => a.Name == "SlotNames"));
        Assert.IsTrue(byName["PredictedLabel"].IsKey);
        Assert.AreEqual(SchemaShape.Column.VectorKind.Scalar, byName["PredictedLabel"].Kind);
        Assert.IsTrue(byName["PredictedLabel"].Annotations.Any(a => a.Name == "KeyValues"));
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, byName["CeHeadProbabilities"].Kind);
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, byName["KdHeadProbabilities"].Kind);
        Assert.IsTrue(byName.ContainsKey("TeacherLogits"));
    }

    [TestMethod]
    public void FittedModelWorksWithEvaluatePredictionEngineAndMapKeyToValue()
    {
        var ml = new MLContext(seed: 1);
        var raw = SyntheticData.Rows(60, 240);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.DualHeadDistill(backbone: DualHeadBackbone.Mlp, numberOfEpochs: 3, seed: 1));
        var model = pipeline.Fit(ml.Data.LoadFromEnumerable(raw));
        using var student = model.LastTransformer;
        var test = ml.Data.LoadFromEnumerable(SyntheticData.Rows(90, 0, seed: 11));
        var scored = model.Transform(test);

        // Score: K slots named after the classes (in key order).
        var score = scored.Schema["Score"];
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), score.Type);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        score.GetSlotNames(ref slots);
        var keyOrder = student.ClassNames.ToArray();
        CollectionAssert.AreEqual(keyOrder, slots.DenseValues().Select(s => s.ToString()).ToArray());
        CollectionAssert.AreEquivalent(SyntheticData.ClassNames, keyOrder);

        // ML.NET's evaluator accepts the output; the blobs are easy, so accuracy is high.
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsTrue(metrics.MicroAccuracy > 0.9, $"accuracy {metrics.MicroAccuracy}");

        // PredictedLabel carries the key values: MapKeyToValue gives back the class names.
        var named = ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel").Fit(scored).Transform(scored);
        var names = named.GetColumn<ReadOnlyMemory<char>>("PredictedName").Select(n => n.ToString()).ToArray();
        var truth = test.GetColumn<string>("Label").ToArray();
        Assert.IsTrue(names.Zip(truth).Count(p => p.First == p.Second) > 80);

        // PredictionEngine (row by row) agrees with the batched Transform.
        var withNames = model.Append(ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel").Fit(scored));
        var engine = ml.Model.CreatePredictionEngine<SyntheticData.Row, Prediction>(withNames);
        var batched = scored.GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < 10; i++)
        {
            var p = engine.Predict(SyntheticData.Rows(90, 0, seed: 11)[i]);
            for (int k = 0; k < 3; k++) Assert.AreEqual(batched[i][k], p.Score[k], 1e-5);
            Assert.AreEqual(names[i], p.PredictedName);
        }
    }

    private sealed class Prediction
    {
        public float[] Score { get; set; } = [];
        public string PredictedName { get; set; } = "";
    }

    [TestMethod]
    public void AlphaAndBetaChangeScoresWithoutRetraining()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 60));
        using var fitted = Fit(ml, data, SyntheticData.MlpOptions());
        var model = fitted;
        float[][] Column(string name) => model.Transform(data).GetColumn<float[]>(name).ToArray();

        var ce = Column("CeHeadProbabilities");
        var kdHalf = Column("KdHeadProbabilities"); // beta = 0.5 (default)
        var score = Column("Score");
        for (int i = 0; i < ce.Length; i++)
            for (int k = 0; k < 3; k++) Assert.AreEqual(0.5f * ce[i][k] + 0.5f * kdHalf[i][k], score[i][k], 1e-6);

        model = fitted.WithAlphaBeta(0.2f, 2f);
        Assert.AreEqual(0.5f, fitted.Alpha, "WithAlphaBeta leaves the model it was called on unchanged");
        var kdTwo = Column("KdHeadProbabilities");
        var score2 = Column("Score");
        CollectionAssert.AreEqual(ce[0], Column("CeHeadProbabilities")[0]);
        Assert.AreNotEqual(kdHalf[0][0], kdTwo[0][0]); // a higher beta flattens the KD head
        for (int i = 0; i < ce.Length; i++)
            for (int k = 0; k < 3; k++) Assert.AreEqual(0.2f * ce[i][k] + 0.8f * kdTwo[i][k], score2[i][k], 1e-6);

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => fitted.WithAlphaBeta(1.5f, 1f));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => fitted.WithAlphaBeta(0.5f, 0f));
    }

    [TestMethod]
    public void TeacherSlotNamesAreMatchedToLabelKeys()
    {
        var ml = new MLContext(seed: 1);
        var rows = SyntheticData.Rows(30, 60);
        var baseline = SyntheticData.Load(ml, rows);
        // The same logits, stored in another order, with slot names saying which class is where.
        string[] order = ["bird", "cat", "dog"];
        var permuted = rows.Select(r => new SyntheticData.Row { Label = r.Label, Features = r.Features, TeacherLogits = [r.TeacherLogits[2], r.TeacherLogits[0], r.TeacherLogits[1]] });
        var reordered = SyntheticData.Load(ml, permuted, teacherSlotNames: order);
        using var a = Fit(ml, baseline, SyntheticData.MlpOptions());
        using var b = Fit(ml, reordered, SyntheticData.MlpOptions());
        CollectionAssert.AreEqual(SyntheticData.Weights(a), SyntheticData.Weights(b));

        var unknown = SyntheticData.Load(ml, permuted, teacherSlotNames: ["bird", "cat", "fish"]);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Fit(ml, unknown, SyntheticData.MlpOptions()));
        StringAssert.Contains(e.Message, "'dog'");
        StringAssert.Contains(e.Message, "TeacherLogits");
    }

    [TestMethod]
    public void ProgressLogAndValidationAreReported()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { if (e.Source.StartsWith("DualHeadDistill", StringComparison.Ordinal)) messages.Add(e.Message); };
        var reports = new List<DualHeadEpochReport>();
        var options = SyntheticData.MlpOptions(epochs: 3);
        options.Progress = new SyncProgress(reports.Add);
        options.WarmupSteps = 2;
        options.LearningRate = 2e-2f;
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 60));
        var validation = SyntheticData.Load(ml, SyntheticData.Rows(60, 0, seed: 5));
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data, validation);

        Assert.AreEqual(3, reports.Count);
        Assert.IsTrue(reports.All(r => r.ValidationAccuracy is > 0.5 and <= 1), string.Join("; ", reports));
        Assert.IsTrue(reports.All(r => r.CeLoss > 0 && r.KdLoss > 0 && r.Steps == 4));
        Assert.AreEqual(Training.LearningRateSchedule.At(11, 12, 2, 2e-2), reports[^1].LearningRate, 1e-9); // last of 12 steps
        Assert.IsTrue(reports[^1].LearningRate < 0.05 * 2e-2);
        CollectionAssert.AreEqual(reports, model.TrainingReport.Epochs.ToList());
        Assert.AreEqual(1, messages.Count(m => m.Contains("L = 0.5*CE(h_CE, labeled) + 0.5*[KD(h_KD, labeled) + KD(h_KD, unlabeled)]")));
        Assert.AreEqual(3, messages.Count(m => m.Contains("epoch") && m.Contains("validation accuracy")));
        Assert.AreEqual(1, messages.Count(m => m.Contains("alpha/beta chosen on the validation data")));
        Assert.IsNotNull(model.TrainingReport.AlphaBeta);
        Assert.AreEqual(30, model.TrainingReport.LabeledRows);
        Assert.AreEqual(60, model.TrainingReport.UnlabeledRows);
    }

    private sealed class SyncProgress(Action<DualHeadEpochReport> action) : IProgress<DualHeadEpochReport>
    {
        public void Report(DualHeadEpochReport value) => action(value);
    }

    [TestMethod]
    public void CancellationStopsTrainingWithinOneBatch()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 300));
        using var cts = new CancellationTokenSource();
        var options = SyntheticData.MlpOptions(epochs: 5);
        options.CancellationToken = cts.Token;
        int epochsSeen = 0;
        options.Progress = new SyncProgress(_ => { epochsSeen++; cts.Cancel(); });
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data));
        Assert.AreEqual(1, epochsSeen); // the first step after cancellation stopped it

        cts.TryReset();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        options.Progress = null;
        options.CancellationToken = cancelled.Token;
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data));
    }

    [TestMethod]
    public void CudaRequestIsHonouredOrFailsClearly()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(9, 9));
        var options = SyntheticData.MlpOptions(epochs: 1);
        options.Device = DualHeadDevice.Cuda;
        options.FallbackToCpu = false;
        if (TorchSharp.torch.cuda.is_available())
        {
            using var gpu = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data);
            StringAssert.StartsWith(gpu.TrainingReport.Device, "cuda");
            return;
        }
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data));
        StringAssert.Contains(e.Message, "CUDA is not available");
        options.FallbackToCpu = true;
        using var cpu = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data);
        Assert.AreEqual("cpu", cpu.TrainingReport.Device);
    }

    [TestMethod]
    public void DisposedModelReleasesItsMemoryButStillScores()
    {
        // PredictionEngine disposes the model it was made from, so Dispose must not make the model unusable.
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(9, 9));
        var model = Fit(ml, data, SyntheticData.MlpOptions(epochs: 1));
        var before = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        model.Dispose();
        Assert.IsTrue(model.IsReleased);
        var after = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i]);
        model.Dispose(); // idempotent
        model.Dispose();
    }
}
