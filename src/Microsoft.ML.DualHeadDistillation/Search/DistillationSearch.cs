using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Search;

/// <summary>What a search did: every trial, the best configuration, and the final run trained with it.</summary>
public sealed record DistillationSearchResult(SearchConfiguration Best, IReadOnlyList<SearchTrial<SearchConfiguration>> Trials, bool StoppedByBudget, double SearchSeconds)
{
    /// <summary>How <see cref="Best"/> (the configuration kept) was chosen against the configuration without a search.</summary>
    public SearchChoice? Choice { get; init; }
    /// <summary>The search's spec (what every trial and the final run start from).</summary>
    public DistillationRunSpec Spec { get; init; } = new();
}

/// <summary>
/// A budgeted search, as Model Builder does for plain training: successive halving (<see cref="SuccessiveHalving"/>)
/// over a <see cref="DistillationSearchSpace"/> (objective, student, learning rate, temperature), every trial a
/// <see cref="DistillationRun"/> of <c>epochs</c> = its budget in <c>trials/</c> of the folder, scored by its validation
/// accuracy; the teacher's cache and the sample store are shared so each image is labeled and decoded once. The best configuration is then trained in the
/// folder itself for the rest of the time budget (or the largest budget without one). Trials are written to
/// <c>search.json</c> as they finish: a search stopped by Ctrl+C resumes (<see cref="Resume"/>) without repeating them.
/// </summary>
public static class DistillationSearch
{
    public const string File = "search.json", TrialsFolder = "trials";

    /// <summary>Searches for <paramref name="spec"/> into <paramref name="folder"/>, then trains the best; returns the final run and the search.</summary>
    public static (DistillationRunResult Run, DistillationSearchResult Search) Execute(DistillationRunSpec spec, string folder, DistillationSearchSpace? space = null, SuccessiveHalvingOptions? options = null,
        bool replace = false, RunInputNames? names = null, IDistillationRunProgress? progress = null, Action<DistillationRunResult, RunOutputs, DistillationSearchResult>? writeOutputs = null, string tool = "",
        IReadOnlyList<string>? callerOutputs = null, CancellationToken cancel = default)
    {
        folder = Path.GetFullPath(folder);
        names ??= RunInputNames.Spec;
        if (!replace && Directory.Exists(folder) && (RunFolder.HoldsRun(folder) || System.IO.File.Exists(Path.Combine(folder, File))))
            throw DistillationRunException.BadSettings($"{names["Output"]} '{folder}' already holds a run or a search. Resume a search with {names["Search"]} {names["Resume"]} {folder}, replace it with {names["Replace"]}, or choose another {names["Output"]}.");
        if (replace && Directory.Exists(folder)) RunFolder.RemoveRun(folder, [File, TrialsFolder, .. callerOutputs ?? []]); // its own files only, as a run's replace
        Directory.CreateDirectory(folder);
        var state = new SearchState(spec with { WorkFolder = spec.WorkFolder ?? Path.Combine(folder, TrialsFolder, "work") }, space ?? new DistillationSearchSpace(), options ?? Options(spec), []);
        return Continue(state, folder, names, progress, writeOutputs, tool, cancel);
    }

    /// <summary>Continues the search in <paramref name="folder"/> (stopped by cancellation): its trials are kept, the rest run.</summary>
    public static (DistillationRunResult Run, DistillationSearchResult Search) Resume(string folder, RunInputNames? names = null, IDistillationRunProgress? progress = null,
        Action<DistillationRunResult, RunOutputs, DistillationSearchResult>? writeOutputs = null, string tool = "", CancellationToken cancel = default)
    {
        folder = Path.GetFullPath(folder);
        string path = Path.Combine(folder, File);
        if (!System.IO.File.Exists(path)) throw DistillationRunException.BadSettings($"'{folder}' holds no search ({File}); start one without {(names ?? RunInputNames.Spec)["Resume"]}.");
        SearchState state;
        try
        {
            state = JsonSerializer.Deserialize<SearchState>(System.IO.File.ReadAllText(path), s_json) ?? throw new InvalidDataException("empty");
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or NotSupportedException)
        {
            throw DistillationRunException.BadModel($"'{path}' cannot be read as a search: {e.Message}", e);
        }
        if (System.IO.File.Exists(Path.Combine(folder, RunFolder.Model))) throw DistillationRunException.BadSettings($"The search in '{folder}' has finished (it holds {RunFolder.Model}); nothing to resume.");
        return Continue(state, folder, names ?? RunInputNames.Spec, progress, writeOutputs, tool, cancel);
    }

