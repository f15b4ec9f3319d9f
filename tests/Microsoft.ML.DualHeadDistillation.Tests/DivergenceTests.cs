using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Issue 9, point 1: a run that diverges stops with a clear error, and nothing with non-finite weights is written.</summary>
[TestClass]
public sealed class DivergenceTests
{
    private static DualHeadDistillTransformer Fit(MLContext ml, DualHeadDistillOptions options)
        => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(SyntheticData.Load(ml, SyntheticData.Rows(30, 240)));

    [TestMethod]
    [DataRow(1e4f, 0.01f, DisplayName = "LearningRate 1e4")]
    [DataRow(1e-3f, 1e30f, DisplayName = "WeightDecay 1e30")]
    [DataRow(3e38f, 0.01f, DisplayName = "LearningRate 3e38")]
    public void DivergedRunStopsAtTheStepAndNamesTheOptions(float learningRate, float weightDecay)
    {
        using var dir = new TempDir();
        var options = SyntheticData.MlpOptions(epochs: 3);
        options.LearningRate = learningRate;
        options.WeightDecay = weightDecay;
        options.CheckpointPath = Path.Combine(dir.Path, "run.ckpt");
        var e = Assert.ThrowsExactly<DualHeadTrainingDivergedException>(() => Fit(new MLContext(seed: 1), options));
        Console.WriteLine(e.Message);
        StringAssert.Contains(e.Message, $"diverged at step {e.Step} (epoch {e.Epoch})");
        StringAssert.Contains(e.Message, "LearningRate = ");
        StringAssert.Contains(e.Message, "CE ");
        StringAssert.Contains(e.Message, "KD ");
        if (weightDecay != 0.01f) StringAssert.Contains(e.Message, "WeightDecay = 1E+30");
        Assert.IsTrue(e.Step >= 1 && e.Step <= 15 * 3, $"step {e.Step}");
        // It stops at the first bad step: every checkpoint written before it holds finite weights.
        if (File.Exists(options.CheckpointPath))
        {
            var checkpoint = DualHeadCheckpoint.Load(options.CheckpointPath);
            Assert.IsTrue(checkpoint.CompletedEpochs < e.Epoch, "a checkpoint was written for the epoch that diverged");
        }
    }

    [TestMethod]
    public void TemperatureWhoseSquareOverflowsIsRefusedUpFront()
    {
        var options = SyntheticData.MlpOptions();
        options.Temperature = 3e38f;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MLContext().MulticlassClassification.Trainers.DualHeadDistill(options));
        Assert.AreEqual("Temperature", e.ParamName);
    }

    [TestMethod]
    public void HugeBatchSizesTrainOnTheRowsThereAre()
    {
        var options = SyntheticData.MlpOptions(epochs: 1);
        options.LabeledBatchSize = int.MaxValue;
        options.UnlabeledBatchSize = int.MaxValue;
        using var model = Fit(new MLContext(seed: 1), options);
        Assert.AreEqual(1, model.TrainingReport.TotalSteps); // one step: every labeled and every unlabeled row
    }

    [TestMethod]
    public void WritersRefuseNonFiniteWeights()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 60));
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        using (no_grad()) model.Student.CeHead.parameters().First()[0, 0].fill_(float.NaN);

        string onnx = Path.Combine(dir.Path, "m.onnx"), zip = Path.Combine(dir.Path, "m.zip"), ckpt = Path.Combine(dir.Path, "m.ckpt");
        var e1 = Assert.ThrowsExactly<InvalidOperationException>(() => model.ExportToOnnx(onnx));
        StringAssert.Contains(e1.Message, "ce_head");
        Assert.ThrowsExactly<InvalidOperationException>(() => model.ExportToOnnx(new MemoryStream()));
        Assert.ThrowsExactly<InvalidOperationException>(() => DualHeadModel.Save(ml, model, data.Schema, zip));
        Assert.ThrowsExactly<InvalidOperationException>(() => model.SaveCheckpoint(ckpt));
        Assert.AreEqual(0, Directory.GetFiles(dir.Path).Length, "nothing may be written: " + string.Join(", ", Directory.GetFiles(dir.Path)));
    }

    [TestMethod]
    public void CheckpointWithNonFiniteWeightsIsRefusedAtLoad()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 60));
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        string good = Path.Combine(dir.Path, "good.ckpt"), bad = Path.Combine(dir.Path, "bad.ckpt");
        model.SaveCheckpoint(good);
        // A checkpoint whose student.bin holds an infinity, with checksums that match it (as a buggy writer would make).
        byte[] poisoned;
        using (no_grad()) model.Student.KdHead.parameters().First()[0, 0].fill_(float.PositiveInfinity);
        using (var weights = new MemoryStream()) { model.Student.save(weights); poisoned = weights.ToArray(); }
        using (var source = System.IO.Compression.ZipFile.OpenRead(good))
        using (var target = System.IO.Compression.ZipFile.Open(bad, System.IO.Compression.ZipArchiveMode.Create))
        {
            var entries = source.Entries.ToDictionary(e => e.FullName, e => { using var s = e.Open(); using var m = new MemoryStream(); s.CopyTo(m); return m.ToArray(); });
            entries["student.bin"] = poisoned;
            var sums = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(entries["checksums.json"])!;
            sums["student.bin"] = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(poisoned)).ToLowerInvariant();
            entries["checksums.json"] = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(sums);
            foreach (var (name, bytes) in entries)
                using (var s = target.CreateEntry(name).Open()) s.Write(bytes);
        }
        var e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadCheckpoint.Load(bad));
        StringAssert.Contains(e.Message, bad);
        StringAssert.Contains(e.Message, "non-finite");
        Assert.IsNotNull(DualHeadCheckpoint.Load(good));
    }

    [TestMethod]
    public void ShortRunsWarnAndTheReportRecordsTheThreadCount()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        using var dir = new TempDir();
        var options = SyntheticData.MlpOptions(epochs: 1);
        options.CheckpointPath = Path.Combine(dir.Path, "epoch.ckpt"); // written by the training loop after the epoch
        using var model = Fit(ml, options);
        Assert.AreEqual(get_num_threads(), DualHeadCheckpoint.Load(options.CheckpointPath).Report!.IntraOpThreads);
        var report = model.TrainingReport;
        Assert.IsTrue(report.TotalSteps < 100);
        Assert.IsTrue(report.Warnings.Any(w => w.Contains("optimisation steps")), string.Join(" | ", report.Warnings));
        Assert.IsTrue(report.Warnings.Any(w => w.Contains("within the first epoch")), string.Join(" | ", report.Warnings));
        Assert.IsTrue(messages.Any(m => m.Contains("warning: this run has only")), "the warning is logged");
        Assert.AreEqual(get_num_threads(), report.IntraOpThreads);
        Assert.IsTrue(messages.Any(m => m.Contains($"({get_num_threads()} intra-op threads)")));

        string path = Path.Combine(dir.Path, "m.ckpt");
        model.SaveCheckpoint(path);
        Assert.AreEqual(get_num_threads(), DualHeadCheckpoint.Load(path).Report!.IntraOpThreads);
    }

    [TestMethod]
    public void LongEnoughRunsDoNotWarn()
    {
        var warnings = Training.DualHeadTrainingLoop.ShortRunWarnings(totalSteps: 300, stepsPerEpoch: 100, epochs: 3, warmupSteps: 0);
        Assert.AreEqual(0, warnings.Count, string.Join(" | ", warnings));
    }
}
