using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Issue 9, point 6: validation labels are matched to the training classes by key value (name).</summary>
[TestClass]
public sealed class ValidationLabelTests
{
    /// <summary>Validation rows keyed by their own MapValueToKey: keys in order of first appearance.</summary>
    private static IDataView OwnKeys(MLContext ml, IEnumerable<SyntheticData.Row> rows)
    {
        var data = ml.Data.LoadFromEnumerable(rows);
        return ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
    }

    private static string[] KeyNames(IDataView data)
    {
        VBuffer<ReadOnlyMemory<char>> names = default;
        data.Schema["Label"].GetKeyValues(ref names);
        return names.DenseValues().Select(v => v.ToString()).ToArray();
    }

    [TestMethod]
    public void ValidationKeyedInAnotherOrderGivesTheSameAlphaBetaAndAccuracy()
    {
        var ml = new MLContext(seed: 1);
        var train = SyntheticData.Load(ml, SyntheticData.Rows(30, 240));
        var rows = SyntheticData.Rows(60, 0, seed: 11);
        rows.Reverse(); // "bird" first: its own keys are bird, dog, cat
        var sameKeys = SyntheticData.Load(ml, rows);
        var ownKeys = OwnKeys(ml, rows);
        CollectionAssert.AreEqual(new[] { "bird", "dog", "cat" }, KeyNames(ownKeys));

        DualHeadDistillTransformer Fit(IDataView validation)
        {
            var options = SyntheticData.MlpOptions(epochs: 2);
            options.ValidationData = validation;
            return ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(train);
        }
        using var a = Fit(sameKeys);
        using var b = Fit(ownKeys);
        var sa = a.TrainingReport.AlphaBeta!;
        var sb = b.TrainingReport.AlphaBeta!;
        Console.WriteLine($"training keys: {sa}; own keys: {sb}");
        Assert.AreEqual(sa.Accuracy, sb.Accuracy);
        Assert.AreEqual(sa.Alpha, sb.Alpha);
        Assert.AreEqual(sa.Beta, sb.Beta);
        CollectionAssert.AreEqual(sa.Grid.Select(p => p.Accuracy).ToArray(), sb.Grid.Select(p => p.Accuracy).ToArray());
        CollectionAssert.AreEqual(a.TrainingReport.Epochs.Select(e => e.ValidationAccuracy).ToArray(), b.TrainingReport.Epochs.Select(e => e.ValidationAccuracy).ToArray());

        // TuneAlphaBeta reads the validation keys the same way.
        var ta = a.TuneAlphaBeta(sameKeys);
        var tb = a.TuneAlphaBeta(ownKeys);
        Assert.AreEqual(ta.Accuracy, tb.Accuracy);
        Assert.AreEqual((ta.Alpha, ta.Beta), (tb.Alpha, tb.Beta));
    }

    [TestMethod]
    public void ValidationSubsetOfTheClassesIsRead()
    {
        var ml = new MLContext(seed: 1);
        var train = SyntheticData.Load(ml, SyntheticData.Rows(30, 120));
        var onlyDogs = SyntheticData.Rows(30, 0, seed: 5).Where(r => r.Label == "dog").ToList();
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(train);
        var search = model.TuneAlphaBeta(OwnKeys(ml, onlyDogs));
        Assert.AreEqual(onlyDogs.Count, search.ValidationRows);
    }

    [TestMethod]
    public void ValidationClassTheTrainingDataNeverHadIsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var train = SyntheticData.Load(ml, SyntheticData.Rows(30, 120));
        var rows = SyntheticData.Rows(30, 0, seed: 5);
        rows[4].Label = "fish";
        var options = SyntheticData.MlpOptions(epochs: 1);
        options.ValidationData = OwnKeys(ml, rows);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(train));
        Assert.AreEqual("ValidationData", e.ParamName);
        StringAssert.Contains(e.Message, "'fish'");
        StringAssert.Contains(e.Message, "cat, dog, bird");

        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(train);
        var t = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.TuneAlphaBeta(OwnKeys(ml, rows)));
        StringAssert.Contains(t.Message, "'fish'");
    }

    [TestMethod]
    public void ValidationRowsWithoutALabelAreReportedNotDroppedSilently()
    {
        var ml = new MLContext(seed: 1);
        var train = SyntheticData.Load(ml, SyntheticData.Rows(30, 120));
        var rows = SyntheticData.Rows(30, 0, seed: 5);
        for (int i = 0; i < 10; i++) rows[i].Label = "fish"; // the training MapValueToKey maps them to the missing key
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        var options = SyntheticData.MlpOptions(epochs: 1);
        options.ValidationData = SyntheticData.Load(ml, rows);
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(train);
        Assert.AreEqual(20, model.TrainingReport.AlphaBeta!.ValidationRows);
        Assert.AreEqual(10, model.TrainingReport.AlphaBeta.RowsWithoutLabel);
        Assert.IsTrue(model.TrainingReport.Warnings.Any(w => w.StartsWith("10 of 30 validation rows have no label")), string.Join(" | ", model.TrainingReport.Warnings));
        Assert.IsTrue(messages.Any(m => m.Contains("10 of 30 validation rows have no label")));
    }

    [TestMethod]
    public void ValidationWithoutAnyLabelFailsBeforeTraining()
    {
        var ml = new MLContext(seed: 1);
        var train = SyntheticData.Load(ml, SyntheticData.Rows(30, 120));
        int epochs = 0;
        var options = SyntheticData.MlpOptions(epochs: 2);
        options.ValidationData = SyntheticData.Load(ml, SyntheticData.Rows(0, 20, seed: 4));
        options.Progress = new Progress<DualHeadEpochReport>(_ => Interlocked.Increment(ref epochs));
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(train));
        Assert.AreEqual("ValidationData", e.ParamName);
        StringAssert.Contains(e.Message, "none with a label");
        Assert.AreEqual(0, epochs, "it must fail before training");
    }

    [TestMethod]
    public void CheckpointPathInAMissingFolderFailsBeforeTraining()
    {
        var ml = new MLContext(seed: 1);
        var options = SyntheticData.MlpOptions(epochs: 2);
        options.CheckpointPath = Path.Combine(Path.GetTempPath(), "no-such-folder-" + Guid.NewGuid().ToString("N"), "run.ckpt");
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(SyntheticData.Load(ml, SyntheticData.Rows(30, 60))));
        Assert.AreEqual("CheckpointPath", e.ParamName);
        StringAssert.Contains(e.Message, "does not exist");
    }
}