    /// <summary>The default budgets: 1 epoch first, up to the spec's epochs (at least 3; default 9, the final run's); eta 3; 60 % of the spec's time budget.</summary>
    public static SuccessiveHalvingOptions Options(DistillationRunSpec spec) => new()
    {
        MinBudget = 1,
        MaxBudget = Math.Max(3, spec.Epochs ?? DualHeadDefaults.Epochs * 3),
        Eta = 3,
        TimeBudget = spec.TimeBudget is { } b ? b * 0.6 : null,
    };

    private static (DistillationRunResult, DistillationSearchResult) Continue(SearchState state, string folder, RunInputNames names, IDistillationRunProgress? progress,
        Action<DistillationRunResult, RunOutputs, DistillationSearchResult>? writeOutputs, string tool, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var spec = state.Spec;
        var configurations = state.Space.Configurations(spec);
        foreach (var c in configurations) RunTraining.Check(c.Apply(spec) with { Epochs = 1, TimeBudget = null }, Teachers.TeacherDefinition.For(spec.Teacher, names), names);
        var done = state.Trials.ToList();
        double priorSeconds = done.Sum(t => t.Seconds);
        int[]? perClass = state.ValidationPerClass?.ToArray();
        var listing = new StrongBox<ImageListing?>(); // listed by the first trial, reused by the others
        Save(folder, state with { Trials = done });
        progress?.Phase("Search");
        progress?.Info($"searching {configurations.Count} configurations by successive halving (first budget {state.Options.MinBudget} epoch, eta {state.Options.Eta}, up to {state.Options.MaxBudget} epochs{(state.Options.TimeBudget is { } t ? $", within {t:hh\\:mm\\:ss}" : "")}){(done.Count > 0 ? $"; {done.Count} trials done before" : "")}");
        if (state.Space.PretrainedStudent(spec) is { } noPretrained && state.Space.PretrainedResNet18) progress?.Info($"the {SearchConfiguration.ImageNetResNet18} student is not searched: {noPretrained}");
        var quiet = new TrialProgress(progress);
        SearchTrial<SearchConfiguration> Evaluate(SearchConfiguration c, int epochs) => Trial(spec, c, epochs, folder, done.Count + 1, tool, quiet, counts => perClass ??= counts, listing, cancel);
        void Completed(SearchTrial<SearchConfiguration> trial)
        {
            done.Add(trial);
            Save(folder, state with { Trials = done, ValidationPerClass = perClass });
            progress?.Info(FormattableString.Invariant($"trial {done.Count}: {trial.Arm}, {trial.Budget} epoch{(trial.Budget == 1 ? "" : "s")}: validation {trial.Score:P1} in {trial.Seconds:0.0} s"));
        }
        var result = state.Outcome ?? SuccessiveHalving.Run(configurations, Evaluate, state.Options, state.Trials, Completed, cancel);
        // Decided once: a search stopped during its final run resumes that run, not the search.
        if (state.Outcome is null) Save(folder, state = state with { Trials = done, Outcome = result, ValidationPerClass = perClass });
        progress?.Info($"best: {result.Best} ({result.BestScore:P1} on validation){(result.StoppedByBudget ? "; the time budget stopped the search" : "")}");
        var choice = state.Choice ?? Choose(state.Space.Reference(spec), state.Space.NoiseMargin, result, done, () => perClass, Evaluate, Completed, cancel);
        if (state.Choice is null) Save(folder, state = state with { Trials = done, Choice = choice, ValidationPerClass = perClass });
        double searchSeconds = priorSeconds + clock.Elapsed.TotalSeconds;
        progress?.Info(choice.ToString());

        // The kept configuration, trained in the folder itself: for the time left of the budget, or the largest budget.
        var final = choice.Chosen.Apply(spec);
        final = spec.TimeBudget is { } budget
            ? final with { Epochs = null, TimeBudget = budget - TimeSpan.FromSeconds(searchSeconds) is var left && left > TimeSpan.FromSeconds(10) ? left : TimeSpan.FromSeconds(10) }
            : final with { Epochs = state.Options.MaxBudget };
        // A search stopped during its final run resumes that run from its checkpoint.
        var run = RunFolder.HoldsRun(folder) ? DistillationRun.Resume(folder, names) : DistillationRun.Create(final, folder, replace: false, names);
        if (tool.Length > 0) run.Tool = tool;
        run.CallerOutputs = [File, TrialsFolder];
        var search = new DistillationSearchResult(choice.Chosen, done, result.StoppedByBudget, searchSeconds) { Spec = spec, Choice = choice };
        var finished = run.Execute(progress, writeOutputs is null ? null : (r, o) => writeOutputs(r, o, search), cancel);
        RunFolder.DeleteQuietly(Path.Combine(folder, TrialsFolder)); // the shared teacher cache and store
        return (finished, search);
    }

