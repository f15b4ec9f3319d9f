using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training.Batches;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training.Loop;

/// <summary>
/// One pass of <see cref="DualHeadTrainingLoop"/> over its epochs: the optimizer (<see cref="TrainingOptimizer"/>), where
/// to start (<see cref="ResumePoint"/>), the compute copy and frozen stages, then each epoch's steps
/// (<see cref="TrainingStep"/>), Precise BatchNorm, validation, checkpoints, early stopping and the time budget.
/// </summary>
internal sealed class TrainingPass : IDisposable
{
    private readonly DualHeadTrainingLoop _loop;
    private readonly DualHeadStudent _student;
    private readonly TrainingSet _train;
    private readonly TrainingSet? _validation;
    private readonly int _seed;
    private readonly DualHeadCheckpoint? _resume;
    private readonly TrainingSpec _spec;
    private readonly TrainingObjective _objective;
    private readonly RunSettings _settings;
    private readonly Device _device;
    private readonly BatchSource _source;
    private readonly TrainingRows _rows;
    private readonly int _stepsPerEpoch, _totalSteps, _epochsWanted;
    private readonly StudentScorer _scorer;
    private TrainingOptimizer _optimizer = null!;
    private ComputeCopy? _copy;
    private DualHeadStudent _compute = null!;
    private TrainingStep _trainingStep = null!;
    private FrozenStages _frozen = null!;
    private TrainingRows? _centerRows;
    private Recipes.EarlyStopping? _stopping;
    private ResumePoint _start = ResumePoint.Start;
    private readonly int[]? _scheduleHeights;
    private readonly List<DualHeadEpochReport> _epochs;
    private int _step, _preciseBnRows;
    private int? _trainingHeight, _stoppedAfter;
    private double _lr;
    private long _waitTicks;

