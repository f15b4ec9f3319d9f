using Microsoft.ML.DualHeadDistillation.Specs;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// A distillation run on image files, from a <see cref="DistillationRunSpec"/> into a folder: lists the images, opens
/// the teacher (<see cref="DualHeadRegistry.Teachers"/>), fits the student (sample store, checkpoints after every epoch
/// and on cancellation, the time budget), resumes an interrupted run (a finished one: alpha and beta re-tuned only),
/// evaluates the student, its heads and the teacher on the validation images, and saves model.zip, student.onnx and
/// checkpoint.zip. What the CLI's `dualhead train`, the notebooks and the benchmarks call.
/// <code>
/// var run = DistillationRun.Create(new DistillationRunSpec { Labeled = "photos/labeled", Unlabeled = "photos/unlabeled",
///     Teacher = new TeacherSpec { OnnxPath = "teacher.onnx" } }, "runs/1");
/// using var result = run.Execute();
/// </code>
/// A run that fails leaves nothing behind; one cancelled after its first step keeps a checkpoint to resume with <see cref="Resume"/>.
/// </summary>
public sealed class DistillationRun
{
    private readonly RunFolder.RunFile? _previous;
    private readonly bool _replace;

    private DistillationRun(DistillationRunSpec spec, string folder, RunFolder.RunFile? previous, bool replace, RunInputNames names)
    {
        Spec = spec;
        Folder = folder;
        _previous = previous;
        _replace = replace;
        Names = names;
    }

    public DistillationRunSpec Spec { get; }
    /// <summary>The run's folder (absolute).</summary>
    public string Folder { get; }
    /// <summary>True when this run continues one interrupted in <see cref="Folder"/>.</summary>
    public bool IsResumed => _previous is not null;
    /// <summary>How messages name the spec's settings.</summary>
    public RunInputNames Names { get; }
    /// <summary>The program named in the summary (default: this library and its version). Set before <see cref="Execute"/>.</summary>
    public string Tool { get; set; } = $"Microsoft.ML.DualHeadDistillation {LibraryVersion}";
    /// <summary>Files a caller writes into the folder (a report), removed with the run's own when a run is replaced. Set before <see cref="Execute"/>.</summary>
    public IReadOnlyList<string> CallerOutputs { get; set; } = [];

    /// <summary>The library's version, major.minor.patch.</summary>
    public static string LibraryVersion => typeof(DistillationRun).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "0.0.0";

    /// <summary>
    /// A new run of <paramref name="spec"/> into <paramref name="folder"/>. A folder that holds a run is refused unless
    /// <paramref name="replace"/> (its files are removed when the run starts). Settings and teacher files are checked here.
    /// </summary>
    public static DistillationRun Create(DistillationRunSpec spec, string folder, bool replace = false, RunInputNames? names = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        names ??= RunInputNames.Spec;
        folder = Path.GetFullPath(folder);
        if (!replace && Directory.Exists(folder) && RunFolder.HoldsRun(folder))
            throw DistillationRunException.BadSettings($"{names["Output"]} '{folder}' already holds a run. Resume it with {names["Resume"]} {folder}, replace it with {names["Replace"]}, or choose another {names["Output"]}.");
        RunTraining.Check(spec, TeacherDefinition.For(spec.Teacher, names), names);
        return new DistillationRun(spec, folder, null, replace, names);
    }

    /// <summary>The run interrupted in <paramref name="folder"/>, with its own spec (run.json) and checkpoint.</summary>
    public static DistillationRun Resume(string folder, RunInputNames? names = null)
    {
        names ??= RunInputNames.Spec;
        folder = Path.GetFullPath(folder);
        var previous = RunFolder.Read(folder, names);
        if (File.Exists(Path.Combine(folder, RunFolder.Model)))
            throw DistillationRunException.BadSettings($"The run in '{folder}' has finished (it holds {RunFolder.Model}); nothing to resume.");
        RunTraining.Check(previous.Settings, TeacherDefinition.For(previous.Settings.Teacher, names), names);
        return new DistillationRun(previous.Settings, folder, previous, false, names);
    }

