using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Search;

/// <summary>One point of the search space: what a trial changes in the run's spec.</summary>
public sealed record SearchConfiguration(DualHeadTrainingMode Objective, DualHeadBackbone Backbone, float LearningRate, float Temperature)
{
    /// <summary>"DualHead, SmallCnn, lr 0.001, T 2".</summary>
    public override string ToString() => FormattableString.Invariant($"{Objective}, {Backbone}, lr {LearningRate:0.#####}, T {Temperature:0.##}");

    /// <summary>The spec of a trial of this configuration.</summary>
    public DistillationRunSpec Apply(DistillationRunSpec spec) => spec with { Objective = Objective, Backbone = Backbone, LearningRate = LearningRate, Temperature = Temperature };
}

/// <summary>The configurations a search tries: every combination of its lists (a small space, on purpose).</summary>
public sealed record SearchSpace
{
    public IReadOnlyList<DualHeadTrainingMode> Objectives { get; init; } = [DualHeadTrainingMode.DualHead, DualHeadTrainingMode.SingleHeadKd, DualHeadTrainingMode.SupervisedOnly];
    /// <summary>Student backbones; empty: the spec's.</summary>
    public IReadOnlyList<DualHeadBackbone> Backbones { get; init; } = [];
    /// <summary>Learning rates; empty: the spec's and three times it.</summary>
    public IReadOnlyList<float> LearningRates { get; init; } = [];
    /// <summary>Temperatures; empty: the spec's and twice it (SupervisedOnly has none: one configuration).</summary>
    public IReadOnlyList<float> Temperatures { get; init; } = [];

    /// <summary>The configurations around <paramref name="spec"/>, in a fixed order.</summary>
    public IReadOnlyList<SearchConfiguration> Configurations(DistillationRunSpec spec)
    {
        var backbones = Backbones.Count > 0 ? Backbones : [spec.Backbone];
        var rates = LearningRates.Count > 0 ? LearningRates : [spec.LearningRate, spec.LearningRate * 3];
        var temperatures = Temperatures.Count > 0 ? Temperatures : [spec.Temperature, spec.Temperature * 2];
        return (from o in Objectives
                from b in backbones
                from lr in rates
                from t in o == DualHeadTrainingMode.SupervisedOnly ? [temperatures[0]] : temperatures
                select new SearchConfiguration(o, b, lr, t)).Distinct().ToList();
    }
}

/// <summary>What a search did: every trial, the best configuration, and the final run trained with it.</summary>
public sealed record DistillationSearchResult(SearchConfiguration Best, IReadOnlyList<SearchTrial<SearchConfiguration>> Trials, bool StoppedByBudget, double SearchSeconds)
{
    /// <summary>The search's spec (what every trial and the final run start from).</summary>
    public DistillationRunSpec Spec { get; init; } = new();
}

/// <summary>
/// A budgeted search, as Model Builder does for plain training: successive halving (<see cref="SuccessiveHalving"/>)
/// over a <see cref="SearchSpace"/> (objective, student, learning rate, temperature), every trial a
/// <see cref="DistillationRun"/> of <c>epochs</c> = its budget in <c>trials/</c> of the folder, scored by its validation
/// accuracy; the teacher's cache and the sample store are shared so each image is labeled and decoded once. The best configuration is then trained in the
/// folder itself for the rest of the time budget (or the largest budget without one). Trials are written to
/// <c>search.json</c> as they finish: a search stopped by Ctrl+C resumes (<see cref="Resume"/>) without repeating them.
/// </summary>
public static class DistillationSearch
{
    public const string File = "search.json", TrialsFolder = "trials";

