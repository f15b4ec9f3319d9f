using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training.Batches;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>
/// The optimisation loop. It sees only the run's specs and components: each step takes a batch from the
/// batch source, runs the backbone once over its rows, asks the objective for the loss, and takes an AdamW
/// step under a warm-up + cosine schedule.
/// </summary>
internal sealed class DualHeadTrainingLoop
{
    private readonly ResolvedRun _run;
    private RunSettings _settings; // its Epochs set by the time budget's plan, if any
    private readonly Device _device;
    private readonly Action<string> _log;
    private readonly Action<string> _warn;
    private readonly FitCancellation _cancel;

    public DualHeadTrainingLoop(ResolvedRun run, RunSettings settings, Device device, Action<string> log, FitCancellation cancel, Action<string>? warn = null)
    {
        _run = run;
        _settings = settings;
        _device = device;
        _log = log;
        _warn = warn ?? log;
        _cancel = cancel;
    }

    internal ResolvedRun Resolved => _run;
    internal RunSettings Settings => _settings;
    internal Device Device => _device;
    internal FitCancellation Cancel => _cancel;
    internal void Log(string line) => _log(line);
    internal void Warn(string line) => _warn(line);

    /// <summary>Fewer optimisation steps than this make a run too short for its figures to mean much.</summary>
    public const int ShortRunSteps = 100;

    /// <summary>Receives every step's losses and learning rate (the report's curve); null: not kept.</summary>
    internal StepCurve? Curve { get; init; }
    /// <summary>Called after every epoch with the student, the state and the epochs so far (used to write checkpoints).</summary>
    public Action<DualHeadStudent, TrainingState, IReadOnlyList<DualHeadEpochReport>>? EpochCompleted { get; init; }
    /// <summary>Called when the run is stopped between two steps, with the state a resumed run continues from (mid-epoch).</summary>
    public Action<DualHeadStudent, TrainingState, IReadOnlyList<DualHeadEpochReport>>? Interrupted { get; init; }

