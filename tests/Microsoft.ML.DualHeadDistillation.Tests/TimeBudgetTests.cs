using System.Diagnostics;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// TimeBudget: the probe that chooses the epochs runs on a throwaway student, so a budgeted run is exactly the run with
/// the chosen NumberOfEpochs; the plan is reported; a budget is kept (no epoch is started that would end after it).
/// </summary>
[TestClass]
public sealed class TimeBudgetTests
{
    private static (DualHeadDistillTransformer Model, List<string> Log) Fit(Action<DualHeadDistillOptions> set)
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var o = FineTuningTests.Options(weights: null);
        o.Precision = DualHeadPrecision.Float32;
        o.PreciseBatchNormBatches = 2;
        set(o);
        return (ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(FineTuningTests.Data()), log);
    }

    [TestMethod]
    public void ABudgetedRunIsTheRunWithTheChosenEpochs()
    {
        // A budget already spent: the plan is one epoch, after a probe that must leave no trace on the run.
        var (budgeted, log) = Fit(o => { o.TimeBudget = TimeSpan.FromMilliseconds(1); o.NumberOfEpochs = 5; });
        using var _ = budgeted;
        var plan = budgeted.TrainingReport.TimeBudgetPlan;
        Assert.IsNotNull(plan);
        Console.WriteLine(plan);
        StringAssert.Contains(plan, ": 1 epoch");
        Assert.AreEqual(1, budgeted.TrainingReport.Epochs.Count);
        Assert.AreEqual(1, budgeted.TrainingReport.Epochs[0].NumberOfEpochs, "the schedule spans the chosen epochs, not NumberOfEpochs");
        var (plain, _) = Fit(o => o.NumberOfEpochs = 1);
        using (plain)
            Assert.AreEqual(0f, FineTuningTests.MaxChange(FineTuningTests.BackboneState(budgeted), FineTuningTests.BackboneState(plain), _ => true),
                "bit-identical to NumberOfEpochs = 1: the probe trained a throwaway student");
        Assert.IsTrue(log.Any(l => l.Contains("time budget", StringComparison.Ordinal)));
    }

    [TestMethod]
    public void TheBudgetIsKeptAndFilled()
    {
        var budget = TimeSpan.FromSeconds(6);
        var watch = Stopwatch.StartNew();
        var (model, log) = Fit(o => o.TimeBudget = budget);
        double seconds = watch.Elapsed.TotalSeconds;
        using var _ = model;
        var report = model.TrainingReport;
        Console.WriteLine($"{report.TimeBudgetPlan}\nFit took {seconds:0.0}s; {report.Epochs.Count} epochs; stopped after {report.StoppedAfterEpoch?.ToString() ?? "-"}");
        Assert.IsTrue(report.Epochs.Count >= 2, "6 s hold many epochs of 6 small steps");
        Assert.IsTrue(report.StoppedAfterEpoch is null || log.Any(l => l.Contains("time budget", StringComparison.Ordinal) && l.Contains("stopping after epoch", StringComparison.Ordinal)),
            "a run stopped short says so");
        // No epoch is started that would end after the budget; what runs after training (alpha/beta) is small here.
        Assert.IsTrue(seconds < budget.TotalSeconds + 2, $"Fit took {seconds:0.0}s for a {budget.TotalSeconds}s budget");
        Assert.IsTrue(seconds > budget.TotalSeconds * 0.5, $"Fit took {seconds:0.0}s of a {budget.TotalSeconds}s budget: the plan should fill most of it");
    }

    [TestMethod]
    public void ANonPositiveBudgetIsRefusedNamingTheOption()
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Fit(o => o.TimeBudget = TimeSpan.Zero));
        Assert.AreEqual(nameof(DualHeadDistillOptions.TimeBudget), e.ParamName);
    }
}