    /// <summary>Searches for <paramref name="spec"/> into <paramref name="folder"/>, then trains the best; returns the final run and the search.</summary>
    public static (DistillationRunResult Run, DistillationSearchResult Search) Execute(DistillationRunSpec spec, string folder, SearchSpace? space = null, SuccessiveHalvingOptions? options = null,
        bool replace = false, RunInputNames? names = null, IDistillationRunProgress? progress = null, Action<DistillationRunResult, RunOutputs, DistillationSearchResult>? writeOutputs = null, string tool = "",
        IReadOnlyList<string>? callerOutputs = null, CancellationToken cancel = default)
    {
        folder = Path.GetFullPath(folder);
        names ??= RunInputNames.Spec;
        if (!replace && Directory.Exists(folder) && (RunFolder.HoldsRun(folder) || System.IO.File.Exists(Path.Combine(folder, File))))
            throw DistillationRunException.BadSettings($"{names["Output"]} '{folder}' already holds a run or a search. Resume a search with {names["Search"]} {names["Resume"]} {folder}, replace it with {names["Replace"]}, or choose another {names["Output"]}.");
        if (replace && Directory.Exists(folder)) RunFolder.RemoveRun(folder, [File, TrialsFolder, .. callerOutputs ?? []]); // its own files only, as a run's replace
        Directory.CreateDirectory(folder);
        var state = new SearchState(spec with { WorkFolder = spec.WorkFolder ?? Path.Combine(folder, TrialsFolder, "work") }, space ?? new SearchSpace(), options ?? Options(spec), []);
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
        Save(folder, state with { Trials = done });
        progress?.Phase("Search");
        progress?.Info($"searching {configurations.Count} configurations by successive halving (first budget {state.Options.MinBudget} epoch, eta {state.Options.Eta}, up to {state.Options.MaxBudget} epochs{(state.Options.TimeBudget is { } t ? $", within {t:hh\\:mm\\:ss}" : "")}){(done.Count > 0 ? $"; {done.Count} trials done before" : "")}");
        var quiet = new TrialProgress(progress);
        var result = state.Outcome ?? SuccessiveHalving.Run(configurations, (c, epochs) => Trial(spec, c, epochs, folder, done.Count + 1, tool, quiet, cancel), state.Options, state.Trials,
            trial =>
            {
                done.Add(trial);
                Save(folder, state with { Trials = done });
                progress?.Info(FormattableString.Invariant($"trial {done.Count}: {trial.Arm}, {trial.Budget} epoch{(trial.Budget == 1 ? "" : "s")}: validation {trial.Score:P1} in {trial.Seconds:0.0} s"));
            }, cancel);
        // Decided once: a search stopped during its final run resumes that run, not the search.
        if (state.Outcome is null) Save(folder, state with { Trials = done, Outcome = result });
        double searchSeconds = state.Trials.Sum(t => t.Seconds) + clock.Elapsed.TotalSeconds;
        progress?.Info($"best: {result.Best} ({result.BestScore:P1} on validation){(result.StoppedByBudget ? "; the time budget stopped the search" : "")}");

        // The best configuration, trained in the folder itself: for the time left of the budget, or the largest budget.
        var final = result.Best.Apply(spec);
        final = spec.TimeBudget is { } budget
            ? final with { Epochs = null, TimeBudget = budget - TimeSpan.FromSeconds(searchSeconds) is var left && left > TimeSpan.FromSeconds(10) ? left : TimeSpan.FromSeconds(10) }
            : final with { Epochs = state.Options.MaxBudget };
        // A search stopped during its final run resumes that run from its checkpoint.
        var run = RunFolder.HoldsRun(folder) ? DistillationRun.Resume(folder, names) : DistillationRun.Create(final, folder, replace: false, names);
        if (tool.Length > 0) run.Tool = tool;
        run.CallerOutputs = [File, TrialsFolder];
        var search = new DistillationSearchResult(result.Best, result.Trials, result.StoppedByBudget, searchSeconds) { Spec = spec };
        var finished = run.Execute(progress, writeOutputs is null ? null : (r, o) => writeOutputs(r, o, search), cancel);
        RunFolder.DeleteQuietly(Path.Combine(folder, TrialsFolder)); // the shared teacher cache and store
        return (finished, search);
    }

    private static SearchTrial<SearchConfiguration> Trial(DistillationRunSpec spec, SearchConfiguration c, int epochs, string folder, int index, string tool, IDistillationRunProgress progress, CancellationToken cancel)
    {
        string trialFolder = Path.Combine(folder, TrialsFolder, string.Create(CultureInfo.InvariantCulture, $"{index:000}"));
        var watch = Stopwatch.StartNew();
        var run = DistillationRun.Create(c.Apply(spec) with { Epochs = epochs, TimeBudget = null }, trialFolder, replace: true);
        if (tool.Length > 0) run.Tool = tool;
        double score;
        using (var result = run.Execute(progress, cancel: cancel))
            score = result.Summary.Validation.First(s => s.Name != "teacher").Accuracy;
        RunFolder.DeleteQuietly(trialFolder); // the models are not kept: the best is trained again
        return new SearchTrial<SearchConfiguration>(c, 0, epochs, score, watch.Elapsed.TotalSeconds);
    }

    private static readonly JsonSerializerOptions s_json = new(RunFolder.Json) { WriteIndented = true };

    private static void Save(string folder, SearchState state)
    {
        Directory.CreateDirectory(Path.Combine(folder, TrialsFolder));
        RunFolder.WriteText(Path.Combine(folder, File), JsonSerializer.Serialize(state, s_json));
    }

    /// <summary>search.json: the spec, the space, the budgets and the trials done.</summary>
    private sealed record SearchState(DistillationRunSpec Spec, SearchSpace Space, SuccessiveHalvingOptions Options, IReadOnlyList<SearchTrial<SearchConfiguration>> Trials)
    {
        /// <summary>The search's result once decided (before the final run starts), or null.</summary>
        public SuccessiveHalvingResult<SearchConfiguration>? Outcome { get; init; }
    }

    /// <summary>A trial's progress: its lines and phases stay quiet; steps and epochs go on to the caller's display.</summary>
    private sealed class TrialProgress(IDistillationRunProgress? inner) : IDistillationRunProgress
    {
        public void Step(DualHeadStepReport step) => inner?.Step(step);
    }
}