    /// <summary>
    /// Trains a new student (seeded; its input standardisation set to <paramref name="inputStatistics"/>), or
    /// continues the one in <paramref name="resume"/> (whose statistics come with its weights).
    /// </summary>
    public (DualHeadStudent Student, DualHeadTrainingReport Report, TrainingState State) Run(TrainingSet train, TrainingSet? validation, int seed, double readSeconds,
        InputStatistics? inputStatistics, DualHeadCheckpoint? resume = null)
    {
        string? plan = _settings.TimeBudget is { } budget ? PlanEpochs(budget, train, validation, seed, inputStatistics, resume) : null;
        var student = resume is null ? StudentFactory.Create(_run.Spec.Student, seed, _device) : resume.CreateStudent(_device, "resume");
        try
        {
            if (resume is null && student.InputStandardization is { } norm)
                norm.Set(inputStatistics ?? throw new InvalidOperationException("The student standardises its input but no statistics were computed."));
            var loaded = resume is null ? LoadBackboneWeights(student) : null;
            var (report, state) = Train(student, train, validation, resume?.Seed ?? seed, readSeconds, resume);
            report = report with { TimeBudgetPlan = plan };
            return (student, loaded is null ? report : report with { BackboneWeights = loaded }, state);
        }
        catch
        {
            student.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The time budget's plan (<see cref="Recipes.TimeBudget"/>): a probe of a few steps on a throwaway student with this
    /// run's recipe, then the epochs that fit. A resumed run keeps the checkpoint's epochs.
    /// </summary>
    private string PlanEpochs(Recipes.TimeBudget budget, TrainingSet train, TrainingSet? validation, int seed, InputStatistics? inputStatistics, DualHeadCheckpoint? resume)
    {
        string why;
        if (resume is not null && (resume.State.PlannedEpochs > 0 ? resume.State.PlannedEpochs : resume.Report?.Epochs is [.., var last] ? last.NumberOfEpochs : 0) is var planned and > 0)
        {
            why = $"time budget {budget.Budget}: resumed, keeping the checkpoint's {planned} epochs";
            _settings = _settings with { Epochs = planned };
            _log($"DualHeadDistill: {why}");
            return why;
        }
        var clock = new Recipes.StepClock();
        var probe = new DualHeadTrainingLoop(_run, _settings with
        {
            Epochs = 1,
            TimeBudget = null,
            MaxStepsPerEpoch = Recipes.TimeBudget.ProbeSteps,
            PreciseBatchNormBatches = 0,
            EarlyStoppingPatience = 0,
            Progress = null,
            StepProgress = clock,
            GradientConflictDiagnostic = false,
        }, _device, _ => { }, _cancel, _ => { });
        var (student, report, _) = probe.Run(train, null, seed, 0, inputStatistics);
        student.Dispose();
        double step = clock.SecondsPerStep;
        // Epochs after the first read the frozen stages' outputs from the cache: their forward is saved.
        double later = report.FrozenStageCacheBytes is > 0 ? Math.Max(step * 0.1, step - report.FrozenStageSeconds / Math.Max(1, report.Epochs[0].Steps)) : step;
        int batchRows = _run.Spec.Batches.LabeledBatchSize + _run.Spec.Batches.UnlabeledBatchSize;
        long extraRows = (validation?.Rows ?? 0) + (long)_settings.PreciseBatchNormBatches * batchRows;
        int stepsPerEpoch = _run.Batches.Create(new BatchSourceContext(Rows(train, seed), _run.Spec.Batches, seed, _run.Objective.UsesTeacher, _run.Objective.UsesUnlabeledRows)).StepsPerEpoch;
        (int epochs, why) = budget.Plan(stepsPerEpoch, step, later, extraRows, batchRows, maxEpochs: int.MaxValue / Math.Max(1, stepsPerEpoch));
        _settings = _settings with { Epochs = epochs };
        _log($"DualHeadDistill: {why}");
        return why;
    }

    /// <summary>The training rows as batch sources read them: stored images through the run's augmentation (and cached views).</summary>
    internal TrainingRows Rows(TrainingSet train, int seed)
    {
        var images = _run.Spec.Images;
        var sampler = train.Store is null ? null
            : new Augmentation.ImageSampler(images!.Augmentation, images.Crop.Channels, images.StorageSize, images.Crop, seed,
                images.TeacherView == DualHeadTeacherView.CachedViews ? images.TeacherViews : 0);
        return new TrainingRows(train, sampler);
    }

    /// <summary>Loads <see cref="RunSettings.BackboneWeights"/> into the new student's backbone, checking it is the file the spec hashed.</summary>
    private Students.Pretrained.PretrainedLoadReport? LoadBackboneWeights(DualHeadStudent student)
    {
        var tuning = _run.Spec.Tuning;
        if (tuning.WeightsHash is null) return null;
        string path = _settings.BackboneWeights ?? throw new InvalidOperationException($"The run's spec names backbone weights {tuning.WeightsFile} but no BackboneWeights file was given.");
        if (RunSpecs.WeightsHash(path) != tuning.WeightsHash)
            throw new InvalidDataException($"BackboneWeights file '{path}' changed while Fit was starting (its hash is no longer {tuning.WeightsHash}).");
        Students.Pretrained.PretrainedLoadReport loaded;
        try
        {
            loaded = student.Backbone.LoadPyTorchWeights(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"BackboneWeights: {e.Message}", e);
        }
        _log($"DualHeadDistill: backbone weights: {loaded}");
        return loaded;
    }

    private (DualHeadTrainingReport, TrainingState) Train(DualHeadStudent student, TrainingSet train, TrainingSet? validation, int seed, double readSeconds, DualHeadCheckpoint? resume)
    {
        using var pass = new Loop.TrainingPass(this, student, train, validation, seed, resume);
        var (warnings, precisionReason, formula) = Header(student, train, seed, pass);
        pass.Prepare();
        var total = Stopwatch.StartNew();
        pass.Run();
        var stopping = pass.Stopping;
        bool restored = stopping is not null && stopping.BestEpoch > 0 && stopping.BestEpoch != pass.Epochs[^1].Epoch && stopping.RestoreBest(student);
        if (restored)
            _log(FormattableString.Invariant($"DualHeadDistill: the student is the one after epoch {stopping!.BestEpoch} (best validation accuracy, {stopping.BestAccuracy:P2})"));
        double trainSeconds = total.Elapsed.TotalSeconds;
        pass.ReleaseBackbone();
        student.eval();
        if (pass.Frozen.Cache is { } stageCache)
            _log(FormattableString.Invariant($"DualHeadDistill: frozen stages: {stageCache.FilledSlots} outputs cached ({stageCache.Bytes / 1048576.0:F0} MiB), read back {stageCache.Reads} times"));
        double? batchStatisticsAccuracy = BatchNormCheck(student, validation, pass, restored, warnings);
        int stepsThisRun = pass.Step - (resume?.CompletedSteps ?? 0);
        var finalReport = Report(_run.Spec, formula, student, _device, train.LabeledRows, train.UnlabeledRows, pass.TotalSteps, readSeconds, pass.Epochs) with
        {
            TrainSeconds = trainSeconds,
            MeanStepMilliseconds = 1000 * trainSeconds / Math.Max(1, stepsThisRun),
            IntraOpThreads = get_num_threads(),
            Warnings = warnings,
            DataWaitSeconds = (double)pass.WaitTicks / Stopwatch.Frequency,
            FineTuning = _run.Spec.Tuning.ToString(),
            PrecisionReason = precisionReason,
            PreciseBatchNormRows = pass.PreciseBatchNormRows,
            BestEpoch = stopping?.BestEpoch > 0 ? stopping.BestEpoch : null,
            StoppedAfterEpoch = pass.StoppedAfter,
            BatchStatisticsValidationAccuracy = batchStatisticsAccuracy,
            FrozenStageCacheBytes = pass.Frozen.Cache?.Bytes,
            FrozenStageSeconds = pass.Frozen.Seconds,
            Steps = Curve?.Points ?? [],
        };
        student.Backbone.FrozenStages = 0;
        return (finalReport, pass.FinalState());
    }

    /// <summary>The run's header in the log (objective, precision and why, student, rows, steps, recipe) and its warnings.</summary>
    private (List<string> Warnings, string PrecisionReason, string Formula) Header(DualHeadStudent student, TrainingSet train, int seed, Loop.TrainingPass pass)
    {
        var spec = _run.Spec;
        var optimizerSpec = spec.Optimizer;
        string formula = _run.Objective.Describe(spec.Objective);
        _log($"DualHeadDistill: {formula}");
        var warnings = ShortRunWarnings(pass.TotalSteps, pass.StepsPerEpoch, _settings.Epochs, optimizerSpec.WarmupSteps).ToList();
        if (optimizerSpec.Precision == DualHeadPrecision.BFloat16 && _device.type == DeviceType.CPU && Native.CpuBFloat16.IsNative == false)
            warnings.Add("Precision = BFloat16 on a CPU without native bfloat16 arithmetic (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): libtorch emulates it, so training is slower than with Float32.");
        if (optimizerSpec.Precision == DualHeadPrecision.BFloat16 && _device.type == DeviceType.CPU && Native.CpuBFloat16.IsNative == true && !Native.CpuBFloat16.IsCapped)
            warnings.Add(Native.CpuBFloat16.NotRepeatableWarning);
        if (optimizerSpec.Precision == DualHeadPrecision.Auto)
            throw new InvalidOperationException("The run's spec holds Precision = Auto; Fit resolves it to Float32 or BFloat16 before training.");
        string precisionReason = _settings.Precision is { } choice && choice.Precision == optimizerSpec.Precision ? choice.Reason : $"Precision = {optimizerSpec.Precision}";
        _log($"DualHeadDistill: precision {optimizerSpec.Precision}: {precisionReason}");
        foreach (var warning in warnings) _warn($"DualHeadDistill: warning: {warning}");
        string standardization = student.InputStandardization is { } norm ? $"; input standardised per channel ({norm.Statistics})" : "";
        _log(FormattableString.Invariant(
            $"DualHeadDistill: objective {_run.Objective.Name}; student {student.Description}{standardization}; {train.LabeledRows} labeled + {train.UnlabeledRows} unlabeled rows; {_settings.Epochs} epochs x {pass.StepsPerEpoch} steps (batches {spec.Batches}){(spec.Images is { } img ? $"; {img}, {_settings.DataWorkers} data workers" : "")}; {optimizerSpec}; device {_device} ({get_num_threads()} intra-op threads); seed {seed}"));
        if (!spec.Tuning.IsNone) _log($"DualHeadDistill: fine-tuning: {spec.Tuning}");
        if (spec.Resolution is { } resolution) _log($"DualHeadDistill: {resolution}");
        return (warnings, precisionReason, formula);
    }

    /// <summary>
    /// Eval mode against batch statistics on the validation rows: far apart, the running statistics do not fit the
    /// weights (a warning). Returns the batch-statistics accuracy, or null.
    /// </summary>
    private double? BatchNormCheck(DualHeadStudent student, TrainingSet? validation, Loop.TrainingPass pass, bool restored, List<string> warnings)
    {
        var epochs = pass.Epochs;
        double? keptAccuracy = restored ? pass.Stopping!.BestAccuracy : epochs.Count > 0 ? epochs[^1].ValidationAccuracy : null;
        double? batchStatisticsAccuracy = validation is not null && keptAccuracy is not null && Recipes.PreciseBatchNorm.Layers(student).Count > 0
            ? Recipes.PreciseBatchNorm.BatchStatisticsAccuracy(student, pass.Scorer, validation, student.HasTwoHeads ? _settings.Alpha : 1f, _settings.Beta, _settings.ScoringBatchSize, _cancel)
            : null;
        if (batchStatisticsAccuracy is double batchAccuracy && keptAccuracy is double lastAccuracy
            && Math.Abs(batchAccuracy - lastAccuracy) * 100 > DualHeadDefaults.BatchNormWarningPoints)
        {
            string bnWarning = FormattableString.Invariant(
                $"validation accuracy in eval mode ({lastAccuracy:P1}, BatchNorm running statistics) and with batch statistics ({batchAccuracy:P1}) differ by more than {DualHeadDefaults.BatchNormWarningPoints} points: the running statistics do not fit the trained weights, and the saved model scores as in eval mode. ") +
                (pass.PreciseBatchNorm ? "Raise PreciseBatchNormBatches, or check that validation rows look like training rows." : "Set PreciseBatchNormBatches (Precise BatchNorm recomputes them after training)" + (_run.Spec.Tuning.FreezeBatchNorm ? " and turn off FreezeBatchNormStatistics." : "."));
            warnings.Add(bnWarning);
            _warn($"DualHeadDistill: warning: {bnWarning}");
        }
        return batchStatisticsAccuracy;
    }

    /// <summary>A report of the run so far (also used for per-epoch checkpoints).</summary>
    internal static DualHeadTrainingReport Report(TrainingSpec spec, string formula, DualHeadStudent student, Device device, int labeledRows, int unlabeledRows,
        int totalSteps, double readSeconds, IReadOnlyList<DualHeadEpochReport> epochs, string? precisionReason = null) =>
        new(spec.Objective.Name, formula, student.Description, device.ToString(), student.ParameterCount, labeledRows, unlabeledRows, totalSteps, readSeconds, 0, 0, [.. epochs])
        {
            IntraOpThreads = get_num_threads(),
            InputStatistics = student.InputStandardization?.Statistics,
            Precision = spec.Optimizer.Precision,
            PrecisionReason = precisionReason,
        };

    /// <summary>Warnings for a run too short to mean anything: few steps, or a schedule that is over within the first epoch.</summary>
    internal static IReadOnlyList<string> ShortRunWarnings(int totalSteps, int stepsPerEpoch, int epochs, int warmupSteps)
    {
        var warnings = new List<string>();
        if (totalSteps < ShortRunSteps)
            warnings.Add($"this run has only {totalSteps} optimisation steps ({epochs} epochs x {stepsPerEpoch}); fewer than {ShortRunSteps} steps are too few for the accuracy figures to mean much. Add unlabeled rows or raise NumberOfEpochs.");
        if (totalSteps <= stepsPerEpoch)
            warnings.Add($"the learning rate schedule (warm-up {warmupSteps}, cosine decay) reaches zero within the first epoch ({totalSteps} steps in all); later rows of the epoch barely train. Raise NumberOfEpochs.");
        else if (warmupSteps >= totalSteps)
            warnings.Add($"WarmupSteps = {warmupSteps} is not below the {totalSteps} steps of the run: the learning rate never reaches its peak.");
        return warnings;
    }
}