    /// <summary>
    /// Carries the run out. <paramref name="writeOutputs"/> may write more files into the folder (a report) while the
    /// run is open: a failure there removes them with the run's own. Cancellation stops within one batch and throws
    /// <see cref="DistillationRunCancelledException"/>, saying whether a checkpoint to resume from was kept.
    /// </summary>
    public DistillationRunResult Execute(IDistillationRunProgress? progress = null, Action<DistillationRunResult, RunOutputs>? writeOutputs = null, CancellationToken cancel = default)
    {
        progress ??= new SilentProgress();
        var clock = Stopwatch.StartNew();
        var times = new RunPhaseTimes();
        progress.Phase("Images");
        var listing = KnownListing ?? RunListing.Read(Spec, Names, cancel);
        times.Listing = clock.Elapsed.TotalSeconds;
        string fingerprint = RunListing.Fingerprint(listing);
        if (_previous is not null && _previous.ListingFingerprint != fingerprint)
            throw DistillationRunException.BadData($"The images have changed since the run in '{Folder}' started (files added, removed or relabeled): a resumed run must see the same data. Start a new run instead.");
        Describe(listing, times.Listing, progress);

        bool created = !Directory.Exists(Folder);
        if (!created && _replace) RunFolder.RemoveRun(Folder, CallerOutputs);
        Directory.CreateDirectory(Folder);
        Directory.CreateDirectory(Path.Combine(Spec.WorkFolder ?? Path.Combine(Folder, RunFolder.Work), "store"));
        var outputs = new RunOutputs(Folder);
        using var session = new RunSession(this, listing, fingerprint, times, clock, progress, cancel);
        try
        {
            var model = session.Train(outputs);
            try
            {
                return session.Finish(model, outputs, writeOutputs);
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        catch (OperationCanceledException e) when (cancel.IsCancellationRequested)
        {
            string checkpoint = Path.Combine(Folder, RunFolder.Checkpoint);
            bool resumable = (session.TrainingStarted || _previous is not null) && File.Exists(checkpoint);
            if (!resumable && _previous is null) outputs.RemoveAll(created);
            throw new DistillationRunCancelledException(resumable, checkpoint, Folder, e);
        }
        catch
        {
            if (_previous is null) outputs.RemoveAll(created);
            throw;
        }
    }

    private static void Describe(ImageListing listing, double seconds, IDistillationRunProgress progress)
    {
        progress.Info(string.Create(CultureInfo.InvariantCulture,
            $"{listing.Classes.Count} classes ({string.Join(", ", listing.Classes)}); {listing.Labeled.Count} labeled, {listing.Unlabeled.Count} unlabeled, {listing.Validation.Count} validation images ({listing.Source}); {listing.Skipped.Count} skipped as unreadable; listed in {seconds:0.0} s"));
        foreach (var skipped in listing.Skipped.Take(5)) progress.Warning($"skipped '{skipped.Path}': {skipped.Reason}");
        if (listing.Skipped.Count > 5) progress.Warning($"... {listing.Skipped.Count - 5} more skipped files (listed in the report)");
    }

    internal RunFolder.RunFile? Previous => _previous;

    /// <summary>
    /// A search's trial: scored on validation only: no diagnosis, and no model.zip, student.onnx or checkpoint written
    /// (the kept configuration is trained again as a full run).
    /// </summary>
    internal bool IsTrial { get; set; }

    /// <summary>The images as listed by an earlier run of the same data (a search's trials list them once).</summary>
    internal ImageListing? KnownListing { get; set; }

    private sealed class SilentProgress : IDistillationRunProgress;
}

/// <summary>A run stopped by its cancellation token: whether a checkpoint to resume from was kept (training had started), and where.</summary>
public sealed class DistillationRunCancelledException(bool resumable, string checkpointPath, string folder, Exception inner)
    : OperationCanceledException(resumable ? $"Stopped; a resumable checkpoint is in {checkpointPath}." : "Stopped before the first training step: there is nothing to resume; the outputs were removed.", inner)
{
    public bool Resumable { get; } = resumable;
    public string CheckpointPath { get; } = checkpointPath;
    public string Folder { get; } = folder;
}
