using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Issue 9, point 10: cancellation is honoured in reading, training and the alpha/beta search, by token or MLContext.</summary>
[TestClass]
public sealed class CancellationTests
{
    [TestMethod]
    public void MLContextCancelExecutionStopsFit()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 600));
        var options = SyntheticData.MlpOptions(epochs: 50);
        int epochs = 0;
        // Internal in ML.NET 5 (AutoML and ML.NET's tooling call it to stop a trial); a trainer must honour it.
        var cancelExecution = typeof(MLContext).GetMethod("CancelExecution", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!;
        options.Progress = new SyncProgress(_ => { if (++epochs == 1) cancelExecution.Invoke(ml, null); });
        var e = Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data));
        StringAssert.Contains(e.Message, "CancelExecution");
        Assert.AreEqual(1, epochs, "training went on after CancelExecution");
    }

    [TestMethod]
    public void CancellingDuringTheLastEpochStopsBeforeTheSearchReturnsAModel()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 120));
        using var cts = new CancellationTokenSource();
        var options = SyntheticData.MlpOptions(epochs: 1);
        options.ValidationData = SyntheticData.Load(ml, SyntheticData.Rows(300, 0, seed: 4));
        options.CancellationToken = cts.Token;
        options.Progress = new SyncProgress(_ => cts.Cancel()); // the last epoch ends; the search comes next
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data));
    }

    [TestMethod]
    public void TheAlphaBetaSearchAndValidationScoringCheckTheToken()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var cancel = new Training.FitCancellation(cts.Token, null);
        var logits = new float[30];
        Assert.ThrowsExactly<OperationCanceledException>(() => Inference.AlphaBetaSearch.Run(logits, logits, new int[10], 3, [0.5f], [1f], cancel));
        var ml = new MLContext(seed: 1);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(SyntheticData.Load(ml, SyntheticData.Rows(30, 60)));
        Assert.ThrowsExactly<OperationCanceledException>(() => model.Scorer.ScoreAll(new float[10 * SyntheticData.D], 10, 4, cancel));
        Assert.ThrowsExactly<OperationCanceledException>(() => model.Scorer.Accuracy(new float[10 * SyntheticData.D], new int[10], 0.5f, 1f, 4, cancel));
    }

    [TestMethod]
    public void ReadingStopsWithinARowOfCancel()
    {
        // A key-typed label loaded directly, so no ML.NET transform reads ahead on a background thread:
        // every row the enumerable yields is a row the trainer's cursor asked for.
        var ml = new MLContext(seed: 1);
        int rowsRead = 0;
        using var cts = new CancellationTokenSource();
        var rows = SyntheticData.Rows(30, 3000).Select(r => new KeyRow { Label = (uint)(Array.IndexOf(SyntheticData.ClassNames, r.Label) + 1), Features = r.Features, TeacherLogits = r.TeacherLogits }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows.Select(r => { if (++rowsRead == 100) cts.Cancel(); return r; }));
        var options = SyntheticData.MlpOptions(epochs: 1);
        options.CancellationToken = cts.Token;
        Assert.ThrowsExactly<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data));
        Assert.IsTrue(rowsRead <= 101, $"{rowsRead} rows were read after cancelling at row 100");
    }

    private sealed class KeyRow
    {
        [Microsoft.ML.Data.KeyType(3)] public uint Label { get; set; }
        [Microsoft.ML.Data.VectorType(SyntheticData.D)] public float[] Features { get; set; } = [];
        [Microsoft.ML.Data.VectorType(SyntheticData.K)] public float[] TeacherLogits { get; set; } = [];
    }

    /// <summary>IProgress that reports synchronously on the training thread.</summary>
    private sealed class SyncProgress(Action<DualHeadEpochReport> report) : IProgress<DualHeadEpochReport>
    {
        public void Report(DualHeadEpochReport value) => report(value);
    }
}
