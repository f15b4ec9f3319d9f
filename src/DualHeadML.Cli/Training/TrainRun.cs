using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using DualHeadML.Cli.Codegen;
using DualHeadML.Cli.Console;
using DualHeadML.Cli.Data;
using DualHeadML.Cli.Reports;
using DualHeadML.Cli.Teachers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Cli.Training;

/// <summary>The files of a run folder.</summary>
public static class RunFolder
{
    public const string Settings = "run.json", Model = "model.zip", Onnx = "student.onnx", Checkpoint = "checkpoint.zip",
        Metrics = "metrics.json", ReportMd = "report.md", ReportHtml = "report.html", Plots = "plots", Work = ".work";

    /// <summary>The file a --model option names: the file itself, or <paramref name="file"/> inside a run folder.</summary>
    public static string Resolve(string path, string file, string option)
    {
        if (Directory.Exists(path))
        {
            string inside = Path.Combine(path, file);
            if (!File.Exists(inside)) throw new UsageException(ExitCodes.ModelError, $"{option} '{path}' is a folder without {file} (a `dualhead train` output folder holds it).");
            return inside;
        }
        if (!File.Exists(path)) throw new UsageException(ExitCodes.ModelError, $"{option} '{path}' was not found.");
        return path;
    }
}

/// <summary>
/// `dualhead train`: lists the images, fits the teacher, trains the student with DualHeadDistill on the image column
/// (sample store, augmentation, checkpoints after every epoch and on Ctrl+C), evaluates it on the validation images
/// against its heads and the teacher, and writes the outputs.
/// </summary>
public sealed class TrainRun(RunDisplay ui)
{
    /// <summary>What was read from disk for the run: settings, listing and its fingerprint.</summary>
    private sealed record RunFile(TrainSettings Settings, string ListingFingerprint, int ChosenEpochs, string? EpochsChosenBy);