    public TrainingPass(DualHeadTrainingLoop loop, DualHeadStudent student, TrainingSet train, TrainingSet? validation, int seed, DualHeadCheckpoint? resume)
    {
        (_loop, _student, _train, _validation, _seed, _resume) = (loop, student, train, validation, seed, resume);
        (_spec, _objective, _settings, _device) = (loop.Resolved.Spec, loop.Resolved.Objective, loop.Settings, loop.Device);
        _epochsWanted = _settings.Epochs;
        _rows = loop.Rows(train, seed);
        _source = loop.Resolved.Batches.Create(new BatchSourceContext(_rows, _spec.Batches, seed, _objective.UsesTeacher, _objective.UsesUnlabeledRows, _settings.DataWorkers));
        _stepsPerEpoch = Math.Min(_source.StepsPerEpoch, _settings.MaxStepsPerEpoch ?? int.MaxValue);
        if (_stepsPerEpoch < 1) throw new InvalidOperationException($"Batch source '{_spec.Batches.Source}' has {_stepsPerEpoch} steps per epoch.");
        long totalSteps = (long)_stepsPerEpoch * _epochsWanted;
        if (totalSteps > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.NumberOfEpochs), _epochsWanted, $"NumberOfEpochs x {_stepsPerEpoch} steps per epoch is more than {int.MaxValue} steps.");
        _totalSteps = (int)totalSteps;
        if (_spec.Resolution is { } resolution && !student.Backbone.AcceptsOtherImageSizes)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ResolutionSchedule), $"ResolutionSchedule resizes the images, but backbone '{_spec.Student.Backbone.Name}' reads only its full ImageShape (it does not pool its features globally); use a TorchVision backbone or an OnnxCnn graph with GlobalAveragePool, or no schedule.");
        _scheduleHeights = _spec.Resolution?.Values();
        _epochs = new List<DualHeadEpochReport>(resume?.Report?.Epochs ?? []);
        _scorer = new StudentScorer(student, _device);
    }

    /// <summary>The optimizer, the compute copy, the frozen stages, Precise BatchNorm's rows and the resume point (after the run's header is logged).</summary>
    public void Prepare()
    {
        var (loop, student, train, validation, seed, resume) = (_loop, _student, _train, _validation, _seed, _resume);
        _optimizer = TrainingOptimizer.Create(student, _spec.Optimizer, _spec.Tuning);
        try
        {
            // BFloat16 and/or channels-last convolutions: a copy computes forward and backward; the optimizer updates the float32 master weights.
            bool bfloat16 = _spec.Optimizer.Precision == DualHeadPrecision.BFloat16, channelsLast = _settings.ChannelsLast && ComputeCopy.HasConvolutions(student);
            _copy = bfloat16 || channelsLast ? ComputeCopy.Create(student, () => StudentFactory.Create(_spec.Student, seed: null, _device), bfloat16, channelsLast) : null;
            _compute = _copy?.Student ?? student;
            if (_copy is { ChannelsLastConvolutions: > 0 } copy) loop.Log($"DualHeadDistill: the training steps run {copy.ChannelsLastConvolutions} convolutions channels-last (NHWC)");
            _trainingStep = new TrainingStep(student, _objective, _spec.Objective, _spec.Optimizer, _optimizer.AdamW, _copy);
            _frozen = FrozenStages.Freeze(student, _compute, _spec.Tuning.FrozenStages, _spec, train, _rows, _settings.CacheFrozenStages, _device, loop.Log, loop.Warn);
            // Precise BatchNorm reads un-augmented rows (center crops of stored images) at the size the student is evaluated at.
            PreciseBatchNorm = _settings.PreciseBatchNormBatches > 0 && !_spec.Tuning.FreezeBatchNorm && Recipes.PreciseBatchNorm.Layers(student).Count > 0;
            _centerRows = !PreciseBatchNorm ? null : new TrainingRows(train, train.Store is null ? null
                : new Augmentation.ImageSampler(ImageAugmentation.None, _spec.Images!.Crop.Channels, _spec.Images.StorageSize, _spec.Images.Crop, seed));
            _start = ResumePoint.From(resume, _stepsPerEpoch, _optimizer, _source, loop.Log);
            _step = _start.Step;
            _stopping = _settings.EarlyStoppingPatience > 0 && validation is not null ? new Recipes.EarlyStopping(_settings.EarlyStoppingPatience) : null;
            if (_stopping is not null && resume is not null)
                loop.Log($"DualHeadDistill: early stopping (patience {_stopping.Patience}) restarts its count at the resumed epoch {_start.FirstEpoch}; epochs before it are not candidates for the best");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int StepsPerEpoch => _stepsPerEpoch;
    public int TotalSteps => _totalSteps;
    public bool PreciseBatchNorm { get; private set; }
    public IReadOnlyList<DualHeadEpochReport> Epochs => _epochs;
    public int Step => _step;
    public int PreciseBatchNormRows => _preciseBnRows;
    public int? StoppedAfter => _stoppedAfter;
    public Recipes.EarlyStopping? Stopping => _stopping;
    public FrozenStages Frozen => _frozen;
    public StudentScorer Scorer => _scorer;
    public long WaitTicks => _waitTicks;

    /// <summary>Every epoch from the resume point on, until the last, early stopping or the time budget.</summary>
    public void Run()
    {
        for (int epoch = _start.FirstEpoch; epoch <= _epochsWanted; epoch++)
            if (!RunEpoch(epoch)) break;
    }

    /// <summary>After training: every backbone parameter takes gradients again (a frozen part included).</summary>
    public void ReleaseBackbone()
    {
        foreach (var p in _optimizer.BackboneParameters) p.requires_grad = true;
    }

    /// <summary>One epoch; false when training stops after it.</summary>
    private bool RunEpoch(int epoch)
    {
        var watch = Stopwatch.StartNew();
        var sums = new double[3];
        int steps = 0, skip = 0;
        (double Backbone, double? Head)? cosine = null;
        if (epoch == _start.FirstEpoch && _start.StepsIntoEpoch > 0)
        {
            // A run stopped mid-epoch: the epoch's batch order is replayed and its first steps are not trained again.
            steps = skip = _start.StepsIntoEpoch;
            if (_start.EpochSums is { } saved) saved.CopyTo(sums, 0);
        }
        bool frozen = epoch <= _spec.Tuning.FreezeBackboneEpochs;
        SetTrainingModes(frozen);
        using var batches = _source.NextEpoch().GetEnumerator();
        while (true)
        {
            long waitStart = Stopwatch.GetTimestamp();
            if (steps >= _stepsPerEpoch || !batches.MoveNext()) break;
            _waitTicks += Stopwatch.GetTimestamp() - waitStart;
            if (skip > 0)
            {
                skip--;
                _loop.Cancel.ThrowIfRequested();
                continue;
            }
            if (_loop.Cancel.IsRequested && steps > 0) Interrupt(epoch, steps, sums);
            _loop.Cancel.ThrowIfRequested();
            var figures = RunStep(batches.Current, epoch, steps, ref cosine);
            (sums[0], sums[1], sums[2]) = (sums[0] + figures.Ce, sums[1] + figures.Kd, sums[2] + figures.Loss);
            steps++;
            _step++;
            _loop.Curve?.Add(_step, figures.Ce, figures.Kd, figures.Loss, _lr);
            _settings.StepProgress?.Report(new DualHeadStepReport(epoch, _epochsWanted, steps, _stepsPerEpoch, _step, _totalSteps, figures.Ce, figures.Kd, figures.Loss, _lr, watch.Elapsed.TotalSeconds));
        }
        return FinishEpoch(epoch, steps, sums, cosine, frozen, watch);
    }

    /// <summary>Train mode, with frozen parts' BatchNorm in eval; gradients only where parameters train this epoch.</summary>
    private void SetTrainingModes(bool backboneFrozen)
    {
        foreach (var p in _optimizer.BackboneParameters) p.requires_grad = !backboneFrozen && !_frozen.Parameters.Contains(p); // AdamW skips parameters without a gradient
        _copy?.MirrorRequiresGrad();
        // The master too (under BFloat16 it only runs GradientConflictDiagnostic): the same modes as the copy that trains.
        foreach (var model in _copy is null ? [_student] : new[] { _student, _compute })
        {
            model.train();
            // A frozen backbone is frozen whole: its BatchNorm layers keep (and normalise with) their running statistics too.
            if (_spec.Tuning.FreezeBatchNorm) FrozenStages.FreezeBatchNorm(model);
            else if (backboneFrozen) FrozenStages.FreezeBatchNorm(model.Backbone);
            foreach (var stage in model.Backbone.StageModules(model.Backbone.FrozenStages)) FrozenStages.FreezeBatchNorm(stage);
        }
    }

    private StepFigures RunStep(TrainingBatch batch, int epoch, int stepsInEpoch, ref (double Backbone, double? Head)? cosine)
    {
        _lr = LearningRateSchedule.At(_step, _totalSteps, _spec.Optimizer.WarmupSteps, _spec.Optimizer.LearningRate);
        _optimizer.SetLearningRate(_lr);
        if (_scheduleHeights is not null)
        {
            int height = ResolutionScheduleSpec.HeightAt(_scheduleHeights, _step, _totalSteps);
            if (height != _trainingHeight)
            {
                _loop.Log($"DualHeadDistill: from step {_step + 1}, images at height {height}");
                _trainingHeight = height;
            }
            _compute.TrainingImageHeight = height;
        }
        using var scope = NewDisposeScope();
        int nl = batch.LabeledRows, n = batch.Rows, d = _train.FeatureSize, k = _train.ClassCount;
        if (nl < 1) throw new InvalidOperationException($"Batch source '{_spec.Batches.Source}' produced a batch without labeled rows.");
        // The step's tensors are disposed (scope) before the source refills its arrays at the next step.
        var x = tensor(Exact(batch.Features, n * d), [n, d]).to(_device);
        var y = tensor(batch.Labels, [nl]).to(_device);
        var t = _objective.UsesTeacher ? tensor(Exact(batch.Teacher, n * k), [n, k]).to(_device) : null;
        if (_settings.GradientConflictDiagnostic && cosine is null && stepsInEpoch == 0 && t is not null)
            cosine = GradientConflict.Cosine(_student, _objective, _spec.Objective, _optimizer.AdamW, x, y, t, nl); // the float32 master's gradients, also under BFloat16
        Func<(Tensor, Tensor)>? fromPrefix = _frozen.Cache is not null && batch.RowIndices is { } rowIndices
            ? () => _compute.ForwardTrainingFromPrefix(_frozen.Outputs(_compute, x, rowIndices.AsSpan(0, n), epoch), nl)
            : null;
        return _trainingStep.Run(x, y, t, nl, fromPrefix, _step + 1, epoch);
    }

    /// <summary>Precise BatchNorm, validation, the epoch's report and checkpoint; false when training stops here.</summary>
    private bool FinishEpoch(int epoch, int steps, double[] sums, (double Backbone, double? Head)? cosine, bool frozen, Stopwatch watch)
    {
        _compute.TrainingImageHeight = null; // Precise BatchNorm, validation and checkpoints see the full size
        _copy?.BuffersToMaster(); // BatchNorm statistics, before the master is scored or checkpointed
        if (_centerRows is not null && !frozen && !_loop.Cancel.IsRequested)
        {
            _preciseBnRows = Recipes.PreciseBatchNorm.Recompute(_student, _centerRows, _settings.PreciseBatchNormBatches, _spec.Batches.LabeledBatchSize + _spec.Batches.UnlabeledBatchSize, _seed + epoch, _device, _loop.Cancel);
            _copy?.BuffersFromMaster(); // the copy goes on from the recomputed statistics, as the master would
            _loop.Log($"DualHeadDistill: Precise BatchNorm: running statistics recomputed over {_preciseBnRows} rows at {Recipes.PreciseBatchNorm.InputSize(_student)}");
        }
        // Stopped after the epoch's last step (or while it was being validated): the whole epoch is kept; a resumed
        // run replays it without training and validates it.
        if (_loop.Cancel.IsRequested && steps > 0) Interrupt(epoch, steps, sums);
        _loop.Cancel.ThrowIfRequested();
        double? validationAccuracy;
        try
        {
            validationAccuracy = _validation is null ? null
                : _scorer.Accuracy(_validation.Features, _validation.Labels, _student.HasTwoHeads ? _settings.Alpha : 1f, _settings.Beta, _settings.ScoringBatchSize, _loop.Cancel);
        }
        catch (OperationCanceledException)
        {
            Interrupt(epoch, steps, sums);
            throw;
        }
        var report = new DualHeadEpochReport(epoch, _epochsWanted, steps, sums[0] / steps, sums[1] / steps, sums[2] / steps, _lr, validationAccuracy,
            watch.Elapsed.TotalSeconds, cosine?.Backbone, cosine?.Head);
        _epochs.Add(report);
        _loop.Log($"DualHeadDistill: {report}");
        _settings.Progress?.Report(report);
        _loop.EpochCompleted?.Invoke(_student, new TrainingState(_seed, epoch, _step, _optimizer.State()) { PlannedEpochs = _epochsWanted }, _epochs);
        if (_stopping is not null && validationAccuracy is double accuracy && _stopping.Observe(_student, epoch, accuracy) && epoch < _epochsWanted)
        {
            _stoppedAfter = epoch;
            _loop.Log(FormattableString.Invariant($"DualHeadDistill: early stopping after epoch {epoch}: {_stopping.Patience} epochs without a better validation accuracy than epoch {_stopping.BestEpoch}'s {_stopping.BestAccuracy:P2}"));
            return false;
        }
        if (_settings.TimeBudget is { } budget && epoch < _epochsWanted && budget.NextEpochOverruns(watch.Elapsed.TotalSeconds))
        {
            _stoppedAfter = epoch;
            _loop.Log(FormattableString.Invariant($"DualHeadDistill: time budget {budget.Budget}: stopping after epoch {epoch} of {_epochsWanted}; {budget.Elapsed.TotalSeconds:0}s spent and an epoch takes {watch.Elapsed.TotalSeconds:0}s"));
            return false;
        }
        return true;
    }

    /// <summary>The state a resumed run continues from, given to the loop's Interrupted hook (a checkpoint).</summary>
    private void Interrupt(int epoch, int steps, double[] sums)
    {
        if (_loop.Interrupted is null) return;
        _copy?.BuffersToMaster();
        _loop.Interrupted(_student, new TrainingState(_seed, epoch - 1, _step, _optimizer.State(), steps, [.. sums]) { PlannedEpochs = _epochsWanted }, _epochs);
    }

    /// <summary>The state at the end of the pass (a finished run's checkpoint).</summary>
    public TrainingState FinalState() => new(_seed, _stoppedAfter ?? _epochsWanted, _step, _optimizer.State()) { PlannedEpochs = _epochsWanted };

    /// <summary>The array itself when it has exactly <paramref name="length"/> values (no copy per step), else a copy of its start.</summary>
    private static float[] Exact(float[] values, int length)
    {
        if (values.Length < length) throw new InvalidOperationException($"A training batch holds {values.Length} values where {length} were expected.");
        return values.Length == length ? values : values.AsSpan(0, length).ToArray();
    }

    public void Dispose()
    {
        _stopping?.Dispose();
        _frozen?.Dispose();
        _copy?.Dispose();
        _optimizer?.Dispose();
    }
}
