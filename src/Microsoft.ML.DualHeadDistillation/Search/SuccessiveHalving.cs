namespace Microsoft.ML.DualHeadDistillation.Search;

/// <summary>One evaluation of an arm: its rung, the budget it trained for (epochs), its score and what it cost.</summary>
public sealed record SearchTrial<TArm>(TArm Arm, int Rung, int Budget, double Score, double Seconds)
{
    /// <summary>Per validation row, '1' where the trial's prediction was right and '0' where not (for paired comparisons of two trials); null: not recorded.</summary>
    public string? Outcomes { get; init; }
}

/// <summary>The settings of a successive-halving search.</summary>
public sealed record SuccessiveHalvingOptions
{
    /// <summary>Budget of every arm in the first rung (epochs).</summary>
    public int MinBudget { get; init; } = 1;
    /// <summary>The largest budget an arm is given.</summary>
    public int MaxBudget { get; init; } = 9;
    /// <summary>Each rung keeps the best 1/Eta of the arms and gives them Eta times the budget.</summary>
    public int Eta { get; init; } = 3;
    /// <summary>Wall time the search may take; a trial whose cost (estimated from the trials so far) would not fit is not started. Null: none.</summary>
    public TimeSpan? TimeBudget { get; init; }
}

/// <summary>What a search found: the best arm (the highest score in the highest rung reached) and every trial.</summary>
public sealed record SuccessiveHalvingResult<TArm>(TArm Best, double BestScore, IReadOnlyList<SearchTrial<TArm>> Trials, bool StoppedByBudget);

/// <summary>
/// Successive halving (Jamieson and Talwalkar 2016): every arm trains for <see cref="SuccessiveHalvingOptions.MinBudget"/>;
/// the best n/eta (rounded down, at least one) go on with eta times the budget; and so on until one arm is left or the budget reaches
/// <see cref="SuccessiveHalvingOptions.MaxBudget"/> (one survivor is not trained again: it is the answer). Under a time budget a trial that would not fit (its cost estimated
/// from the seconds per budget unit measured so far) is not started and the best so far is returned. Trials given in
/// <c>done</c> (a resumed search) are not evaluated again. Ties keep the arm listed first.
/// </summary>
public static class SuccessiveHalving
{
    public static SuccessiveHalvingResult<TArm> Run<TArm>(IReadOnlyList<TArm> arms, Func<TArm, int, SearchTrial<TArm>> evaluate, SuccessiveHalvingOptions? options = null,
        IReadOnlyList<SearchTrial<TArm>>? done = null, Action<SearchTrial<TArm>>? completed = null, CancellationToken cancel = default) where TArm : notnull
    {
        ArgumentNullException.ThrowIfNull(arms);
        ArgumentNullException.ThrowIfNull(evaluate);
        options ??= new SuccessiveHalvingOptions();
        if (arms.Count == 0) throw new ArgumentException("The search needs at least one configuration.", nameof(arms));
        if (options.MinBudget < 1 || options.MaxBudget < options.MinBudget || options.Eta < 2)
            throw new ArgumentOutOfRangeException(nameof(options), $"Successive halving needs MinBudget >= 1, MaxBudget >= MinBudget and Eta >= 2; got {options.MinBudget}, {options.MaxBudget}, {options.Eta}.");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var trials = new List<SearchTrial<TArm>>();
        double spentBefore = 0, unitsBefore = 0;
        foreach (var t in done ?? []) (spentBefore, unitsBefore) = (spentBefore + t.Seconds, unitsBefore + t.Budget);
        var alive = arms.ToList();
        int budget = options.MinBudget;
        bool stopped = false;
        for (int rung = 0; ; rung++)
        {
            var scored = new List<(TArm Arm, double Score, int Order)>();
            foreach (var (arm, order) in alive.Select((a, i) => (a, i)))
            {
                cancel.ThrowIfCancellationRequested();
                var trial = done?.FirstOrDefault(t => t.Rung == rung && EqualityComparer<TArm>.Default.Equals(t.Arm, arm));
                if (trial is null)
                {
                    double unitSeconds = unitsBefore + trials.Sum(t => t.Budget) is var units and > 0 ? (spentBefore + trials.Sum(t => t.Seconds)) / units : 0;
                    if (options.TimeBudget is { } limit && scored.Count + trials.Count > 0 && clock.Elapsed.TotalSeconds + spentBefore + unitSeconds * budget > limit.TotalSeconds)
                    {
                        stopped = true;
                        break;
                    }
                    trial = evaluate(arm, budget) with { Rung = rung, Budget = budget };
                    completed?.Invoke(trial);
                }
                trials.Add(trial);
                scored.Add((arm, trial.Score, order));
            }
            if (scored.Count == 0) break;
            var ranked = scored.OrderByDescending(s => s.Score).ThenBy(s => s.Order).ToList();
            // One arm left after pruning is the answer: it is not trained again here (the caller trains the best).
            if (stopped || ranked.Count / options.Eta <= 1 || budget * options.Eta > options.MaxBudget)
            {
                alive = [ranked[0].Arm];
                break;
            }
            alive = ranked.Take(Math.Max(1, ranked.Count / options.Eta)).Select(s => s.Arm).ToList();
            budget *= options.Eta;
        }
        // The best: the top score of the highest rung any trial reached.
        int top = trials.Max(t => t.Rung);
        var best = trials.Where(t => t.Rung == top).Select((t, i) => (t, i)).OrderByDescending(x => x.t.Score).ThenBy(x => x.i).First().t;
        return new SuccessiveHalvingResult<TArm>(best.Arm, best.Score, trials, stopped);
    }
}