    public int Execute(TrainSettings s, string? resumeFolder, bool force, CancellationToken cancel)
    {
        var total = Stopwatch.StartNew();
        var times = new PhaseTimes();
        RunFile? previous = null;
        if (resumeFolder is not null)
        {
            string file = Path.Combine(resumeFolder, RunFolder.Settings);
            if (!File.Exists(file)) throw new UsageException(ExitCodes.ModelError, $"--resume '{resumeFolder}' holds no {RunFolder.Settings}: it is not the output folder of an interrupted `dualhead train`.");
            try
            {
                previous = JsonSerializer.Deserialize<RunFile>(File.ReadAllText(file), TrainSettings.Json)
                    ?? throw new UsageException(ExitCodes.ModelError, $"'{file}' is empty.");
            }
            catch (JsonException e)
            {
                throw new UsageException(ExitCodes.ModelError, $"'{file}' is not a run.json this version of dualhead can read ({e.Message}); start the run again without --resume.");
            }
            s = previous.Settings with { Output = Path.GetFullPath(resumeFolder) };
            ui.Info($"Resuming the run in {s.Output} with its own settings ({RunFolder.Settings}).");
        }
        string output = s.Output;
        bool created = !Directory.Exists(output);
        if (previous is null && !created && !force && (File.Exists(Path.Combine(output, RunFolder.Settings)) || File.Exists(Path.Combine(output, RunFolder.Model))))
            throw new UsageException(ExitCodes.UsageError, $"--output '{output}' already holds a run. Resume it with --resume {output}, replace it with --force, or choose another --output.");

        if (s.SoftLabels is null) TeacherFactory.CheckFiles(s.Teacher);
        CheckSettings(s); // before listing a large folder

        if (previous is null && !created && force) RemovePreviousRun(output);

        // 1. Listing
        ui.Phase("Images");
        var watch = Stopwatch.StartNew();
        var listing = List(s, cancel);
        times.Listing = watch.Elapsed.TotalSeconds;
        string fingerprint = Fingerprint(listing);
        if (previous is not null && previous.ListingFingerprint != fingerprint)
            throw new UsageException(ExitCodes.DataError, $"The images have changed since the run in '{output}' started (files added, removed or relabeled): a resumed run must see the same data. Start a new run instead.");
        ui.Info(string.Create(CultureInfo.InvariantCulture,
            $"{listing.Classes.Count} classes ({string.Join(", ", listing.Classes)}); {listing.Labeled.Count} labeled, {listing.Unlabeled.Count} unlabeled, {listing.Validation.Count} validation images ({listing.Source}); {listing.Skipped.Count} skipped as unreadable; listed in {times.Listing:0.0} s"));
        foreach (var skipped in listing.Skipped.Take(5)) ui.Warn($"skipped '{skipped.Path}': {skipped.Reason}");
        if (listing.Skipped.Count > 5) ui.Warn($"... {listing.Skipped.Count - 5} more skipped files (listed in report.md)");

        Directory.CreateDirectory(output);
        var written = new List<string>();
        string work = Path.Combine(output, RunFolder.Work);
        string checkpointPath = Path.Combine(output, RunFolder.Checkpoint);
        bool keepForResume = false;
        try
        {
            Directory.CreateDirectory(Path.Combine(work, "store"));
            var ml = new MLContext(seed: s.Seed);
            var warnings = new List<string>();
            ml.Log += (_, e) =>
            {
                if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.Message);
            };
            var trainItems = listing.Labeled.Concat(listing.Unlabeled).ToList();
            var trainView = ImageData.Load(ml, trainItems, listing.Classes);
            var validationView = ImageData.Load(ml, listing.Validation, listing.Classes);

            // 2. Teacher
            ui.Phase("Teacher");
            using var teacher = CreateTeacher(ml, s, listing, work, trainView);
            string teacherName = teacher.Name;
            ui.Info($"{teacherName}: {teacher.Summary}");
            var mode = TeacherMode.Parse(s.TeacherMode);

            var options = Options(s, mode, teacher, validationView, checkpointPath, work);
            // Cached: the teacher runs once per image as the store is built, from its column; otherwise the trainer runs it on crops.
            var data = mode.Kind == "cached" ? teacher.Transform(trainView) : trainView;
            int epochs = previous?.ChosenEpochs ?? s.ResolvedEpochs;
            string? chosenBy = previous?.EpochsChosenBy;
            if (s.TimeBudget is { } budget)
            {
                // The library chooses the epochs (a probe of this run's recipe); what the tool spent before Fit counts.
                // A resumed run keeps its checkpoint's epochs.
                var left = budget - total.Elapsed;
                options.TimeBudget = left > TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1);
                chosenBy ??= $"--time-budget {budget}";
                if (previous is null) epochs = 0; // chosen when training starts
            }
            else options.NumberOfEpochs = epochs;

            // run.json first: an interrupted run can be resumed from here on.
            var runFile = new RunFile(s with { Epochs = epochs > 0 ? epochs : null }, fingerprint, epochs, chosenBy);
            WriteAtomic(Path.Combine(output, RunFolder.Settings), JsonSerializer.Serialize(runFile, TrainSettings.Json));
            written.Add(RunFolder.Settings);
            DualHeadCheckpoint? resume = null;
            if (previous is not null)
            {
                if (!File.Exists(checkpointPath)) throw new UsageException(ExitCodes.ModelError, $"--resume '{output}' has no {RunFolder.Checkpoint}: the run stopped before its first step; start it again without --resume.");
                resume = LoadCheckpoint(checkpointPath);
                if (File.Exists(Path.Combine(output, RunFolder.Model))) throw new UsageException(ExitCodes.UsageError, $"The run in '{output}' has finished (it holds {RunFolder.Model}); nothing to resume.");
                ui.Info($"Checkpoint: {resume.CompletedEpochs} epochs and {resume.StepsIntoEpoch} steps done (step {resume.CompletedSteps}).");
            }