    private static SearchTrial<SearchConfiguration> Trial(DistillationRunSpec spec, SearchConfiguration c, int epochs, string folder, int index, string tool, IDistillationRunProgress progress,
        Action<int[]> validationPerClass, StrongBox<ImageListing?> listing, CancellationToken cancel)
    {
        string trialFolder = Path.Combine(folder, TrialsFolder, string.Create(CultureInfo.InvariantCulture, $"{index:000}"));
        var watch = Stopwatch.StartNew();
        var run = DistillationRun.Create(c.Apply(spec) with { Epochs = epochs, TimeBudget = null }, trialFolder, replace: true);
        run.IsTrial = true;
        run.KnownListing = listing.Value;
        if (tool.Length > 0) run.Tool = tool;
        double score;
        string outcomes;
        using (var result = run.Execute(progress, cancel: cancel))
        {
            score = result.Summary.Validation.First(s => s.Name != "teacher").Accuracy;
            var scored = result.Model.Transform(result.ValidationData);
            var labels = ScoredColumns.Labels(scored);
            validationPerClass(Enumerable.Range(0, result.Listing.Classes.Count).Select(k => labels.Count(l => l == k)).ToArray());
            listing.Value ??= result.Listing;
            var predicted = ScoredColumns.Vectors(scored, "Score");
            outcomes = string.Create(labels.Length, (labels, predicted), (span, x) =>
            {
                for (int i = 0; i < span.Length; i++) span[i] = ClassifierScores.ArgMax(x.predicted[i]) == x.labels[i] ? '1' : '0';
            });
        }
        RunFolder.DeleteQuietly(trialFolder); // the models are not kept: the best is trained again
        return new SearchTrial<SearchConfiguration>(c, 0, epochs, score, watch.Elapsed.TotalSeconds) { Outcomes = outcomes };
    }

    /// <summary>
    /// The <see cref="SearchChoice"/>: successive halving's best against the configuration without a search at the same
    /// budget, which is trained for it (one more trial) when halving dropped it, unless the time budget stopped the search.
    /// </summary>
    private static SearchChoice Choose(SearchConfiguration reference, double margin, SuccessiveHalvingResult<SearchConfiguration> result, List<SearchTrial<SearchConfiguration>> done,
        Func<int[]?> perClass, Func<SearchConfiguration, int, SearchTrial<SearchConfiguration>> trial, Action<SearchTrial<SearchConfiguration>> completed, CancellationToken cancel)
    {
        int top = result.Trials.Max(t => t.Rung);
        var best = result.Trials.Last(t => t.Rung == top && t.Arm == result.Best);
        var compared = done.LastOrDefault(t => t.Arm == reference && t.Budget == best.Budget);
        if (compared is null && result.StoppedByBudget)
        {
            // No time for another trial: compare at the largest budget both were trained for.
            var common = done.Where(t => t.Arm == reference).Select(t => t.Budget).Intersect(done.Where(t => t.Arm == result.Best).Select(t => t.Budget)).DefaultIfEmpty(0).Max();
            if (common > 0)
            {
                best = done.Last(t => t.Arm == result.Best && t.Budget == common);
                compared = done.Last(t => t.Arm == reference && t.Budget == common);
            }
        }
        else if (compared is null && best.Arm != reference)
        {
            cancel.ThrowIfCancellationRequested();
            compared = trial(reference, best.Budget) with { Rung = best.Rung, Budget = best.Budget };
            completed(compared);
        }
        return SearchChoice.Decide(best, compared, reference, margin, perClass() is { Length: > 0 } counts ? counts.Min() : 0);
    }

    private static readonly JsonSerializerOptions s_json = new(RunFolder.Json) { WriteIndented = true };

    private static void Save(string folder, SearchState state)
    {
        Directory.CreateDirectory(Path.Combine(folder, TrialsFolder));
        RunFolder.WriteText(Path.Combine(folder, File), JsonSerializer.Serialize(state, s_json));
    }

    /// <summary>search.json: the spec, the space, the budgets and the trials done.</summary>
    private sealed record SearchState(DistillationRunSpec Spec, DistillationSearchSpace Space, SuccessiveHalvingOptions Options, IReadOnlyList<SearchTrial<SearchConfiguration>> Trials)
    {
        /// <summary>The search's result once decided (before the final run starts), or null.</summary>
        public SuccessiveHalvingResult<SearchConfiguration>? Outcome { get; init; }
        /// <summary>The configuration kept, once chosen.</summary>
        public SearchChoice? Choice { get; init; }
        /// <summary>Validation images per class (from the first trial), for the small-validation warning.</summary>
        public IReadOnlyList<int>? ValidationPerClass { get; init; }
    }

    /// <summary>A trial's progress: its lines and phases stay quiet; steps and epochs go on to the caller's display.</summary>
    private sealed class TrialProgress(IDistillationRunProgress? inner) : IDistillationRunProgress
    {
        public void Step(DualHeadStepReport step) => inner?.Step(step);
    }
}
