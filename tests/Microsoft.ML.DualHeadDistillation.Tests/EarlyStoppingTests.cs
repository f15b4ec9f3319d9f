using Microsoft.ML.DualHeadDistillation.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Early stopping: it stops after Patience epochs without a better validation accuracy and keeps the best epoch's student, bit for bit.</summary>
[TestClass]
public sealed class EarlyStoppingTests
{
    private sealed class Synchronous<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    private static DualHeadDistillOptions Options()
    {
        var o = SyntheticData.MlpOptions(epochs: 10);
        o.Precision = DualHeadPrecision.Float32;
        o.LearningRate = 3e-2f; // fast to the plateau
        return o;
    }

    [TestMethod]
    public void EarlyStoppingKeepsTheBestEpochsStudentBitIdenticalToARunStoppedThere()
    {
        var ml = new MLContext(seed: 1);
        var train = SyntheticData.Load(ml, SyntheticData.Rows(60, 240));
        var validation = SyntheticData.Load(ml, SyntheticData.Rows(30, 0, seed: 11));
        var o = Options();
        o.EarlyStoppingPatience = 2;
        using var stopped = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(train, validation);
        var report = stopped.TrainingReport;
        Assert.IsNotNull(report.BestEpoch);
        Assert.IsNotNull(report.StoppedAfterEpoch, $"training stopped early (validation: {string.Join(", ", report.Epochs.Select(e => e.ValidationAccuracy))})");
        int best = report.BestEpoch.Value;
        Assert.AreEqual(best + 2, report.StoppedAfterEpoch, "two epochs without improvement");
        Assert.AreEqual(report.StoppedAfterEpoch, report.Epochs.Count);
        var accuracies = report.Epochs.Select(e => e.ValidationAccuracy!.Value).ToArray();
        Assert.AreEqual(accuracies.Max(), accuracies[best - 1], "the kept epoch has the best validation accuracy");
        Assert.AreEqual(best, Array.IndexOf(accuracies, accuracies.Max()) + 1, "the first epoch with it");

        // The same run without early stopping, stopped after that epoch: its checkpoint is the kept student.
        using var dir = new TempDir();
        using var cancel = new CancellationTokenSource();
        var plain = Options();
        plain.CheckpointPath = Path.Combine(dir.Path, "run.ckpt");
        plain.CancellationToken = cancel.Token;
        plain.Progress = new Synchronous<DualHeadEpochReport>(e => { if (e.Epoch == best) cancel.Cancel(); });
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(plain).Fit(train, validation));
        var checkpoint = DualHeadCheckpoint.Load(plain.CheckpointPath);
        Assert.AreEqual(best, checkpoint.CompletedEpochs);
        using var there = checkpoint.CreateStudent(CPU, "test");
        var kept = stopped.Student.state_dict();
        foreach (var (name, value) in there.state_dict())
            CollectionAssert.AreEqual(value.cpu().data<float>().ToArray(), kept[name].cpu().data<float>().ToArray(), $"{name} is the best epoch's, bit for bit");
    }

    [TestMethod]
    public void EarlyStoppingNeedsValidationDataAndAPatienceOfAtLeastOne()
    {
        var ml = new MLContext(seed: 1);
        var train = SyntheticData.Load(ml, SyntheticData.Rows(30, 60));
        var o = Options();
        o.EarlyStoppingPatience = 2;
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(train));
        Assert.AreEqual(nameof(DualHeadDistillOptions.EarlyStoppingPatience), e.ParamName);
        StringAssert.Contains(e.Message, "ValidationData");
        o.EarlyStoppingPatience = -1;
        var negative = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(train));
        Assert.AreEqual(nameof(DualHeadDistillOptions.EarlyStoppingPatience), negative.ParamName);
    }
}