            // 3. Store (+ teacher for Cached) and training
            ui.Phase("Training");
            teacher.ResetCounts();
            watch.Restart();
            DualHeadDistillTransformer model;
            try
            {
                model = ui.Run(sink =>
                {
                    using var poll = TeacherPolling(teacher, trainItems.Count, sink, mode.Kind == "cached");
                    return Fit(ml, options, sink, data, resume, cancel);
                });
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                keepForResume = File.Exists(checkpointPath);
                throw;
            }
            catch (InvalidDataException e)
            {
                // An image whose header reads but whose data does not decode is found when the store is built.
                throw new UsageException(ExitCodes.DataError, $"{e.Message} (Its header read, its data did not: the file is damaged; remove or replace it.)");
            }
            double fitSeconds = watch.Elapsed.TotalSeconds;
            using var _ = model;
            var report = model.TrainingReport;
            if (report.Epochs.Count > 0) epochs = report.Epochs[^1].NumberOfEpochs;
            if (report.TimeBudgetPlan is { } plan)
            {
                chosenBy = $"--time-budget {s.TimeBudget}: {plan}";
                ui.Info(chosenBy);
            }
            double teacherSeconds = teacher.Seconds;
            times.Teacher = teacherSeconds + report.TeacherSeconds;
            times.DecodingStore = Math.Max(0, report.ReadSeconds - (mode.Kind == "cached" ? teacherSeconds : 0));
            times.Training = report.TrainSeconds + report.AlphaBetaSeconds;
            ui.Info(string.Create(CultureInfo.InvariantCulture, $"trained {report.TotalSteps} steps in {report.TrainSeconds:0.0} s ({report.MeanStepMilliseconds:0} ms/step); alpha {model.Alpha:0.##}, beta {model.Beta:0.##}"));

            // 4. Evaluation and outputs
            ui.Phase("Report");
            watch.Restart();
            var teacherWatch = Stopwatch.StartNew();
            var teacherScores = teacher.ValidationScores(validationView, listing.Classes, out string? noTeacherScores);
            if (noTeacherScores is not null) ui.Info($"the report has no teacher column: {noTeacherScores}");
            times.Teacher += teacherWatch.Elapsed.TotalSeconds;
            var scored = model.Transform(validationView);
            var labels = ScoredColumns.Labels(scored);
            var k = listing.Classes.Count;
            var scores = new List<ClassifierScores>();
            if (teacherScores is not null) scores.Add(ClassifierScores.From("teacher", labels, teacherScores, k));
            scores.Add(ClassifierScores.From(model.Mode == DualHeadTrainingMode.DualHead ? "DHO" : model.Mode.Name, labels, ScoredColumns.Vectors(scored, "Score"), k));
            if (model.Mode == DualHeadTrainingMode.DualHead)
            {
                scores.Add(ClassifierScores.From("CE head", labels, ScoredColumns.Vectors(scored, "CeHeadProbabilities"), k));
                scores.Add(ClassifierScores.From("KD head", labels, ScoredColumns.Vectors(scored, "KdHeadProbabilities"), k));
            }
            var student = scores.First(x => x.Name is not "teacher");
            var plots = Plots.All(report, listing.Classes, scores, student).ToList();

