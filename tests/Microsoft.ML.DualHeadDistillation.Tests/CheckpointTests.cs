using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Training checkpoints: round trip, resume equals an uninterrupted run, re-tuning, clear errors.</summary>
[TestClass]
public sealed class CheckpointTests
{
    private static IDataView Data(MLContext ml) => SyntheticData.Load(ml, SyntheticData.Rows(60, 240));

    [TestMethod]
    public void CheckpointRoundTripKeepsWeightsSettingsAndReport()
    {
        var ml = new MLContext(seed: 1);
        var data = Data(ml);
        using var fitted = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 2)).Fit(data);
        using var model = fitted.WithAlphaBeta(0.3f, 1.25f);
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "run.ckpt");
        model.SaveCheckpoint(path);

        var checkpoint = DualHeadCheckpoint.Load(path);
        Assert.AreEqual(2, checkpoint.CompletedEpochs);
        Assert.IsTrue(checkpoint.HasOptimizerState);
        Assert.AreEqual(0.3f, checkpoint.Alpha);
        Assert.AreEqual(1.25f, checkpoint.Beta);
        CollectionAssert.AreEqual(SyntheticData.ClassNames, checkpoint.ClassNames.ToArray());
        Assert.AreEqual("Mlp", checkpoint.Spec.Student.Backbone.Name);
        Assert.AreEqual(model.Spec, checkpoint.Spec);
        Assert.AreEqual(2, checkpoint.Report!.Epochs.Count);
        Assert.AreEqual(model.TrainingReport.Epochs[1].TotalLoss, checkpoint.Report.Epochs[1].TotalLoss);

        using var restored = checkpoint.ToModel();
        CollectionAssert.AreEqual(SyntheticData.Weights(model), SyntheticData.Weights(restored));
        var a = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        var b = restored.Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i]);
        Assert.AreEqual(1, Directory.GetFiles(dir.Path).Length, "no temporary file is left beside the checkpoint");
    }

    [TestMethod]
    public void ResumingAnInterruptedRunGivesTheWeightsOfAnUninterruptedRun()
    {
        var ml = new MLContext(seed: 1);
        var data = Data(ml);
        using var full = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 3)).Fit(data);

        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "run.ckpt");
        var interrupted = SyntheticData.MlpOptions(epochs: 3);
        interrupted.CheckpointPath = path;
        using var cts = new CancellationTokenSource();
        interrupted.CancellationToken = cts.Token;
        interrupted.Progress = new SyncProgress(r => { if (r.Epoch == 1) cts.Cancel(); }); // "crash" after epoch 1
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(interrupted).Fit(data));

        var checkpoint = DualHeadCheckpoint.Load(path);
        Assert.AreEqual(1, checkpoint.CompletedEpochs);
        var resumeOptions = SyntheticData.MlpOptions(epochs: 3);
        resumeOptions.Seed = null; // the checkpoint's seed is used
        using var resumed = ml.MulticlassClassification.Trainers.DualHeadDistill(resumeOptions).Fit(data, checkpoint);
        CollectionAssert.AreEqual(SyntheticData.Weights(full), SyntheticData.Weights(resumed), "resumed weights differ from the uninterrupted run");
        Assert.AreEqual(3, resumed.TrainingReport.Epochs.Count);
        Assert.AreEqual(full.TrainingReport.Epochs[2].TotalLoss, resumed.TrainingReport.Epochs[2].TotalLoss);
    }

    private sealed class SyncProgress(Action<DualHeadEpochReport> action) : IProgress<DualHeadEpochReport>
    {
        public void Report(DualHeadEpochReport value) => action(value);
    }

    private sealed class SyncStepProgress(Action<DualHeadStepReport> action) : IProgress<DualHeadStepReport>
    {
        public void Report(DualHeadStepReport value) => action(value);
    }

    [TestMethod]
    public void AStopMidEpochWritesACheckpointThatResumesToTheUninterruptedWeights()
    {
        var ml = new MLContext(seed: 1);
        var data = Data(ml);
        var steps = new List<DualHeadStepReport>();
        var fullOptions = SyntheticData.MlpOptions(epochs: 3);
        fullOptions.StepProgress = new SyncStepProgress(steps.Add);
        using var full = ml.MulticlassClassification.Trainers.DualHeadDistill(fullOptions).Fit(data);
        int perEpoch = steps[0].StepsPerEpoch;
        Assert.IsTrue(perEpoch >= 4, $"{perEpoch} steps per epoch");
        Assert.AreEqual(3 * perEpoch, steps.Count, "one step report per step");
        Assert.AreEqual(steps.Count, steps[^1].GlobalStep);
        Assert.AreEqual(full.TrainingReport.Epochs[0].CeLoss, steps.Take(perEpoch).Average(r => r.CeLoss), 1e-9, "step reports add up to the epoch's");

        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "run.ckpt");
        var interrupted = SyntheticData.MlpOptions(epochs: 3);
        interrupted.CheckpointPath = path;
        using var cts = new CancellationTokenSource();
        interrupted.CancellationToken = cts.Token;
        interrupted.StepProgress = new SyncStepProgress(r => { if (r.Epoch == 2 && r.Step == 3) cts.Cancel(); }); // Ctrl+C in epoch 2
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(interrupted).Fit(data));

        var checkpoint = DualHeadCheckpoint.Load(path);
        Assert.AreEqual(1, checkpoint.CompletedEpochs);
        Assert.AreEqual(3, checkpoint.StepsIntoEpoch);
        Assert.AreEqual(perEpoch + 3, checkpoint.CompletedSteps);
        var resumeOptions = SyntheticData.MlpOptions(epochs: 3);
        resumeOptions.Seed = null;
        using var resumed = ml.MulticlassClassification.Trainers.DualHeadDistill(resumeOptions).Fit(data, checkpoint);
        CollectionAssert.AreEqual(SyntheticData.Weights(full), SyntheticData.Weights(resumed), "weights resumed mid-epoch differ from the uninterrupted run");
        Assert.AreEqual(3, resumed.TrainingReport.Epochs.Count);
        for (int e = 0; e < 3; e++)
            Assert.AreEqual(full.TrainingReport.Epochs[e].TotalLoss, resumed.TrainingReport.Epochs[e].TotalLoss, 1e-12, $"epoch {e + 1} mean loss");

        // Stopped after an epoch's last step (before its validation and epoch checkpoint): the whole epoch is kept.
        string late = Path.Combine(dir.Path, "late.ckpt");
        var atTheEnd = SyntheticData.MlpOptions(epochs: 3);
        atTheEnd.CheckpointPath = late;
        using var cts2 = new CancellationTokenSource();
        atTheEnd.CancellationToken = cts2.Token;
        atTheEnd.StepProgress = new SyncStepProgress(r => { if (r.Epoch == 2 && r.Step == r.StepsPerEpoch) cts2.Cancel(); });
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(atTheEnd).Fit(data));
        var lateCheckpoint = DualHeadCheckpoint.Load(late);
        Assert.AreEqual(1, lateCheckpoint.CompletedEpochs);
        Assert.AreEqual(perEpoch, lateCheckpoint.StepsIntoEpoch, "every step of epoch 2");
        var again = SyntheticData.MlpOptions(epochs: 3);
        again.Seed = null;
        using var resumedLate = ml.MulticlassClassification.Trainers.DualHeadDistill(again).Fit(data, lateCheckpoint);
        CollectionAssert.AreEqual(SyntheticData.Weights(full), SyntheticData.Weights(resumedLate));
        Assert.AreEqual(full.TrainingReport.Epochs[1].TotalLoss, resumedLate.TrainingReport.Epochs[1].TotalLoss, 1e-12);
    }

    [TestMethod]
    public void AlphaAndBetaCanBeReTunedFromACheckpoint()
    {
        var ml = new MLContext(seed: 1);
        var data = Data(ml);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 2)).Fit(data);
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "run.ckpt");
        model.SaveCheckpoint(path);
        using var restored = DualHeadCheckpoint.Load(path).ToModel();
        var validation = SyntheticData.Load(ml, SyntheticData.Rows(90, 0, seed: 11));
        var search = restored.TuneAlphaBeta(validation);
        using var tuned = restored.WithAlphaBeta(search.Alpha, search.Beta);
        Assert.AreEqual(search.Accuracy, ml.MulticlassClassification.Evaluate(tuned.Transform(validation)).MicroAccuracy, 1e-9);
    }

    [TestMethod]
    public void ResumeChecksArchitectureAndEpochs()
    {
        var ml = new MLContext(seed: 1);
        var data = Data(ml);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 2)).Fit(data);
        var checkpoint = model.ToCheckpoint();
        var wider = SyntheticData.MlpOptions(epochs: 4);
        wider.EmbeddingSize = 32;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(wider).Fit(data, checkpoint));
        Assert.AreEqual("EmbeddingSize", e.ParamName);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 2)).Fit(data, checkpoint));
        Assert.AreEqual("NumberOfEpochs", e.ParamName);
        using var more = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 3)).Fit(data, checkpoint);
        Assert.AreEqual(3, more.TrainingReport.Epochs.Count);
    }

    [TestMethod]
    public void TruncatedOrForeignCheckpointFilesGiveClearErrors()
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(Data(ml));
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "run.ckpt");
        model.SaveCheckpoint(path);
        var bytes = File.ReadAllBytes(path);

        string truncated = Path.Combine(dir.Path, "truncated.ckpt");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length * 2 / 3)]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadCheckpoint.Load(truncated));
        StringAssert.Contains(e.Message, truncated);

        string text = Path.Combine(dir.Path, "notes.txt");
        File.WriteAllText(text, "not a checkpoint");
        e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadCheckpoint.Load(text));
        StringAssert.Contains(e.Message, text);

        // A valid zip whose weights do not fit the recorded architecture: first caught by the checksums, then,
        // with checksums that match the new bytes, by the architecture check.
        string mismatched = Path.Combine(dir.Path, "mismatched.ckpt");
        File.Copy(path, mismatched);
        using (var zip = System.IO.Compression.ZipFile.Open(mismatched, System.IO.Compression.ZipArchiveMode.Update))
        {
            zip.GetEntry("student.bin")!.Delete();
            using var s = zip.CreateEntry("student.bin").Open();
            s.Write(bytes.AsSpan(0, 100));
        }
        e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadCheckpoint.Load(mismatched));
        StringAssert.Contains(e.Message, "SHA-256 of entry 'student.bin'");
        using (var zip = System.IO.Compression.ZipFile.Open(mismatched, System.IO.Compression.ZipArchiveMode.Update))
        {
            Dictionary<string, string> sums;
            using (var s = zip.GetEntry("checksums.json")!.Open()) sums = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(s)!;
            sums["student.bin"] = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes.AsSpan(0, 100))).ToLowerInvariant();
            zip.GetEntry("checksums.json")!.Delete();
            using var w = zip.CreateEntry("checksums.json").Open();
            System.Text.Json.JsonSerializer.Serialize(w, sums);
        }
        e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadCheckpoint.Load(mismatched));
        StringAssert.Contains(e.Message, "weights");

        Assert.ThrowsExactly<FileNotFoundException>(() => DualHeadCheckpoint.Load(Path.Combine(dir.Path, "missing.ckpt")));
    }

    [TestMethod]
    public void LoadingACheckpointLeavesTorchSharpsGlobalGeneratorAlone()
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(Data(ml));
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "run.ckpt");
        model.SaveCheckpoint(path);
        static float[] Draw()
        {
            using var t = TorchSharp.torch.rand(4);
            return t.data<float>().ToArray();
        }
        TorchSharp.torch.random.manual_seed(42);
        var expected = Draw();
        TorchSharp.torch.random.manual_seed(42);
        using (var restored = DualHeadCheckpoint.Load(path).ToModel()) { }
        CollectionAssert.AreEqual(expected, Draw(), "restoring weights must not consume or reseed the global generator");
    }
}
