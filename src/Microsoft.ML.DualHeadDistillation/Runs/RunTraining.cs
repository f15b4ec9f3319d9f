using Microsoft.ML.DualHeadDistillation.Specs;
using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>A run's trainer options from its spec, and the fit: new, resumed, or finished (alpha and beta re-tuned only).</summary>
internal static class RunTraining
{
    public static void Check(DistillationRunSpec s, TeacherDefinition teacher, RunInputNames names)
    {
        teacher.Check(s.Teacher, names);
        if (!teacher.RunsOnCrops && !s.TeacherView.IsCached)
            throw DistillationRunException.BadSettings($"{names["TeacherView"]} {s.TeacherView} runs the teacher on training crops; a {teacher.Name} holds one label per image: use {names["TeacherView"]} cached (the default) with {names["Teacher.SoftLabels"]}.");
        if (!DualHeadRegistry.Backbones.TryGet(s.Backbone.Name, out _))
            throw DistillationRunException.BadSettings($"{names["Backbone"]} '{s.Backbone}' is not a registered backbone; choose one of: {string.Join(", ", DualHeadRegistry.Backbones.Names)}.");
        if (!DualHeadRegistry.Objectives.TryGet(s.Objective.Name, out _))
            throw DistillationRunException.BadSettings($"{names["Objective"]} '{s.Objective}' is not a registered objective; choose one of: {string.Join(", ", DualHeadRegistry.Objectives.Names)}.");
        if (s.ImageSize < 8) throw DistillationRunException.BadSettings($"{names["ImageSize"]} {s.ImageSize} is too small; expected at least 8 (pixels per side).");
        if (s.Channels is not (1 or 3)) throw DistillationRunException.BadSettings($"{names["Channels"]} {s.Channels}: expected 1 (grey) or 3 (RGB).");
        if (!(s.LearningRate > 0 && float.IsFinite(s.LearningRate))) throw DistillationRunException.BadSettings($"{names["LearningRate"]} {s.LearningRate}: expected a finite number > 0.");
        if (!(s.Temperature > 0 && float.IsFinite(s.Temperature))) throw DistillationRunException.BadSettings($"{names["Temperature"]} {s.Temperature}: expected a finite number > 0.");
        if (s.BackboneWeights is { } weights && !File.Exists(weights)) throw DistillationRunException.BadModel($"{names["BackboneWeights"]} '{weights}' was not found.");
        if (s.Epochs is not null && s.TimeBudget is not null) throw DistillationRunException.BadSettings($"Give {names["Epochs"]} or {names["TimeBudget"]}, not both.");
        foreach (var (value, name, least) in new[] { (s.Epochs ?? 1, "Epochs", 1), (s.LabeledBatchSize, "LabeledBatchSize", 1), (s.UnlabeledBatchSize, "UnlabeledBatchSize", 1), (s.EarlyStoppingPatience, "EarlyStoppingPatience", 0), (s.PreciseBatchNormBatches, "PreciseBatchNormBatches", 0), (s.FrozenStages, "FrozenStages", 0) })
            if (value < least) throw DistillationRunException.BadSettings($"{names[name]} {value}: expected {(least == 0 ? "0 (off) or more" : "at least 1")}.");
    }

    public static DualHeadDistillOptions Options(DistillationRunSpec s, RunTeacher teacher, IDataView validation, string folder) => new()
    {
        FeatureColumnName = "Image",
        TeacherColumnName = RunTeacher.OutputColumn,
        TeacherOutput = s.Teacher.Probabilities ? TeacherOutputKind.Probabilities : TeacherOutputKind.Logits,
        Teacher = s.TeacherView.IsCached ? null : teacher.Model,
        TeacherView = s.TeacherView.View,
        TeacherViews = s.TeacherView.Views,
        Backbone = s.Backbone,
        BackboneSettings = s.BackboneSettings.Count == 0 ? null : new Dictionary<string, string>(s.BackboneSettings),
        BackboneWeights = s.BackboneWeights,
        Objective = s.Objective,
        ImageShape = [s.Channels, s.ImageSize, s.ImageSize],
        Augmentation = s.Augment ? ImageAugmentation.Default : ImageAugmentation.None,
        NumberOfEpochs = s.ResolvedEpochs,
        LabeledBatchSize = s.LabeledBatchSize,
        UnlabeledBatchSize = s.UnlabeledBatchSize,
        LearningRate = s.LearningRate,
        Temperature = s.Temperature,
        Seed = s.Seed,
        Device = s.Device,
        ValidationData = validation,
        GradientConflictDiagnostic = s.GradientCosine,
        Precision = s.Precision,
        EarlyStoppingPatience = s.EarlyStoppingPatience,
        ResolutionSchedule = s.ResolutionSchedule,
        PreciseBatchNormBatches = s.PreciseBatchNormBatches,
        FrozenStages = s.FrozenStages,
        ImageStoreFolder = Path.Combine(s.WorkFolder ?? Path.Combine(folder, RunFolder.Work), "store"),
        CheckpointPath = Path.Combine(folder, RunFolder.Checkpoint),
    };

    /// <summary>Trains, or resumes; a checkpoint whose epochs are all done is not trained again: alpha and beta are searched as the run would have.</summary>
    public static DualHeadDistillTransformer Fit(MLContext ml, DualHeadDistillOptions options, IDataView data, DualHeadCheckpoint? resume, IDistillationRunProgress progress)
    {
        int planned = resume?.State.PlannedEpochs is > 0 and var p ? p : options.NumberOfEpochs;
        if (resume is not null && resume.CompletedEpochs >= planned)
        {
            var trained = resume.ToModel();
            if (options.ValidationData is null || resume.Objective != DualHeadTrainingMode.DualHead) return trained;
            var search = trained.TuneAlphaBeta(options.ValidationData, options.AlphaGrid, options.BetaGrid, options.AlphaBetaNoiseMargin);
            progress.Info($"all {resume.CompletedEpochs} epochs were done; {search}");
            return trained.WithAlphaBeta(search.Alpha, search.Beta); // shares the student with trained
        }
        var trainer = ml.MulticlassClassification.Trainers.DualHeadDistill(options);
        return resume is null ? trainer.Fit(data) : trainer.Fit(data, options.ValidationData, resume);
    }

    /// <summary>Reports the teacher's rows (computed or from the cache) every half second while the store is built.</summary>
    public static IDisposable TeacherPolling(RunTeacher teacher, int rows, IDistillationRunProgress progress, bool active)
    {
        if (!active) return new Polling(null);
        var watch = Stopwatch.StartNew();
        long last = -1;
        var gate = new object();
        return new Polling(new Timer(_ =>
        {
            lock (gate)
            {
                long done = teacher.RowsDone;
                if (done == last || last >= rows) return;
                last = done;
                progress.Teacher(Math.Min(done, rows), rows, watch.Elapsed.TotalSeconds);
            }
        }, null, 500, 500));
    }

    /// <summary>Stops the polling timer and waits for a running callback, so nothing reports after the display has ended.</summary>
    private sealed class Polling(Timer? timer) : IDisposable
    {
        public void Dispose()
        {
            if (timer is null) return;
            using var done = new ManualResetEvent(false);
            if (timer.Dispose(done)) done.WaitOne();
        }
    }
}