            written.Add(RunFolder.Model);
            DualHeadModel.Save(ml, model, trainView.Schema, Path.Combine(output, RunFolder.Model)); // whole or not at all
            written.Add(RunFolder.Onnx);
            model.ExportToOnnx(Path.Combine(output, RunFolder.Onnx));
            model.SaveCheckpoint(checkpointPath);
            written.Add(RunFolder.Checkpoint);
            string plotDir = Path.Combine(output, RunFolder.Plots);
            written.Add(RunFolder.Plots); // before writing: a failure half-way removes what was written
            Directory.CreateDirectory(plotDir);
            foreach (var p in plots) WriteAtomic(Path.Combine(plotDir, p.FileName), p.Svg);
            string version = typeof(DualHeadModel).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "0.1.0";
            written.Add(ConsumptionProject.FolderName);
            ConsumptionProject.Write(Path.Combine(output, ConsumptionProject.FolderName), listing.Classes, model.FeatureColumnName, s.PackageSource, version);
            times.Report = watch.Elapsed.TotalSeconds;
            times.Total = total.Elapsed.TotalSeconds;
            var run = new RunReport
            {
                Tool = $"dualhead {version}",
                Classes = listing.Classes,
                LabeledImages = listing.Labeled.Count,
                UnlabeledImages = listing.Unlabeled.Count,
                ValidationImages = listing.Validation.Count,
                ValidationSource = listing.Source.Contains("--validation", StringComparison.Ordinal) ? "given" : "carved from the labeled images",
                Skipped = listing.Skipped,
                Teacher = teacherName,
                TeacherMode = mode.ToString(),
                Student = report.Student,
                StudentParameters = report.StudentParameters,
                Objective = report.Objective,
                Epochs = epochs,
                EpochsChosenBy = chosenBy,
                Seed = s.Seed,
                Device = report.Device,
                Alpha = model.Alpha,
                Beta = model.Beta,
                MeanStepMilliseconds = report.MeanStepMilliseconds,
                TotalSteps = report.TotalSteps,
                Validation = scores,
                EpochReports = report.Epochs,
                AlphaBeta = report.AlphaBeta,
                // The trainer's own warnings are in the report; the log adds the others (teacher cache, ML.NET), once each.
                Warnings = report.Warnings.Concat(warnings.Where(w => !report.Warnings.Any(w.Contains))).Distinct().ToArray(),
                Seconds = times,
                Outputs =
                [
                    $"{RunFolder.Model}: the ML.NET model (DualHeadModel.Load; scores encoded image bytes)",
                    $"{RunFolder.Onnx}: the student for ONNX Runtime (input: the [{model.Spec.Images!.Crop.Channels}, {model.Spec.Images.Crop.Height}, {model.Spec.Images.Crop.Width}] center crop in [0, 1])",
                    $"{RunFolder.Checkpoint}: the training checkpoint (dualhead export / info; re-tune alpha and beta)",
                    $"{RunFolder.Metrics}, {RunFolder.ReportMd}, {RunFolder.ReportHtml}, {RunFolder.Plots}/: this report",
                    $"{ConsumptionProject.FolderName}/: a generated project that predicts with {RunFolder.Model} (cd {ConsumptionProject.FolderName} && dotnet run -- IMAGE)",
                ],
            };
            written.AddRange([RunFolder.Metrics, RunFolder.ReportMd, RunFolder.ReportHtml]);
            WriteAtomic(Path.Combine(output, RunFolder.Metrics), run.ToJson());
            WriteAtomic(Path.Combine(output, RunFolder.ReportMd), run.ToMarkdown(plots));
            WriteAtomic(Path.Combine(output, RunFolder.ReportHtml), run.ToHtml(plots));
            DeleteQuietly(work);

