using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

[TestClass]
public sealed class ModesAndAlphaBetaTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    private static DualHeadDistillTransformer Fit(IDataView data, DualHeadDistillOptions options, IDataView? validation = null)
        => s_ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data, validation);

    private static DualHeadDistillOptions Options(DualHeadTrainingMode mode, int epochs = 2)
    {
        var o = SyntheticData.MlpOptions(epochs);
        o.Objective = mode;
        return o;
    }

    [TestMethod]
    public void SupervisedOnlyLearnsFromLabelsAloneWithOneHead()
    {
        var rows = SyntheticData.Rows(30, 90);
        var data = SyntheticData.Load(s_ml, rows);
        var otherTeacher = SyntheticData.Load(s_ml, rows.Select(r => new SyntheticData.Row { Label = r.Label, Features = r.Features, TeacherLogits = [5, -5, 0] }));
        using var a = Fit(data, Options(DualHeadTrainingMode.SupervisedOnly));
        using var b = Fit(otherTeacher, Options(DualHeadTrainingMode.SupervisedOnly));
        CollectionAssert.AreEqual(SyntheticData.Weights(a), SyntheticData.Weights(b));

        // No teacher column at all is fine in this mode.
        var noTeacher = s_ml.Transforms.DropColumns("TeacherLogits").Fit(data).Transform(data);
        using var c = Fit(noTeacher, Options(DualHeadTrainingMode.SupervisedOnly));
        CollectionAssert.AreEqual(SyntheticData.Weights(a), SyntheticData.Weights(c));

        using var dual = Fit(data, Options(DualHeadTrainingMode.DualHead));
        Assert.AreEqual(DualHeadTrainingMode.SupervisedOnly, a.Objective);
        Assert.AreEqual("L = CE(h, labeled) (one head, labels only)", a.TrainingReport.Objective);
        Assert.AreEqual(dual.StudentParameters - (16 * 3 + 3), a.StudentParameters); // one 16 -> 3 head fewer
        Assert.AreEqual(dual.TrainingReport.TotalSteps, a.TrainingReport.TotalSteps);
        Assert.IsTrue(a.TrainingReport.Epochs.All(e => double.IsNaN(e.KdLoss)));
        Assert.AreEqual(1f, a.Alpha);
        Assert.ThrowsExactly<InvalidOperationException>(() => a.WithAlphaBeta(0.5f, 1f));
        var scored = a.Transform(data);
        var score = scored.GetColumn<float[]>("Score").ToArray();
        var ce = scored.GetColumn<float[]>("CeHeadProbabilities").ToArray();
        for (int i = 0; i < score.Length; i++) CollectionAssert.AreEqual(ce[i], score[i]);
    }

    [TestMethod]
    public void SingleHeadKdTrainsOneHeadOnBothTerms()
    {
        var rows = SyntheticData.Rows(30, 90);
        var data = SyntheticData.Load(s_ml, rows);
        var otherTeacher = SyntheticData.Load(s_ml, rows.Select(r => new SyntheticData.Row { Label = r.Label, Features = r.Features, TeacherLogits = [5, -5, 0] }));
        using var a = Fit(data, Options(DualHeadTrainingMode.SingleHeadKd));
        using var b = Fit(otherTeacher, Options(DualHeadTrainingMode.SingleHeadKd));
        CollectionAssert.AreNotEqual(SyntheticData.Weights(a), SyntheticData.Weights(b)); // the teacher matters
        Assert.AreEqual(DualHeadTrainingMode.SingleHeadKd, a.Objective);
        StringAssert.StartsWith(a.TrainingReport.Objective, "L = 0.5*CE(h, labeled) + 0.5*[KD(h, labeled) + KD(h, unlabeled)]");
        Assert.IsFalse(a.Student.HasTwoHeads);
        Assert.IsTrue(a.TrainingReport.Epochs.All(e => e.KdLoss > 0 && e.CeLoss > 0));
        Assert.ThrowsExactly<InvalidOperationException>(() => a.TuneAlphaBeta(data));
    }

    [TestMethod]
    public void AlphaBetaSearchKeepsTheBestGridPointBeyondTheNoiseAndSetsIt()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 90));
        var validation = SyntheticData.Load(s_ml, SyntheticData.Rows(60, 0, seed: 21));
        var options = Options(DualHeadTrainingMode.DualHead, epochs: 1);
        options.LearningRate = 3e-3f;
        using var model = Fit(data, options, validation);
        var search = model.TrainingReport.AlphaBeta!;
        Assert.AreEqual(21 * 7, search.Grid.Count);
        Assert.AreEqual(search.Grid.Max(p => p.Accuracy), search.Best.Accuracy);
        Assert.AreEqual(search.Grid.First(p => p.Accuracy == search.Best.Accuracy), search.Best); // first best in grid order
        // Kept: the best when it leads the reference by more than the noise, else the reference.
        var kept = search.Best.Accuracy - search.Reference.Accuracy > search.RequiredLead ? search.Best : search.Reference;
        Assert.AreEqual((kept.Alpha, kept.Beta, kept.Accuracy), (search.Alpha, search.Beta, search.Accuracy), search.Reason);
        Assert.AreEqual(search.Alpha, model.Alpha);
        Assert.AreEqual(search.Beta, model.Beta);
        Assert.AreEqual(60, search.ValidationRows);
        // The search's accuracy is what ML.NET's evaluator measures with those settings.
        Assert.AreEqual(search.Accuracy, s_ml.MulticlassClassification.Evaluate(model.Transform(validation)).MicroAccuracy, 1e-9);
        // Every grid point is the accuracy of that alpha/beta.
        foreach (var p in search.Grid.Where((_, i) => i % 29 == 0))
        {
            using var at = model.WithAlphaBeta(p.Alpha, p.Beta);
            Assert.AreEqual(p.Accuracy, s_ml.MulticlassClassification.Evaluate(at.Transform(validation)).MicroAccuracy, 1e-9, $"alpha {p.Alpha} beta {p.Beta}");
        }

        // Re-tuning a fitted model on a new validation set, with custom grids.
        var other = SyntheticData.Load(s_ml, SyntheticData.Rows(45, 0, seed: 33));
        float alphaBefore = model.Alpha, betaBefore = model.Beta;
        var again = model.TuneAlphaBeta(other, [0f, 1f], [1f]);
        Assert.AreEqual(2, again.Grid.Count);
        Assert.AreEqual(1f, again.Best.Beta);
        Assert.IsTrue(again.Alpha == again.Best.Alpha && again.Beta == 1f || (again.Alpha, again.Beta) == (again.Reference.Alpha, again.Reference.Beta), again.Reason);
        Assert.AreEqual(alphaBefore, model.Alpha, "tuning returns the pair; the model is unchanged");
        Assert.AreEqual(betaBefore, model.Beta);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.TuneAlphaBeta(other, [2f], [1f]));

        // Turned off: alpha and beta stay as given.
        options.AutoAlphaBeta = false;
        using var fixedModel = Fit(data, options, validation);
        Assert.IsNull(fixedModel.TrainingReport.AlphaBeta);
        Assert.AreEqual(0.5f, fixedModel.Alpha);
    }

    [TestMethod]
    public void GradientConflictDiagnosticIsReportedAndDoesNotChangeTraining()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 90));
        var plain = Options(DualHeadTrainingMode.DualHead);
        var measured = Options(DualHeadTrainingMode.DualHead);
        measured.GradientConflictDiagnostic = true;
        using var a = Fit(data, plain);
        using var b = Fit(data, measured);
        CollectionAssert.AreEqual(SyntheticData.Weights(a), SyntheticData.Weights(b));
        Assert.IsTrue(a.TrainingReport.Epochs.All(e => e.BackboneGradientCosine is null));
        Assert.IsTrue(b.TrainingReport.Epochs.All(e => e.BackboneGradientCosine is >= -1 and <= 1 && e.HeadGradientCosine is null), string.Join("; ", b.TrainingReport.Epochs));

        var single = Options(DualHeadTrainingMode.SingleHeadKd);
        single.GradientConflictDiagnostic = true;
        using var c = Fit(data, single);
        Assert.IsTrue(c.TrainingReport.Epochs.All(e => e.BackboneGradientCosine is >= -1 and <= 1 && e.HeadGradientCosine is >= -1 and <= 1), string.Join("; ", c.TrainingReport.Epochs));
    }
}
