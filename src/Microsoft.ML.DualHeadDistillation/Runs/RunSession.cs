using Microsoft.ML.DualHeadDistillation.Specs;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>One execution of a <see cref="DistillationRun"/>: the teacher, the fit, the evaluation and the saved model.</summary>
internal sealed class RunSession(DistillationRun run, ImageListing listing, string fingerprint, RunPhaseTimes times, Stopwatch clock, IDistillationRunProgress progress, CancellationToken cancel) : IDisposable
{
    private readonly List<string> _logWarnings = [];
    private readonly MLContext _ml = new(seed: run.Spec.Seed);
    private IDataView _trainView = null!, _validationView = null!;
    private RunTeacher? _teacher;
    private int _epochs;
    private string? _epochsChosenBy;

    /// <summary>True once training has started (a checkpoint may exist from here on).</summary>
    public bool TrainingStarted { get; private set; }

    private DistillationRunSpec Spec => run.Spec;
    private RunInputNames Names => run.Names;

    public DualHeadDistillTransformer Train(RunOutputs outputs)
    {
        _ml.Log += (_, e) =>
        {
            if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (_logWarnings) _logWarnings.Add(e.Message);
        };
        var trainItems = listing.Labeled.Concat(listing.Unlabeled).ToList();
        _trainView = ImageRows.Load(_ml, trainItems, listing.Classes);
        _validationView = ImageRows.Load(_ml, listing.Validation, listing.Classes);

        progress.Phase("Teacher");
        var teacher = _teacher = TeacherDefinition.For(Spec.Teacher, Names).Open(new TeacherContext
        {
            ML = _ml,
            Spec = Spec.Teacher,
            Data = _trainView,
            Classes = listing.Classes,
            Names = Names,
            CacheDirectory = Path.Combine(Spec.WorkFolder ?? Path.Combine(run.Folder, RunFolder.Work), "teacher-cache"),
            DefaultRowIdRoot = RunListing.DefaultRowIdRoot(Spec),
        });
        progress.Info($"{teacher.Name}: {teacher.Summary}");
        if (!run.IsTrial) Diagnose(teacher);
        var options = RunTraining.Options(Spec, teacher, _validationView, run.Folder);
        // Cached: the teacher runs once per image as the store is built, from its column; otherwise the trainer runs it on crops.
        var data = Spec.TeacherView.IsCached ? teacher.Transform(_trainView) : _trainView;
        PlanEpochs(options);
        outputs.Add(RunFolder.Settings);
        RunFolder.Write(run.Folder, new RunFolder.RunFile(Spec with { Epochs = _epochs > 0 ? _epochs : null }, fingerprint, _epochs, _epochsChosenBy));
        var resume = run.Previous is null ? null : LoadCheckpoint();

        progress.Phase("Training");
        teacher.ResetCounts();
        options.StepProgress = new SyncProgress<DualHeadStepReport>(progress.Step);
        options.Progress = new SyncProgress<DualHeadEpochReport>(progress.Epoch);
        options.CancellationToken = cancel;
        TrainingStarted = true;
        try
        {
            return progress.Training(() =>
            {
                using var poll = RunTraining.TeacherPolling(teacher, trainItems.Count, progress, Spec.TeacherView.IsCached);
                return RunTraining.Fit(_ml, options, data, resume, progress);
            });
        }
        catch (InvalidDataException e) when (!cancel.IsCancellationRequested)
        {
            // An image whose header reads but whose data does not decode is found when the store is built.
            throw DistillationRunException.BadData($"{e.Message} (Its header read, its data did not: the file is damaged; remove or replace it.)");
        }
    }

