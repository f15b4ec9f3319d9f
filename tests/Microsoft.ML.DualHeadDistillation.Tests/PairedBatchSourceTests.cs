namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The Paired source's one setting, max_steps, and its refusal of others.</summary>
[TestClass]
public sealed class PairedBatchSourceTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    [TestMethod]
    public void MaxStepsCapsAnEpochAndResumesConsistently()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 300));
        var o = SyntheticData.MlpOptions(epochs: 3);
        o.LabeledBatchSize = 8;
        o.UnlabeledBatchSize = 8;
        o.BatchSourceSettings = new() { ["max_steps"] = "5" };
        using var capped = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        Assert.AreEqual(15, capped.TrainingReport.TotalSteps, "3 epochs x 5 steps (of 38 possible)");
        Assert.IsTrue(capped.TrainingReport.Epochs.All(e => e.Steps == 5));

        // Interrupted after epoch 1 and resumed: the weights of the uninterrupted capped run.
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "capped.ckpt");
        var interrupted = SyntheticData.MlpOptions(epochs: 3);
        interrupted.LabeledBatchSize = interrupted.UnlabeledBatchSize = 8;
        interrupted.BatchSourceSettings = new() { ["max_steps"] = "5" };
        interrupted.CheckpointPath = path;
        using var cts = new CancellationTokenSource();
        interrupted.CancellationToken = cts.Token;
        interrupted.Progress = new SyncProgress(r => { if (r.Epoch == 1) cts.Cancel(); });
        Assert.ThrowsExactly<OperationCanceledException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(interrupted).Fit(data));
        var resume = SyntheticData.MlpOptions(epochs: 3);
        resume.LabeledBatchSize = resume.UnlabeledBatchSize = 8;
        resume.BatchSourceSettings = new() { ["max_steps"] = "5" };
        using var resumed = s_ml.MulticlassClassification.Trainers.DualHeadDistill(resume).Fit(data, DualHeadCheckpoint.Load(path));
        CollectionAssert.AreEqual(SyntheticData.Weights(capped), SyntheticData.Weights(resumed));

        // Resuming without the cap is another spec, named.
        var uncapped = SyntheticData.MlpOptions(epochs: 3);
        uncapped.LabeledBatchSize = uncapped.UnlabeledBatchSize = 8;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(uncapped).Fit(data, DualHeadCheckpoint.Load(path)));
        Assert.AreEqual("BatchSourceSettings", e.ParamName);
    }

    [TestMethod]
    public void OtherSettingsAreRefused()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 30));
        foreach (var (key, value, expected) in new[] { ("max_step", "5", "no setting 'max_step'"), ("max_steps", "0", "at least 1"), ("max_steps", "x", "expected an integer") })
        {
            var o = SyntheticData.MlpOptions(epochs: 1);
            o.BatchSourceSettings = new() { [key] = value };
            var e = Assert.Throws<ArgumentException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data));
            StringAssert.Contains(e.Message, expected);
        }
    }

    private sealed class SyncProgress(Action<DualHeadEpochReport> action) : IProgress<DualHeadEpochReport>
    {
        public void Report(DualHeadEpochReport value) => action(value);
    }
}
