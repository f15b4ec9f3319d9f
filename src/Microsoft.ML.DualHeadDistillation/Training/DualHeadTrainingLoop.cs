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

    /// <summary>Fewer optimisation steps than this make a run too short for its figures to mean much.</summary>
    public const int ShortRunSteps = 100;

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
            Epochs = 1, TimeBudget = null, MaxStepsPerEpoch = Recipes.TimeBudget.ProbeSteps, PreciseBatchNormBatches = 0, EarlyStoppingPatience = 0,
            Progress = null, StepProgress = clock, GradientConflictDiagnostic = false,
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
    private TrainingRows Rows(TrainingSet train, int seed)
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
        var spec = _run.Spec;
        var objective = _run.Objective;
        int epochsWanted = _settings.Epochs;
        bool teacher = objective.UsesTeacher, unlabeled = objective.UsesUnlabeledRows;
        var rows = Rows(train, seed);
        var source = _run.Batches.Create(new BatchSourceContext(rows, spec.Batches, seed, teacher, unlabeled, _settings.DataWorkers));
        int stepsPerEpoch = Math.Min(source.StepsPerEpoch, _settings.MaxStepsPerEpoch ?? int.MaxValue);
        if (stepsPerEpoch < 1) throw new InvalidOperationException($"Batch source '{spec.Batches.Source}' has {stepsPerEpoch} steps per epoch.");
        long totalStepsLong = (long)stepsPerEpoch * epochsWanted;
        if (totalStepsLong > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.NumberOfEpochs), epochsWanted, $"NumberOfEpochs x {stepsPerEpoch} steps per epoch is more than {int.MaxValue} steps.");
        int totalSteps = (int)totalStepsLong;
        var optimizerSpec = spec.Optimizer;
        string formula = objective.Describe(spec.Objective);
        _log($"DualHeadDistill: {formula}");
        int threads = get_num_threads();
        var warnings = ShortRunWarnings(totalSteps, stepsPerEpoch, epochsWanted, optimizerSpec.WarmupSteps).ToList();
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
            $"DualHeadDistill: objective {objective.Name}; student {student.Description}{standardization}; {train.LabeledRows} labeled + {train.UnlabeledRows} unlabeled rows; {epochsWanted} epochs x {stepsPerEpoch} steps (batches {spec.Batches}){(spec.Images is { } img ? $"; {img}, {_settings.DataWorkers} data workers" : "")}; {optimizerSpec}; device {_device} ({threads} intra-op threads); seed {seed}"));

        var tuning = spec.Tuning;
        if (!tuning.IsNone) _log($"DualHeadDistill: fine-tuning: {tuning}");
        if (spec.Resolution is { } resolution)
        {
            if (!student.Backbone.AcceptsOtherImageSizes)
                throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ResolutionSchedule), $"ResolutionSchedule resizes the images, but backbone '{spec.Student.Backbone.Name}' reads only its full ImageShape (it does not pool its features globally); use a TorchVision backbone or an OnnxCnn graph with GlobalAveragePool, or no schedule.");
            _log($"DualHeadDistill: {resolution}");
        }
        int? trainingHeight = null;
        int[]? scheduleHeights = spec.Resolution?.Values();
        // One AdamW group, or (backbone lr scaled) the backbone's parameters and then everything else (heads).
        var backboneParameters = student.Backbone.parameters().ToArray();
        float[] lrScales = tuning.BackboneLearningRateScale == 1f ? [1f] : [tuning.BackboneLearningRateScale, 1f];
        using var optimizer = lrScales.Length == 1
            ? optim.AdamW(student.parameters(), optimizerSpec.LearningRate, weight_decay: optimizerSpec.WeightDecay)
            : optim.AdamW(new[]
            {
                new TorchSharp.Modules.AdamW.ParamGroup(backboneParameters, lr: optimizerSpec.LearningRate * lrScales[0], weight_decay: optimizerSpec.WeightDecay),
                // Materialised, by reference: TorchSharp keeps the enumerable, and Tensor.Equals compares values.
                new TorchSharp.Modules.AdamW.ParamGroup(student.parameters().Except(backboneParameters, ReferenceEqualityComparer.Instance).Cast<TorchSharp.Modules.Parameter>().ToArray(), lr: optimizerSpec.LearningRate, weight_decay: optimizerSpec.WeightDecay),
            }, optimizerSpec.LearningRate, weight_decay: optimizerSpec.WeightDecay);
        // BFloat16 and/or channels-last convolutions: a copy computes forward and backward; the optimizer updates the float32 master weights.
        bool bfloat16 = optimizerSpec.Precision == DualHeadPrecision.BFloat16, channelsLast = _settings.ChannelsLast && ComputeCopy.HasConvolutions(student);
        using var computeCopy = bfloat16 || channelsLast
            ? ComputeCopy.Create(student, () => StudentFactory.Create(spec.Student, seed: null, _device), bfloat16, channelsLast)
            : null;
        var compute = computeCopy?.Student ?? student;
        if (computeCopy is { ChannelsLastConvolutions: > 0 } copy) _log($"DualHeadDistill: the training steps run {copy.ChannelsLastConvolutions} convolutions channels-last (NHWC)");
        // Frozen stages: no gradient through them, their parameters fixed and their BatchNorm statistics kept; outputs cached when inputs repeat.
        var frozenStageParameters = FreezeStages(student, compute, tuning.FrozenStages);
        using var stageCache = tuning.FrozenStages > 0 ? StageCache(train, rows, spec, scheduleHeights is not null) : null;
        // Precise BatchNorm reads un-augmented rows (center crops of stored images) at the size the student is evaluated at.
        bool preciseBn = _settings.PreciseBatchNormBatches > 0 && !tuning.FreezeBatchNorm && Recipes.PreciseBatchNorm.Layers(student).Count > 0;
        var centerRows = !preciseBn ? null : new TrainingRows(train, train.Store is null ? null
            : new Augmentation.ImageSampler(Specs.ImageAugmentation.None, spec.Images!.Crop.Channels, spec.Images.StorageSize, spec.Images.Crop, seed));
        int preciseBnBatchSize = spec.Batches.LabeledBatchSize + spec.Batches.UnlabeledBatchSize;
        int preciseBnRows = 0;
        var scorer = new StudentScorer(student, _device);
        var epochs = new List<DualHeadEpochReport>(resume?.Report?.Epochs ?? []);
        int firstEpoch = 1;
        if (resume is not null)
        {
            if (resume.State.OptimizerState is { } saved)
            {
                using var reader = new BinaryReader(new MemoryStream(saved, writable: false));
                optimizer.load_state_dict(reader);
            }
            firstEpoch = resume.CompletedEpochs + 1;
            for (int e = 1; e < firstEpoch; e++) source.SkipEpoch(); // replay the batch order of the finished epochs
            _log($"DualHeadDistill: resuming after epoch {resume.CompletedEpochs}{(resume.StepsIntoEpoch > 0 ? $" and {resume.StepsIntoEpoch} steps of epoch {resume.CompletedEpochs + 1}" : "")} (step {resume.CompletedSteps}){(resume.HasOptimizerState ? "" : "; the checkpoint has no optimizer state, AdamW starts afresh")}");
        }
        int d = train.FeatureSize, k = train.ClassCount;
        using var stopping = _settings.EarlyStoppingPatience > 0 && validation is not null ? new Recipes.EarlyStopping(_settings.EarlyStoppingPatience) : null;
        if (stopping is not null && resume is not null)
            _log($"DualHeadDistill: early stopping (patience {stopping.Patience}) restarts its count at the resumed epoch {firstEpoch}; epochs before it are not candidates for the best");
        int? stoppedAfter = null;
        var total = Stopwatch.StartNew();
        int step = resume?.CompletedSteps ?? 0;
        double lr = 0;
        long waitTicks = 0;
        for (int epoch = firstEpoch; epoch <= epochsWanted; epoch++)
        {
            var watch = Stopwatch.StartNew();
            double ceSum = 0, kdSum = 0, lossSum = 0;
            int steps = 0;
            (double Backbone, double? Head)? cosine = null;
            int skip = 0;
            if (epoch == firstEpoch && resume is { State.StepsIntoEpoch: > 0 } midEpoch)
            {
                // A run stopped mid-epoch: the epoch's batch order is replayed and its first steps are not trained again.
                skip = midEpoch.State.StepsIntoEpoch;
                if (skip > stepsPerEpoch || midEpoch.CompletedSteps != (long)midEpoch.CompletedEpochs * stepsPerEpoch + skip)
                    throw new ArgumentException($"The checkpoint stopped {skip} steps into epoch {epoch} at step {midEpoch.CompletedSteps}, which does not fit this run's {stepsPerEpoch} steps per epoch: resume on the same data with the same batch sizes.", "resumeFrom");
                steps = skip;
                if (midEpoch.State.EpochSums is [var ce0, var kd0, var loss0]) (ceSum, kdSum, lossSum) = (ce0, kd0, loss0);
            }
            bool frozen = epoch <= tuning.FreezeBackboneEpochs;
            foreach (var p in backboneParameters) p.requires_grad = !frozen && !frozenStageParameters.Contains(p); // AdamW skips parameters without a gradient
            computeCopy?.MirrorRequiresGrad();
            // The master too (under BFloat16 it only runs GradientConflictDiagnostic): the same modes as the copy that trains.
            foreach (var model in computeCopy is null ? [student] : new[] { student, compute })
            {
                model.train();
                // A frozen backbone is frozen whole: its BatchNorm layers keep (and normalise with) their running statistics too.
                if (tuning.FreezeBatchNorm) FreezeBatchNorm(model);
                else if (frozen) FreezeBatchNorm(model.Backbone);
                foreach (var stage in model.Backbone.StageModules(model.Backbone.FrozenStages)) FreezeBatchNorm(stage);
            }
            using var batches = source.NextEpoch().GetEnumerator();
            while (true)
            {
                long waitStart = Stopwatch.GetTimestamp();
                if (steps >= stepsPerEpoch || !batches.MoveNext()) break;
                waitTicks += Stopwatch.GetTimestamp() - waitStart;
                if (skip > 0)
                {
                    skip--;
                    _cancel.ThrowIfRequested();
                    continue;
                }
                var batch = batches.Current;
                if (_cancel.IsRequested && Interrupted is not null && steps > 0)
                {
                    computeCopy?.BuffersToMaster();
                    Interrupted(student, new TrainingState(seed, epoch - 1, step, OptimizerState(optimizer), steps, [ceSum, kdSum, lossSum]) { PlannedEpochs = epochsWanted }, epochs);
                }
                _cancel.ThrowIfRequested();
                lr = LearningRateSchedule.At(step, totalSteps, optimizerSpec.WarmupSteps, optimizerSpec.LearningRate);
                int g = 0;
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr * lrScales[g++];

                if (scheduleHeights is not null)
                {
                    int height = Specs.ResolutionScheduleSpec.HeightAt(scheduleHeights, step, totalSteps);
                    if (height != trainingHeight)
                    {
                        _log($"DualHeadDistill: from step {step + 1}, images at height {height}");
                        trainingHeight = height;
                    }
                    compute.TrainingImageHeight = height;
                }
                using var scope = NewDisposeScope();
                int nl = batch.LabeledRows, n = batch.Rows;
                if (nl < 1) throw new InvalidOperationException($"Batch source '{spec.Batches.Source}' produced a batch without labeled rows.");
                // The step's tensors are disposed (scope) before the source refills its arrays at the next step.
                var x = tensor(Exact(batch.Features, n * d), [n, d]).to(_device);
                var y = tensor(batch.Labels, [nl]).to(_device);
                var t = teacher ? tensor(Exact(batch.Teacher, n * k), [n, k]).to(_device) : null;

                if (_settings.GradientConflictDiagnostic && cosine is null && steps == 0 && teacher)
                    cosine = GradientCosine(student, optimizer, x, y, t, nl); // the float32 master's gradients, also under BFloat16

                var (ceLabeled, kdAll) = stageCache is not null && batch.RowIndices is { } rowIndices
                    ? compute.ForwardTrainingFromPrefix(FrozenOutputs(stageCache, compute, x, rowIndices.AsSpan(0, n), epoch), nl)
                    : compute.ForwardTraining(x, nl);
                if (computeCopy is { IsBFloat16: true }) (ceLabeled, kdAll) = (ceLabeled.to(ScalarType.Float32), kdAll.to(ScalarType.Float32)); // the loss in float32
                var loss = objective.Compute(new ObjectiveInputs(ceLabeled, kdAll, y, t, nl), spec.Objective);
                optimizer.zero_grad();
                computeCopy?.ZeroGrad();
                loss.Total.backward();
                computeCopy?.GradientsToMaster();
                // One host read per step: the loss, its terms and whether every weight is still finite (below).
                Tensor Figure(Tensor? term) => term is null ? full(Array.Empty<long>(), float.NaN, device: loss.Total.device) : term.detach().reshape([]);
                var figures = new[] { Figure(loss.Total), Figure(loss.Ce), Figure(loss.Kd) };
                bool lossFinite = true;
                double lossValue = 0, ceValue = 0;
                double? kdTerm = null;
                void ReadFigures(Tensor? weightsFinite)
                {
                    using var values = stack(weightsFinite is null ? figures : [.. figures, weightsFinite.to(ScalarType.Float32).reshape([]).to(loss.Total.device)]).cpu();
                    var v = values.data<float>().ToArray();
                    (lossValue, ceValue, kdTerm) = (v[0], loss.Ce is null ? double.NaN : v[1], loss.Kd is null ? null : v[2]);
                    lossFinite = double.IsFinite(lossValue);
                    if (weightsFinite is not null && lossFinite && v[3] == 0)
                        throw NonFiniteGuard.Diverged($"parameter '{NonFiniteGuard.FirstNonFiniteParameter(student)}' is not finite after the update", step + 1, epoch, ceValue, kdTerm, lossValue, spec);
                }
                try
                {
                    optimizer.step();
                }
                catch (System.Runtime.InteropServices.ExternalException e)
                {
                    ReadFigures(null);
                    if (!lossFinite) throw NonFiniteGuard.Diverged("the loss is not finite", step + 1, epoch, ceValue, kdTerm, lossValue, spec);
                    // libtorch refuses values that overflow float (e.g. LearningRate 3e38): report it as divergence.
                    throw NonFiniteGuard.Diverged($"the optimizer step failed ({e.Message.Split('\n')[0].Trim()})", step + 1, epoch, ceValue, kdTerm, lossValue, spec, e);
                }
                // A non-finite loss is reported as such (it is why the weights are no longer finite).
                ReadFigures(NonFiniteGuard.AllFinite(student));
                if (!lossFinite)
                    throw NonFiniteGuard.Diverged("the loss is not finite", step + 1, epoch, ceValue, kdTerm, lossValue, spec);
                computeCopy?.WeightsFromMaster();
                double kdValue = kdTerm ?? double.NaN;

                ceSum += ceValue;
                kdSum += kdValue;
                lossSum += lossValue;
                steps++;
                step++;
                _settings.StepProgress?.Report(new DualHeadStepReport(epoch, epochsWanted, steps, stepsPerEpoch, step, totalSteps, ceValue, kdValue, lossValue, lr, watch.Elapsed.TotalSeconds));
            }
            compute.TrainingImageHeight = null; // Precise BatchNorm, validation and checkpoints see the full size
            computeCopy?.BuffersToMaster(); // BatchNorm statistics, before the master is scored or checkpointed
            if (centerRows is not null && !frozen && !_cancel.IsRequested)
            {
                preciseBnRows = Recipes.PreciseBatchNorm.Recompute(student, centerRows, _settings.PreciseBatchNormBatches, preciseBnBatchSize, seed + epoch, _device, _cancel);
                computeCopy?.BuffersFromMaster(); // the copy goes on from the recomputed statistics, as the master would
                _log($"DualHeadDistill: Precise BatchNorm: running statistics recomputed over {preciseBnRows} rows at {Recipes.PreciseBatchNorm.InputSize(student)}");
            }
            if (_cancel.IsRequested && Interrupted is not null && steps > 0)
            {
                // Stopped after the epoch's last step (or while it was being validated): the whole epoch is kept; a resumed
                // run replays it without training and validates it.
                Interrupted(student, new TrainingState(seed, epoch - 1, step, OptimizerState(optimizer), steps, [ceSum, kdSum, lossSum]) { PlannedEpochs = epochsWanted }, epochs);
            }
            _cancel.ThrowIfRequested();
            double? validationAccuracy;
            try
            {
                validationAccuracy = validation is null
                    ? null
                    : scorer.Accuracy(validation.Features, validation.Labels, student.HasTwoHeads ? _settings.Alpha : 1f, _settings.Beta, _settings.ScoringBatchSize, _cancel);
            }
            catch (OperationCanceledException) when (Interrupted is not null)
            {
                Interrupted(student, new TrainingState(seed, epoch - 1, step, OptimizerState(optimizer), steps, [ceSum, kdSum, lossSum]) { PlannedEpochs = epochsWanted }, epochs);
                throw;
            }
            var report = new DualHeadEpochReport(epoch, epochsWanted, steps, ceSum / steps, kdSum / steps, lossSum / steps, lr, validationAccuracy,
                watch.Elapsed.TotalSeconds, cosine?.Backbone, cosine?.Head);
            epochs.Add(report);
            _log($"DualHeadDistill: {report}");
            _settings.Progress?.Report(report);
            EpochCompleted?.Invoke(student, new TrainingState(seed, epoch, step, OptimizerState(optimizer)) { PlannedEpochs = epochsWanted }, epochs);
            if (stopping is not null && validationAccuracy is double accuracy && stopping.Observe(student, epoch, accuracy) && epoch < epochsWanted)
            {
                stoppedAfter = epoch;
                _log(FormattableString.Invariant($"DualHeadDistill: early stopping after epoch {epoch}: {stopping.Patience} epochs without a better validation accuracy than epoch {stopping.BestEpoch}'s {stopping.BestAccuracy:P2}"));
                break;
            }
            if (_settings.TimeBudget is { } budget && epoch < epochsWanted && budget.NextEpochOverruns(watch.Elapsed.TotalSeconds))
            {
                stoppedAfter = epoch;
                _log(FormattableString.Invariant($"DualHeadDistill: time budget {budget.Budget}: stopping after epoch {epoch} of {epochsWanted}; {budget.Elapsed.TotalSeconds:0}s spent and an epoch takes {watch.Elapsed.TotalSeconds:0}s"));
                break;
            }
        }
        bool restored = stopping is not null && stopping.BestEpoch > 0 && stopping.BestEpoch != epochs[^1].Epoch && stopping.RestoreBest(student);
        if (restored)
            _log(FormattableString.Invariant($"DualHeadDistill: the student is the one after epoch {stopping.BestEpoch} (best validation accuracy, {stopping.BestAccuracy:P2})"));
        double trainSeconds = total.Elapsed.TotalSeconds;
        foreach (var p in backboneParameters) p.requires_grad = true;
        student.eval();
        if (stageCache is not null)
            _log(FormattableString.Invariant($"DualHeadDistill: frozen stages: {stageCache.FilledSlots} outputs cached ({stageCache.Bytes / 1048576.0:F0} MiB), read back {stageCache.Reads} times"));
        // Eval mode against batch statistics on the validation rows: far apart, the running statistics do not fit the weights.
        double? keptAccuracy = restored ? stopping!.BestAccuracy : epochs.Count > 0 ? epochs[^1].ValidationAccuracy : null;
        double? batchStatisticsAccuracy = validation is not null && keptAccuracy is not null && Recipes.PreciseBatchNorm.Layers(student).Count > 0
            ? Recipes.PreciseBatchNorm.BatchStatisticsAccuracy(student, scorer, validation, student.HasTwoHeads ? _settings.Alpha : 1f, _settings.Beta, _settings.ScoringBatchSize, _cancel)
            : null;
        if (batchStatisticsAccuracy is double batchAccuracy && keptAccuracy is double lastAccuracy
            && Math.Abs(batchAccuracy - lastAccuracy) * 100 > DualHeadDefaults.BatchNormWarningPoints)
        {
            string bnWarning = FormattableString.Invariant(
                $"validation accuracy in eval mode ({lastAccuracy:P1}, BatchNorm running statistics) and with batch statistics ({batchAccuracy:P1}) differ by more than {DualHeadDefaults.BatchNormWarningPoints} points: the running statistics do not fit the trained weights, and the saved model scores as in eval mode. ") +
                (preciseBn ? "Raise PreciseBatchNormBatches, or check that validation rows look like training rows." : "Set PreciseBatchNormBatches (Precise BatchNorm recomputes them after training)" + (tuning.FreezeBatchNorm ? " and turn off FreezeBatchNormStatistics." : "."));
            warnings.Add(bnWarning);
            _warn($"DualHeadDistill: warning: {bnWarning}");
        }
        int stepsThisRun = step - (resume?.CompletedSteps ?? 0);
        var finalReport = Report(spec, formula, student, _device, train.LabeledRows, train.UnlabeledRows, totalSteps, readSeconds, epochs) with
        {
            TrainSeconds = trainSeconds,
            MeanStepMilliseconds = 1000 * trainSeconds / Math.Max(1, stepsThisRun),
            IntraOpThreads = threads,
            Warnings = warnings,
            DataWaitSeconds = (double)waitTicks / Stopwatch.Frequency,
            FineTuning = tuning.ToString(),
            PrecisionReason = precisionReason,
            PreciseBatchNormRows = preciseBnRows,
            BestEpoch = stopping?.BestEpoch > 0 ? stopping.BestEpoch : null,
            StoppedAfterEpoch = stoppedAfter,
            BatchStatisticsValidationAccuracy = batchStatisticsAccuracy,
            FrozenStageCacheBytes = stageCache?.Bytes,
            FrozenStageSeconds = _frozenStageSeconds,
        };
        student.Backbone.FrozenStages = 0;
        return (finalReport, new TrainingState(seed, stoppedAfter ?? epochsWanted, step, OptimizerState(optimizer)) { PlannedEpochs = epochsWanted });
    }

    /// <summary>Puts every BatchNorm layer of a module (itself included) in eval mode: it normalises with (and keeps) its running statistics while its affine weights train.</summary>
    private static void FreezeBatchNorm(nn.Module student)
    {
        foreach (var module in student.modules().Prepend(student))
            if (module is TorchSharp.Modules.BatchNorm1d or TorchSharp.Modules.BatchNorm2d or TorchSharp.Modules.BatchNorm3d) module.eval();
    }

    /// <summary>
    /// Freezes the first <paramref name="stages"/> stages of the student's backbone (and of its compute copy): they run
    /// without gradients from now on. Returns their parameters in the student (kept at requires_grad = false).
    /// </summary>
    private HashSet<object> FreezeStages(DualHeadStudent student, DualHeadStudent compute, int stages)
    {
        var frozen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        if (stages == 0) return frozen;
        var names = student.Backbone.StageNames;
        if (names.Count == 0)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.FrozenStages), stages, $"FrozenStages = {stages}, but backbone '{_run.Spec.Student.Backbone.Name}' has no stages to freeze; use a TorchVision backbone (ResNet, MobileNet), an OnnxCnn graph, or FrozenStages = 0.");
        if (stages > names.Count)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.FrozenStages), stages, $"FrozenStages = {stages}, but backbone '{_run.Spec.Student.Backbone.Name}' has {names.Count} stages ({string.Join(", ", names)}).");
        foreach (var model in compute == student ? [student] : new[] { student, compute }) model.Backbone.FrozenStages = stages;
        foreach (var module in student.Backbone.StageModules(stages))
            foreach (var p in module.parameters()) frozen.Add(p);
        if (_run.Spec.Tuning.WeightsHash is null && !student.Backbone.StartsPretrained)
            _warn($"DualHeadDistill: warning: FrozenStages = {stages} without BackboneWeights: the frozen stages keep their seeded random weights for the whole run.");
        _log($"DualHeadDistill: frozen stages {string.Join(", ", names.Take(stages))} ({frozen.Sum(p => ((Tensor)p).numel()):N0} parameters): no backward through them, BatchNorm statistics kept");
        return frozen;
    }

    /// <summary>The cache of the frozen stages' outputs, or null (with the reason logged) when the rows' inputs change between epochs.</summary>
    private Recipes.FrozenStageCache? StageCache(TrainingSet train, TrainingRows rows, TrainingSpec spec, bool resolutionSchedule)
    {
        string? why = !_settings.CacheFrozenStages ? "CacheFrozenStageOutputs is false"
            : Recipes.FrozenStageCache.WhyNot(rows, spec.Images, resolutionSchedule);
        if (why is not null)
        {
            _log($"DualHeadDistill: the frozen stages' outputs are not cached ({why}): they run at every step");
            return null;
        }
        string folder = train.Store is { } store ? Path.GetDirectoryName(Path.GetFullPath(store.Path))! : Path.GetTempPath();
        var cache = new Recipes.FrozenStageCache(train.Rows, Recipes.FrozenStageCache.ViewsOf(spec.Images), folder);
        _log($"DualHeadDistill: the frozen stages' outputs are cached in {folder} as rows are first trained on ({Recipes.FrozenStageCache.ViewsOf(spec.Images)} view{(Recipes.FrozenStageCache.ViewsOf(spec.Images) == 1 ? "" : "s")} per row)");
        return cache;
    }

    /// <summary>The frozen stages' outputs for a batch: from the cache when it holds every row, else computed (and the new rows cached).</summary>
    private Tensor FrozenOutputs(Recipes.FrozenStageCache cache, DualHeadStudent compute, Tensor x, ReadOnlySpan<int> rows, int epoch)
    {
        int view = cache.ViewOf(epoch);
        if (cache.Holds(rows, view)) return cache.Read(rows, view, _device);
        long start = Stopwatch.GetTimestamp();
        var prefix = compute.FrozenPrefix(x);
        cache.Write(rows, view, prefix); // reads the values back to the host: the forward has finished
        _frozenStageSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
        return prefix;
    }

    private double _frozenStageSeconds;

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

    /// <summary>The array itself when it has exactly <paramref name="length"/> values (no copy per step), else a copy of its start.</summary>
    private static float[] Exact(float[] values, int length)
    {
        if (values.Length < length) throw new InvalidOperationException($"A training batch holds {values.Length} values where {length} were expected.");
        return values.Length == length ? values : values.AsSpan(0, length).ToArray();
    }

    private static byte[] OptimizerState(TorchSharp.Modules.AdamW optimizer)
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
            optimizer.save_state_dict(writer);
        return buffer.ToArray();
    }

    /// <summary>
    /// The gradient-conflict diagnostic (DHO paper, Fig. 3): on one batch, the cosine between the gradient
    /// of the objective's weighted CE term and that of its weighted KD term, over the shared backbone's
    /// parameters and, with one head, over the head's. Leaves no gradient behind. Objectives without both
    /// terms report NaN.
    /// </summary>
    private (double Backbone, double? Head) GradientCosine(DualHeadStudent student, optim.Optimizer optimizer, Tensor x, Tensor y, Tensor? t, int nl)
    {
        var objective = _run.Objective;
        var spec = _run.Spec.Objective;
        Tensor[]? Grads(Func<ObjectiveLoss, Tensor?> term, IEnumerable<TorchSharp.Modules.Parameter> parameters)
        {
            optimizer.zero_grad();
            using var scope = NewDisposeScope();
            var (ceLabeled, kdAll) = student.ForwardTraining(x, nl);
            if (term(objective.Compute(new ObjectiveInputs(ceLabeled, kdAll, y, t, nl), spec)) is not { } value) return null;
            value.backward();
            return parameters.Select(p => p.grad is { } g ? g.detach().clone().MoveToOuterDisposeScope() : zeros_like(p).MoveToOuterDisposeScope()).ToArray();
        }
        var backbone = student.Backbone.parameters().ToArray();
        var head = student.HasTwoHeads ? [] : student.CeHead.parameters().ToArray();
        var tracked = backbone.Concat(head).ToArray();
        var ceGrads = Grads(l => l.WeightedCe, tracked);
        var kdGrads = Grads(l => l.WeightedKd, tracked);
        optimizer.zero_grad();
        if (ceGrads is null || kdGrads is null) return (double.NaN, head.Length > 0 ? double.NaN : null);
        double Cos(int from, int count)
        {
            double dot = 0, a = 0, b = 0;
            for (int i = from; i < from + count; i++)
            {
                dot += (ceGrads[i] * kdGrads[i]).sum().item<float>();
                a += (ceGrads[i] * ceGrads[i]).sum().item<float>();
                b += (kdGrads[i] * kdGrads[i]).sum().item<float>();
            }
            return a > 0 && b > 0 ? dot / Math.Sqrt(a * b) : double.NaN;
        }
        double backboneCos = Cos(0, backbone.Length);
        double? headCos = head.Length > 0 ? Cos(backbone.Length, head.Length) : null;
        return (backboneCos, headCos);
    }
}