            ui.Table("Validation accuracy", ["", .. scores.Select(x => x.Name)],
                [["all classes", .. scores.Select(x => x.Accuracy.ToString("P2", CultureInfo.InvariantCulture))],
                 .. listing.Classes.Select((c, i) => (IReadOnlyList<string>)[c, .. scores.Select(x => double.IsNaN(x.PerClassAccuracy[i]) ? "-" : x.PerClassAccuracy[i].ToString("P1", CultureInfo.InvariantCulture))])]);
            ui.Table("Wall time (s)", ["listing", "decoding/store", "teacher", "training", "report", "total"],
                [[.. new[] { times.Listing, times.DecodingStore, times.Teacher, times.Training, times.Report, times.Total }.Select(x => x.ToString("0.0", CultureInfo.InvariantCulture))]]);
            ui.Info($"Outputs in {output}: {RunFolder.Model}, {RunFolder.Onnx}, {RunFolder.Checkpoint}, {RunFolder.Metrics}, {RunFolder.ReportHtml}, {RunFolder.ReportMd}, {ConsumptionProject.FolderName}/");
            ui.Info($"Next: dualhead predict --model {output} IMAGE...   |   dualhead evaluate --model {output} --data DIR");
            return ExitCodes.Success;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            if (keepForResume)
            {
                ui.Warn($"Stopped. A resumable checkpoint is in {checkpointPath}. Resume with:  dualhead train --resume {output}");
            }
            else
            {
                ui.Warn("Stopped before the first training step: there is nothing to resume; the outputs were removed.");
                Cleanup(output, created, written, work);
            }
            return ExitCodes.Cancelled;
        }
        catch
        {
            if (previous is null) Cleanup(output, created, written, work);
            throw;
        }
    }

    private DualHeadDistillTransformer Fit(MLContext ml, DualHeadDistillOptions options, IProgressSink sink, IDataView data, DualHeadCheckpoint? resume, CancellationToken cancel)
    {
        options.StepProgress = new SyncProgress<DualHeadStepReport>(sink.Step);
        options.Progress = new SyncProgress<DualHeadEpochReport>(sink.Epoch);
        options.CancellationToken = cancel;
        if (resume is not null && resume.CompletedEpochs >= options.NumberOfEpochs)
        {
            // Stopped after the last epoch (during the alpha/beta search): nothing to train; search alpha/beta as the run would have.
            var trained = resume.ToModel();
            if (options.ValidationData is null || resume.Mode != DualHeadTrainingMode.DualHead) return trained;
            var search = trained.TuneAlphaBeta(options.ValidationData, options.AlphaGrid, options.BetaGrid);
            var tuned = trained.WithAlphaBeta(search.Alpha, search.Beta);
            sink.Line($"all {resume.CompletedEpochs} epochs were done; {search}");
            return tuned;
        }
        var trainer = ml.MulticlassClassification.Trainers.DualHeadDistill(options);
        return resume is null ? trainer.Fit(data) : trainer.Fit(data, options.ValidationData, resume);
    }

    /// <summary>Reports the teacher's rows (computed or from the cache) every half second while the store is built.</summary>
    private static IDisposable TeacherPolling(ITrainTeacher teacher, int rows, IProgressSink sink, bool active)
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
                sink.Teacher(Math.Min(done, rows), rows, watch.Elapsed.TotalSeconds);
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

    private static void CheckSettings(TrainSettings s)
    {
        TeacherMode.Parse(s.TeacherMode);
        if (s.SoftLabels is { } set)
        {
            if (s.Teacher.OnnxPath is not null || s.Teacher.IsClip)
                throw new UsageException(ExitCodes.UsageError, "Give one source of soft labels: --soft-labels DIR (a labeling job's merged set), or a teacher (--teacher, --clip-image); not both.");
            if (TeacherMode.Parse(s.TeacherMode).Kind != "cached")
                throw new UsageException(ExitCodes.UsageError, $"--teacher-mode {s.TeacherMode} runs the teacher on training crops; a soft-label set holds one label per image: use --teacher-mode cached (the default) with --soft-labels.");
            if (s.Teacher.Probabilities)
                throw new UsageException(ExitCodes.UsageError, "--teacher-probabilities does not apply to --soft-labels: a set holds the teacher's logits as labeled.");
            if (!Directory.Exists(set)) throw new UsageException(ExitCodes.DataError, $"--soft-labels '{set}' was not found.");
        }
        else if (s.SoftLabelsRoot is not null) throw new UsageException(ExitCodes.UsageError, "--soft-labels-root goes with --soft-labels.");
        if (!DualHeadRegistry.Backbones.TryGet(s.Student, out _))
            throw new UsageException(ExitCodes.UsageError, $"--student '{s.Student}' is not a registered backbone; choose one of: {string.Join(", ", DualHeadRegistry.Backbones.Names)}.");
        if (!DualHeadRegistry.Objectives.TryGet(s.Objective, out _))
            throw new UsageException(ExitCodes.UsageError, $"--objective '{s.Objective}' is not a registered objective; choose one of: {string.Join(", ", DualHeadRegistry.Objectives.Names)}.");
        if (s.ImageSize < 8) throw new UsageException(ExitCodes.UsageError, $"--image-size {s.ImageSize} is too small; expected at least 8 (pixels per side).");
        if (s.Channels is not (1 or 3)) throw new UsageException(ExitCodes.UsageError, $"--channels {s.Channels}: expected 1 (grey) or 3 (RGB).");
        if (!(s.LearningRate > 0 && float.IsFinite(s.LearningRate))) throw new UsageException(ExitCodes.UsageError, $"--learning-rate {s.LearningRate}: expected a finite number > 0.");
        if (s.Pretrained is { } weights && !File.Exists(weights)) throw new UsageException(ExitCodes.ModelError, $"--pretrained '{weights}' was not found.");
        if (s.Teacher.InputSize is < 1) throw new UsageException(ExitCodes.UsageError, $"--teacher-size {s.Teacher.InputSize}: expected a side in pixels, at least 1.");
        if (s.Teacher.InputSize is null && s.Teacher.Normalize is not "none")
            throw new UsageException(ExitCodes.UsageError, "--teacher-normalize applies with --teacher-size (to a teacher without preprocessing metadata); give both, or neither.");
        if (s.Device.ToLowerInvariant() is not ("auto" or "cpu" or "cuda")) throw new UsageException(ExitCodes.UsageError, $"--device '{s.Device}' is not one of auto, cpu, cuda.");
    }

    private static DualHeadDistillOptions Options(TrainSettings s, TeacherMode mode, ITrainTeacher teacher, IDataView validation, string checkpoint, string work)
    {
        if (!DualHeadRegistry.Backbones.TryGet(s.Student, out var backbone))
            throw new UsageException(ExitCodes.UsageError, $"--student '{s.Student}' is not a registered backbone; choose one of: {string.Join(", ", DualHeadRegistry.Backbones.Names)}.");
        if (!DualHeadRegistry.Objectives.TryGet(s.Objective, out var objective))
            throw new UsageException(ExitCodes.UsageError, $"--objective '{s.Objective}' is not a registered objective; choose one of: {string.Join(", ", DualHeadRegistry.Objectives.Names)}.");
        if (s.ImageSize < 8) throw new UsageException(ExitCodes.UsageError, $"--image-size {s.ImageSize} is too small; expected at least 8 (pixels per side).");
        if (s.Channels is not (1 or 3)) throw new UsageException(ExitCodes.UsageError, $"--channels {s.Channels}: expected 1 (grey) or 3 (RGB).");
        return new DualHeadDistillOptions
        {
            FeatureColumnName = "Image",
            TeacherColumnName = TeacherFactory.OutputColumn,
            TeacherOutput = s.Teacher.Probabilities ? TeacherOutputKind.Probabilities : TeacherOutputKind.Logits,
            Teacher = mode.Kind == "cached" ? null : teacher.Model,
            TeacherView = mode.Kind switch { "same-crop" => DualHeadTeacherView.SameCropOnline, "views" => DualHeadTeacherView.CachedViews, _ => DualHeadTeacherView.Cached },
            TeacherViews = mode.Views,
            Backbone = backbone.Name,
            BackboneSettings = s.StudentSettings.Count == 0 ? null : new Dictionary<string, string>(s.StudentSettings),
            BackboneWeights = s.Pretrained,
            Mode = objective.Name,
            ImageShape = [s.Channels, s.ImageSize, s.ImageSize],
            Augmentation = s.Augment ? ImageAugmentation.Default : ImageAugmentation.None,
            NumberOfEpochs = s.ResolvedEpochs,
            LabeledBatchSize = s.LabeledBatchSize,
            UnlabeledBatchSize = s.UnlabeledBatchSize,
            LearningRate = s.LearningRate,
            Seed = s.Seed,
            Device = s.Device.ToLowerInvariant() switch
            {
                "auto" => DualHeadDevice.Auto, "cpu" => DualHeadDevice.Cpu, "cuda" => DualHeadDevice.Cuda,
                _ => throw new UsageException(ExitCodes.UsageError, $"--device '{s.Device}' is not one of auto, cpu, cuda."),
            },
            ValidationData = validation,
            GradientConflictDiagnostic = s.GradientCosine,
            Precision = TrainSettings.ParsePrecision(s.Precision),
            EarlyStoppingPatience = s.EarlyStoppingPatience,
            ResolutionSchedule = s.ResolutionSchedule,
            PreciseBatchNormBatches = s.PreciseBatchNormBatches,
            FrozenStages = s.FrozenStages,
            ImageStoreFolder = Path.Combine(work, "store"),
            CheckpointPath = checkpoint,
        };
    }

    /// <summary>The run's teacher: the model (--teacher, CLIP) with the run's cache, or a merged soft-label set (--soft-labels).</summary>
    private static ITrainTeacher CreateTeacher(MLContext ml, TrainSettings s, ImageListing listing, string work, IDataView trainView)
    {
        if (s.SoftLabels is null)
            return new ModelTrainTeacher(TeacherFactory.Create(ml, s.Teacher, listing.Classes, Path.Combine(work, "teacher-cache"), trainView), s.Teacher);
        string root = s.SoftLabelsRoot ?? DefaultSoftLabelsRoot(s);
        var set = SetTrainTeacher.Open(ml, s.SoftLabels, root, trainView);
        try
        {
            TeacherFactory.CheckClasses(set.ClassNames!, listing.Classes, $"soft-label set '{s.SoftLabels}'");
            return set;
        }
        catch
        {
            set.Dispose();
            throw;
        }
    }

    /// <summary>The folder a labeling job's row ids are relative to: the manifest's folder, else the common parent of the image folders.</summary>
    internal static string DefaultSoftLabelsRoot(TrainSettings s)
    {
        if (s.Manifest is { } manifest) return Path.GetDirectoryName(Path.GetFullPath(manifest))!;
        var folders = new[] { s.Labeled, s.Unlabeled }.Where(f => f is not null).Select(f => Path.GetFullPath(f!).TrimEnd(Path.DirectorySeparatorChar)).ToArray();
        if (folders.Length == 1) return Path.GetDirectoryName(folders[0]) ?? folders[0];
        var parts = folders.Select(f => f.Split(Path.DirectorySeparatorChar)).ToArray();
        int common = 0;
        while (parts.All(p => p.Length > common && p[common] == parts[0][common])) common++;
        string root = string.Join(Path.DirectorySeparatorChar, parts[0].Take(common));
        return root.Length == 0 ? Path.DirectorySeparatorChar.ToString() : root;
    }

    private static ImageListing List(TrainSettings s, CancellationToken cancel)
    {
        var skipped = new List<SkippedFile>();
        string[] classes;
        List<ImageItem> labeled, unlabeled, validation = [];
        string source;
        if (s.Manifest is { } manifest)
        {
            if (s.Labeled is not null || s.Unlabeled is not null) throw new UsageException(ExitCodes.UsageError, "Give either --manifest or --labeled/--unlabeled, not both.");
            var items = Manifest.Read(manifest);
            labeled = items.Where(i => i.Label is not null).ToList();
            unlabeled = items.Where(i => i.Label is null).ToList();
            classes = labeled.Select(i => i.Label!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
            source = $"manifest {manifest}";
        }
        else
        {
            if (s.Labeled is null) throw new UsageException(ExitCodes.UsageError, "Give the labeled images: --labeled DIR (one subfolder per class) or --manifest FILE.");
            (classes, labeled) = ImageListing.ReadClassFolders(s.Labeled, "--labeled");
            unlabeled = [];
            if (s.Unlabeled is { } u)
            {
                ImageListing.RequireFolder(u, "--unlabeled");
                unlabeled = ImageListing.Images(u).Select(p => new ImageItem(p, null)).ToList();
                if (unlabeled.Count == 0) throw new UsageException(ExitCodes.DataError, $"--unlabeled '{u}' holds no images ({string.Join(", ", ImageListing.Extensions)}) at any depth.");
            }
            source = "folders";
        }
        if (classes.Length < 2) throw new UsageException(ExitCodes.DataError, $"The labeled images have {classes.Length} class{(classes.Length == 1 ? "" : "es")}; a classifier needs at least 2.");
        labeled = ImageListing.Readable(labeled, s.Strict, skipped, cancel);
        unlabeled = ImageListing.Readable(unlabeled, s.Strict, skipped, cancel);
        if (s.Validation is { } v)
        {
            var (validationClasses, items) = ImageListing.ReadClassFolders(v, "--validation");
            var unknown = validationClasses.Except(classes, StringComparer.Ordinal).ToArray();
            if (unknown.Length > 0) throw new UsageException(ExitCodes.DataError, $"--validation '{v}' has class folders the labeled images do not: {string.Join(", ", unknown)}.");
            validation = ImageListing.Readable(items, s.Strict, skipped, cancel);
            source += " + --validation";
        }
        else
        {
            (labeled, validation) = ValidationSplit.Carve(labeled, classes, s.ValidationFraction, s.Seed);
        }
        foreach (var c in classes)
            if (!labeled.Any(i => i.Label == c))
                throw new UsageException(ExitCodes.DataError, $"Class '{c}' has no readable labeled image left for training.");
        return new ImageListing { Classes = classes, Labeled = labeled, Unlabeled = unlabeled, Validation = validation, Skipped = skipped, Source = source };
    }

    private static string Fingerprint(ImageListing listing)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var group in new[] { listing.Labeled, listing.Unlabeled, listing.Validation })
        {
            foreach (var item in group) hash.AppendData(Encoding.UTF8.GetBytes($"{item.Path}\u001f{item.Label}\u001e"));
            hash.AppendData("\u001d"u8);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    private static DualHeadCheckpoint LoadCheckpoint(string path)
    {
        try
        {
            return DualHeadCheckpoint.Load(path);
        }
        catch (InvalidDataException e)
        {
            throw new UsageException(ExitCodes.ModelError, e.Message);
        }
    }

    /// <summary>Writes a file whole or not at all: a temporary file beside it, then a rename.</summary>
    internal static void WriteAtomic(string path, string? text = null, byte[]? bytes = null)
    {
        string temp = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            if (bytes is not null) File.WriteAllBytes(temp, bytes);
            else File.WriteAllText(temp, text ?? "", new UTF8Encoding(false));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>--force: the files of the run being replaced, so nothing of it can be taken for this run's (a checkpoint to resume, an old report).</summary>
    private static void RemovePreviousRun(string output)
    {
        foreach (var name in new[] { RunFolder.Settings, RunFolder.Model, RunFolder.Onnx, RunFolder.Checkpoint, RunFolder.Metrics, RunFolder.ReportMd, RunFolder.ReportHtml, RunFolder.Plots, RunFolder.Work, ConsumptionProject.FolderName })
        {
            string path = Path.Combine(output, name);
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else if (File.Exists(path)) File.Delete(path);
        }
    }

    private static void Cleanup(string output, bool created, IEnumerable<string> written, string work)
    {
        DeleteQuietly(work);
        foreach (var name in written.Append(RunFolder.Checkpoint))
        {
            string path = Path.Combine(output, name);
            if (Directory.Exists(path)) DeleteQuietly(path);
            else
            {
                try { File.Delete(path); }
                catch (IOException) { }
                catch (UnauthorizedAccessException) { }
            }
        }
        try
        {
            if (created && Directory.Exists(output) && !Directory.EnumerateFileSystemEntries(output).Any()) Directory.Delete(output);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static void DeleteQuietly(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>An IProgress that reports on the caller's thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
public sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
