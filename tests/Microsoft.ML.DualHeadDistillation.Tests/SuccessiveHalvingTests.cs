using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Search;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Successive halving on synthetic objectives (no training): it keeps the best arm, halves as it should, respects the budget, resumes.</summary>
[TestClass]
public sealed class SuccessiveHalvingTests
{
    /// <summary>Arm a's true quality is a / 27; a budget of b epochs sees it with noise of ±0.06 / b (deterministic).</summary>
    private static SearchTrial<int> Noisy(int arm, int budget) =>
        new(arm, 0, budget, arm / 27.0 + ((arm * 7919) % 13 - 6) / 100.0 / budget, budget);

    [TestMethod]
    public void ItKeepsTheBestArmAndGivesTheSurvivorsEtaTimesTheBudget()
    {
        var arms = Enumerable.Range(0, 27).ToArray();
        var calls = new List<(int Arm, int Budget)>();
        var result = SuccessiveHalving.Run(arms, (a, b) => { calls.Add((a, b)); return Noisy(a, b); }, new SuccessiveHalvingOptions { MinBudget = 1, MaxBudget = 9, Eta = 3 });
        Assert.AreEqual(26, result.Best);
        CollectionAssert.AreEqual(new[] { 27, 9, 3 }, new[] { 1, 3, 9 }.Select(b => calls.Count(c => c.Budget == b)).ToArray());
        Assert.AreEqual(27 + 9 + 3, result.Trials.Count);
        CollectionAssert.AreEqual(new[] { 0, 1, 2 }, result.Trials.Select(t => t.Rung).Distinct().ToArray());
        // The exhaustive search at the largest budget spends 27 * 9 = 243 units; this one 27 + 27 + 27 = 81.
        Assert.AreEqual(81, result.Trials.Sum(t => t.Budget));
        Assert.IsFalse(result.StoppedByBudget);
        // The noise of the first rung misranks neighbours, but the best third always survives it here.
        var survivors = result.Trials.Where(t => t.Rung == 1).Select(t => t.Arm).ToArray();
        CollectionAssert.IsSubsetOf(new[] { 24, 25, 26 }, survivors);
    }

    [TestMethod]
    public void TiesKeepTheArmListedFirstAndOneArmNeedsOneTrial()
    {
        var tie = SuccessiveHalving.Run(["b", "a", "c"], (a, b) => new SearchTrial<string>(a, 0, b, a == "c" ? 0.1 : 0.5, 0), new SuccessiveHalvingOptions { MaxBudget = 3 });
        Assert.AreEqual("b", tie.Best);
        var one = SuccessiveHalving.Run(["only"], (a, b) => new SearchTrial<string>(a, 0, b, 0.3, 0));
        Assert.AreEqual(1, one.Trials.Count);
        Assert.ThrowsExactly<ArgumentException>(() => SuccessiveHalving.Run(Array.Empty<string>(), (a, b) => new SearchTrial<string>(a, 0, b, 0, 0)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SuccessiveHalving.Run(["x"], (a, b) => new SearchTrial<string>(a, 0, b, 0, 0), new SuccessiveHalvingOptions { Eta = 1 }));
    }

    [TestMethod]
    public void ATimeBudgetStopsBeforeATrialThatWouldNotFit()
    {
        // Each budget unit costs 40 ms; 0.6 s of budget: the 1-epoch rung (27 trials, 1.1 s) cannot finish.
        var arms = Enumerable.Range(0, 27).ToArray();
        var watch = Stopwatch.StartNew();
        var result = SuccessiveHalving.Run(arms, (a, b) =>
        {
            var trialWatch = Stopwatch.StartNew();
            Thread.Sleep(40 * b);
            return Noisy(a, b) with { Seconds = trialWatch.Elapsed.TotalSeconds };
        }, new SuccessiveHalvingOptions { MaxBudget = 9, TimeBudget = TimeSpan.FromSeconds(0.6) });
        double elapsed = watch.Elapsed.TotalSeconds;
        Assert.IsTrue(result.StoppedByBudget);
        Assert.IsTrue(result.Trials.Count is > 3 and < 27, $"{result.Trials.Count} trials");
        Assert.IsTrue(elapsed < 0.6 + 0.2, $"{elapsed:0.00} s for a 0.6 s budget");
        Assert.AreEqual(result.Trials.MaxBy(t => t.Score)!.Arm, result.Best, "the best so far");
    }

    [TestMethod]
    public void AResumedSearchDoesNotRepeatItsTrialsAndEndsTheSame()
    {
        var arms = Enumerable.Range(0, 9).ToArray();
        var options = new SuccessiveHalvingOptions { MaxBudget = 9 };
        var full = SuccessiveHalving.Run(arms, Noisy, options);
        var done = full.Trials.Take(7).ToArray();
        var again = new List<(int, int)>();
        var resumed = SuccessiveHalving.Run(arms, (a, b) => { again.Add((a, b)); return Noisy(a, b); }, options, done);
        Assert.AreEqual(full.Best, resumed.Best);
        Assert.AreEqual(full.Trials.Count - 7, again.Count, "only the trials not done before");
        CollectionAssert.AreEqual(full.Trials.ToArray(), resumed.Trials.ToArray());
    }
}
