using Microsoft.ML.DualHeadDistillation.Runs;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The library's run API (what `dualhead train` calls): a run on folders, its outputs, resume of a finished run, errors, a user's teacher kind.</summary>
[TestClass]
public sealed class DistillationRunTests
{
    private static DistillationRunSpec Spec(int epochs = 1) => new()
    {
        Labeled = CliFixture.Data.Labeled,
        Unlabeled = CliFixture.Data.Unlabeled,
        Teacher = new TeacherSpec { OnnxPath = CliFixture.Teacher },
        ImageSize = 28,
        Epochs = epochs,
        Seed = 3,
    };

    private sealed class Recorder : IDistillationRunProgress
    {
        public readonly List<string> Phases = [];
        public int Steps;
        public Action<DualHeadEpochReport>? OnEpoch;
        public void Phase(string title) => Phases.Add(title);
        public void Step(DualHeadStepReport step) => Interlocked.Increment(ref Steps);
        public void Epoch(DualHeadEpochReport epoch) => OnEpoch?.Invoke(epoch);
    }

    [TestMethod]
    public void ARunOnFoldersTrainsEvaluatesAndSavesWithoutTheTool()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "run");
        var progress = new Recorder();
        using var result = DistillationRun.Create(Spec(), folder).Execute(progress);
        CollectionAssert.AreEqual(new[] { "Images", "Teacher", "Diagnosis", "Training", "Report" }, progress.Phases);
        Assert.IsTrue(progress.Steps > 0);
        // The diagnosis ran on every labeled image (training and validation) before training, and is in the summary.
        Assert.IsNotNull(result.Summary.Diagnosis);
        Assert.AreEqual(result.Summary.LabeledImages + result.Summary.ValidationImages, result.Summary.Diagnosis.Accuracy.Rows);
        Assert.AreEqual(result.Summary.Diagnosis.Accuracy.Rows, result.Summary.Diagnosis.Confusion.Sum(row => row.Sum()));
        foreach (var file in new[] { RunFolder.Settings, RunFolder.Model, RunFolder.Onnx, RunFolder.Checkpoint })
            Assert.IsTrue(File.Exists(Path.Combine(folder, file)), file);
        Assert.IsFalse(Directory.Exists(Path.Combine(folder, RunFolder.Work)), "the work folder is removed");
        var s = result.Summary;
        CollectionAssert.AreEqual(new[] { "teacher", "DHO", "CE head", "KD head" }, s.Validation.Select(v => v.Name).ToArray());
        Assert.AreEqual(result.Listing.Validation.Count, s.ValidationImages);
        Assert.AreEqual("carved from the labeled images", s.ValidationSource);
        Assert.AreEqual(1, s.Epochs);
        Assert.IsTrue(s.Validation.All(v => v.Accuracy > 0.1), string.Join(", ", s.Validation.Select(v => $"{v.Name} {v.Accuracy}")));
        // The saved model scores as the returned one.
        var ml = new MLContext(seed: 1);
        var loaded = DualHeadModel.Load(ml, Path.Combine(folder, RunFolder.Model), out _);
        var a = ScoredColumns.Vectors(result.Model.Transform(result.ValidationData), "Score");
        var b = ScoredColumns.Vectors(loaded.Transform(result.ValidationData), "Score");
        for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i]);
        (loaded as IDisposable)?.Dispose();

        // A folder that holds a run is refused, naming the caller's setting, and is left as it was.
        var names = new RunInputNames(new Dictionary<string, string> { ["Output"] = "--out", ["Replace"] = "--replace" });
        var before = Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Select(f => (f, File.GetLastWriteTimeUtc(f))).ToArray();
        var e = Assert.ThrowsExactly<DistillationRunException>(() => DistillationRun.Create(Spec(), folder, names: names));
        Assert.AreEqual(RunErrorKind.Settings, e.Kind);
        StringAssert.Contains(e.Message, "--out");
        StringAssert.Contains(e.Message, "--replace");
        CollectionAssert.AreEqual(before, Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Select(f => (f, File.GetLastWriteTimeUtc(f))).ToArray());
        // A finished run is not resumed.
        StringAssert.Contains(Assert.ThrowsExactly<DistillationRunException>(() => DistillationRun.Resume(folder)).Message, "has finished");
    }

    [TestMethod]
    public void ARunStoppedAfterItsLastEpochResumesWithoutTrainingAndPicksTheSameAlphaBeta()
    {
        using var dir = new TempDir();
        string whole = Path.Combine(dir.Path, "whole"), stopped = Path.Combine(dir.Path, "stopped");
        using var reference = DistillationRun.Create(Spec(), whole).Execute();

        using var cts = new CancellationTokenSource();
        var first = new Recorder { OnEpoch = e => { if (e.Epoch == e.NumberOfEpochs) cts.Cancel(); } }; // the search comes next
        var c = Assert.ThrowsExactly<DistillationRunCancelledException>(() => DistillationRun.Create(Spec(), stopped).Execute(first, cancel: cts.Token));
        Assert.IsTrue(c.Resumable, c.Message);
        Assert.IsTrue(File.Exists(c.CheckpointPath));
        Assert.IsFalse(File.Exists(Path.Combine(stopped, RunFolder.Model)));

        var again = new Recorder();
        var resumed = DistillationRun.Resume(stopped);
        Assert.IsTrue(resumed.IsResumed);
        Assert.AreEqual(CliFixture.Teacher, resumed.Spec.Teacher.OnnxPath, "the resumed run has the run's own spec (run.json)");
        Assert.AreEqual(Spec().Seed, resumed.Spec.Seed);
        using var result = resumed.Execute(again);
        Assert.AreEqual(0, again.Steps, "all epochs were done: nothing is trained again");
        Assert.AreEqual(reference.Model.Alpha, result.Model.Alpha);
        Assert.AreEqual(reference.Model.Beta, result.Model.Beta);
        Assert.AreEqual(reference.Summary.Validation[1].Accuracy, result.Summary.Validation[1].Accuracy);
        Assert.IsTrue(File.Exists(Path.Combine(stopped, RunFolder.Model)));
    }

    [TestMethod]
    public void BadSettingsAndAFailingReportLeaveNothingBehind()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "run");
        var names = new RunInputNames(new Dictionary<string, string> { ["Backbone"] = "--student", ["Teacher.OnnxPath"] = "--teacher" });
        var e = Assert.ThrowsExactly<DistillationRunException>(() => DistillationRun.Create(Spec() with { Backbone = "NoSuchNet" }, folder, names: names));
        StringAssert.Contains(e.Message, "--student 'NoSuchNet'");
        e = Assert.ThrowsExactly<DistillationRunException>(() => DistillationRun.Create(Spec() with { Teacher = new TeacherSpec { OnnxPath = Path.Combine(dir.Path, "nope.onnx") } }, folder, names: names));
        Assert.AreEqual(RunErrorKind.Model, e.Kind);
        StringAssert.Contains(e.Message, "--teacher");
        e = Assert.ThrowsExactly<DistillationRunException>(() => DistillationRun.Create(Spec() with { Teacher = new TeacherSpec() }, folder));
        StringAssert.Contains(e.Message, "Give one teacher");
        e = Assert.ThrowsExactly<DistillationRunException>(() => DistillationRun.Create(Spec() with { Epochs = 2, TimeBudget = TimeSpan.FromMinutes(1) }, folder));
        StringAssert.Contains(e.Message, "not both");
        Assert.IsFalse(Directory.Exists(folder));

        // A caller's report that fails half-way: the run's files and the caller's go.
        var run = DistillationRun.Create(Spec(), folder);
        var boom = Assert.ThrowsExactly<IOException>(() => run.Execute(writeOutputs: (_, outputs) =>
        {
            outputs.WriteText("report/part.md", "half");
            throw new IOException("disk full");
        }));
        Assert.AreEqual("disk full", boom.Message);
        Assert.IsFalse(Directory.Exists(folder), "nothing of the failed run is left");
    }

    /// <summary>A teacher kind of one's own: one class (here: an ONNX classifier whose model comes from the spec's Settings).</summary>
    private sealed class SettingsOnnxTeacher : TeacherDefinition
    {
        public override string Name => "SettingsOnnx";
        public override string Summary => "an ONNX classifier named in Settings[\"model\"]";
        public int Opened;

        public override RunTeacher Open(TeacherContext context)
        {
            Opened++;
            var model = context.Spec.Settings?.GetValueOrDefault("model") ?? throw new ArgumentException("Settings[\"model\"] is required.");
            return new OnnxClassifierTeacher().Open(context with { Spec = context.Spec with { OnnxPath = model } });
        }
    }

    [TestMethod]
    public void AUsersTeacherKindIsOneRegisteredClassThatRunsDispatchByKind()
    {
        var mine = new SettingsOnnxTeacher();
        DualHeadRegistry.Teachers.Register(mine);
        try
        {
            CollectionAssert.IsSubsetOf(new[] { "ClipZeroShot", "OnnxClassifier", "SettingsOnnx", "SoftLabelSet" }, DualHeadRegistry.Teachers.Names.ToArray());
            Assert.AreEqual("OnnxClassifier", TeacherDefinition.For(new TeacherSpec { OnnxPath = "x.onnx" }).Name);
            Assert.AreEqual("ClipZeroShot", TeacherDefinition.For(new TeacherSpec { ClipImage = "x.onnx" }).Name);
            Assert.AreEqual("SoftLabelSet", TeacherDefinition.For(new TeacherSpec { SoftLabels = "dir" }).Name);
            StringAssert.Contains(Assert.ThrowsExactly<DistillationRunException>(() => TeacherDefinition.For(new TeacherSpec { OnnxPath = "x.onnx", SoftLabels = "dir" })).Message, "one source");
            StringAssert.Contains(Assert.ThrowsExactly<DistillationRunException>(() => TeacherDefinition.For(new TeacherSpec { Kind = "Nope" })).Message, "SettingsOnnx");

            using var dir = new TempDir();
            var spec = Spec() with { Teacher = new TeacherSpec { Kind = "SettingsOnnx", Settings = new Dictionary<string, string> { ["model"] = CliFixture.Teacher } } };
            using var result = DistillationRun.Create(spec, Path.Combine(dir.Path, "run")).Execute();
            Assert.AreEqual(1, mine.Opened);
            Assert.AreEqual("teacher", result.Summary.Validation[0].Name);
        }
        finally
        {
            DualHeadRegistry.Teachers.Unregister("SettingsOnnx");
        }
    }
}