    /// <summary>The teacher's diagnosis on the labeled images (and a sample of unlabeled ones), printed before training; the cache keeps its answers for the store.</summary>
    private void Diagnose(RunTeacher teacher)
    {
        progress.Phase("Diagnosis");
        var watch = Stopwatch.StartNew();
        var (diagnosis, why) = RunDiagnosis.Assess(_ml, teacher, listing, RunDiagnosis.DefaultUnlabeledSample, RunDiagnosis.Kind(Spec), cancel);
        times.Teacher += watch.Elapsed.TotalSeconds;
        Diagnosis = diagnosis;
        if (diagnosis is null)
        {
            progress.Info($"no diagnosis of the teacher: {why}");
            return;
        }
        foreach (var line in diagnosis.Describe()) progress.Info(line);
        progress.Info(string.Create(CultureInfo.InvariantCulture, $"diagnosed in {watch.Elapsed.TotalSeconds:0.0} s"));
    }

    /// <summary>The teacher's diagnosis, once <see cref="Train"/> has opened it (null when it has no class names).</summary>
    public Diagnosis.TeacherDiagnosis? Diagnosis { get; private set; }

    /// <summary>The epochs: the spec's, the resumed run's, or chosen by the library from the time left of the budget.</summary>
    private void PlanEpochs(DualHeadDistillOptions options)
    {
        _epochs = run.Previous?.ChosenEpochs ?? Spec.ResolvedEpochs;
        _epochsChosenBy = run.Previous?.EpochsChosenBy;
        if (Spec.TimeBudget is { } budget)
        {
            // What was spent before Fit (listing, teacher) counts; a resumed run keeps its checkpoint's epochs.
            var left = budget - clock.Elapsed;
            options.TimeBudget = left > TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1);
            _epochsChosenBy ??= $"{Names["TimeBudget"]} {budget}";
            if (run.Previous is null) _epochs = 0; // chosen when training starts
        }
        else options.NumberOfEpochs = _epochs;
    }

    private DualHeadCheckpoint LoadCheckpoint()
    {
        string path = Path.Combine(run.Folder, RunFolder.Checkpoint);
        if (!File.Exists(path)) throw DistillationRunException.BadModel($"{Names["Resume"]} '{run.Folder}' has no {RunFolder.Checkpoint}: the run stopped before its first step; start it again without {Names["Resume"]}.");
        DualHeadCheckpoint resume;
        try
        {
            resume = DualHeadCheckpoint.Load(path);
        }
        catch (InvalidDataException e)
        {
            throw DistillationRunException.BadModel(e.Message, e);
        }
        progress.Info($"Checkpoint: {resume.CompletedEpochs} epochs and {resume.StepsIntoEpoch} steps done (step {resume.CompletedSteps}).");
        return resume;
    }

    public DistillationRunResult Finish(DualHeadDistillTransformer model, RunOutputs outputs, Action<DistillationRunResult, RunOutputs>? writeOutputs)
    {
        var report = model.TrainingReport;
        var teacher = _teacher!;
        if (report.Epochs.Count > 0) _epochs = report.Epochs[^1].NumberOfEpochs;
        if (report.TimeBudgetPlan is { } plan)
        {
            _epochsChosenBy = $"{Names["TimeBudget"]} {Spec.TimeBudget}: {plan}";
            progress.Info(_epochsChosenBy);
        }
        times.Teacher = teacher.Seconds + report.TeacherSeconds;
        times.DecodingStore = Math.Max(0, report.ReadSeconds - (Spec.TeacherView.IsCached ? teacher.Seconds : 0));
        times.Training = report.TrainSeconds + report.AlphaBetaSeconds;
        progress.Info(string.Create(CultureInfo.InvariantCulture, $"trained {report.TotalSteps} steps in {report.TrainSeconds:0.0} s ({report.MeanStepMilliseconds:0} ms/step); alpha {model.Alpha:0.##}, beta {model.Beta:0.##}"));

        progress.Phase("Report");
        var watch = Stopwatch.StartNew();
        var scores = Evaluate(model, teacher);
        string folder = run.Folder;
        if (!run.IsTrial)
        {
            DualHeadModel.Save(_ml, model, _trainView.Schema, outputs.Add(RunFolder.Model)); // whole or not at all
            model.ExportToOnnx(outputs.Add(RunFolder.Onnx));
            model.SaveCheckpoint(outputs.Add(RunFolder.Checkpoint));
        }
        times.Report = watch.Elapsed.TotalSeconds;
        times.Total = clock.Elapsed.TotalSeconds;
        var result = new DistillationRunResult(model, listing, Summary(model, scores), folder, _validationView);
        writeOutputs?.Invoke(result, outputs);
        RunFolder.DeleteQuietly(Path.Combine(folder, RunFolder.Work));
        return result;
    }

    /// <summary>Validation accuracy of the teacher (when it can say), the model's Score, and each head of a DHO model.</summary>
    private List<ClassifierScores> Evaluate(DualHeadDistillTransformer model, RunTeacher teacher)
    {
        var teacherWatch = Stopwatch.StartNew();
        var teacherScores = teacher.ValidationScores(_validationView, listing.Classes, out string? noTeacherScores);
        if (noTeacherScores is not null) progress.Info($"the report has no teacher column: {noTeacherScores}");
        times.Teacher += teacherWatch.Elapsed.TotalSeconds;
        var scored = model.Transform(_validationView);
        var labels = ScoredColumns.Labels(scored);
        int k = listing.Classes.Count;
        var scores = new List<ClassifierScores>();
        if (teacherScores is not null) scores.Add(ClassifierScores.From("teacher", labels, teacherScores, k));
        bool dho = model.Objective == DualHeadTrainingMode.DualHead;
        scores.Add(ClassifierScores.From(dho ? "DHO" : model.Objective.Name, labels, ScoredColumns.Vectors(scored, "Score"), k));
        if (dho)
        {
            scores.Add(ClassifierScores.From("CE head", labels, ScoredColumns.Vectors(scored, "CeHeadProbabilities"), k));
            scores.Add(ClassifierScores.From("KD head", labels, ScoredColumns.Vectors(scored, "KdHeadProbabilities"), k));
        }
        return scores;
    }

    private DistillationRunSummary Summary(DualHeadDistillTransformer model, List<ClassifierScores> scores)
    {
        var report = model.TrainingReport;
        var crop = model.Spec.Images!.Crop;
        string[] warnings;
        lock (_logWarnings) warnings = report.Warnings.Concat(_logWarnings.Where(w => !report.Warnings.Any(w.Contains))).Distinct().ToArray();
        return new DistillationRunSummary
        {
            Tool = run.Tool,
            Classes = listing.Classes,
            LabeledImages = listing.Labeled.Count,
            UnlabeledImages = listing.Unlabeled.Count,
            ValidationImages = listing.Validation.Count,
            ValidationSource = listing.ValidationGiven ? "given" : "carved from the labeled images",
            Skipped = listing.Skipped,
            Teacher = _teacher!.Name,
            TeacherMode = Spec.TeacherView.ToString(),
            Student = report.Student,
            StudentParameters = report.StudentParameters,
            Objective = report.Objective,
            Epochs = _epochs,
            EpochsChosenBy = _epochsChosenBy,
            Seed = Spec.Seed,
            Device = report.Device,
            Alpha = model.Alpha,
            Beta = model.Beta,
            MeanStepMilliseconds = report.MeanStepMilliseconds,
            TotalSteps = report.TotalSteps,
            Validation = scores,
            EpochReports = report.Epochs,
            AlphaBeta = report.AlphaBeta,
            Diagnosis = Diagnosis,
            // The trainer's own warnings are in the report; the log adds the others (teacher cache, ML.NET), once each.
            Warnings = warnings,
            Seconds = times,
            Outputs =
            [
                $"{RunFolder.Model}: the ML.NET model (DualHeadModel.Load; scores encoded image bytes)",
                $"{RunFolder.Onnx}: the student for ONNX Runtime (input: the [{crop.Channels}, {crop.Height}, {crop.Width}] center crop in [0, 1])",
                $"{RunFolder.Checkpoint}: the training checkpoint (dualhead export / info; re-tune alpha and beta)",
            ],
        };
    }

    public void Dispose() => _teacher?.Dispose();

    /// <summary>An IProgress that reports on the caller's thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
