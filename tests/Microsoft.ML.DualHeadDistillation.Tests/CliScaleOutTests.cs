using System.Diagnostics;
using DualHeadML.Samples;
using DualHeadML.Samples.Onnx;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Teacher labeling scaled out as a labeling job: `dualhead label --shard I/N` (or JOB_COMPLETION_INDEX) in separate
/// processes, one killed mid-way and run again, `dualhead label merge`, and `dualhead train --soft-labels`.
/// </summary>
[TestClass]
public sealed class CliScaleOutTests
{
    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    /// <summary>A convolutional teacher at 3 x 112 x 112 (about 145 MFLOP an image): slow enough that a shard takes a while.</summary>
    private static string ConvTeacher(TempDir dir, int seed = 5)
    {
        var metadata = TeacherMetadata.Write(FashionMnistFolders.ClassNames, new TeacherPreprocessing { ResizeShorterSide = 112, CropHeight = 112, CropWidth = 112, Scale = 1f / 255f });
        return dir.File($"conv-teacher-{seed}.onnx", TinyOnnxModels.ConvClassifier(3, 112, 112, 10, seed, metadata: metadata).Onnx);
    }

    private static string[] LabelArgs(string teacher, string output, params string[] more) =>
        ["label", "--input", CliFixture.Data.Root, "--teacher", teacher, "--output", output, "--plain", .. more];

    [TestMethod]
    public void FourShardProcessesOneKilledMidWayThenRunAgainMergeToASingleProcesssSoftLabels()
    {
        using var dir = new TempDir();
        string teacher = ConvTeacher(dir);
        string single = Path.Combine(dir.Path, "single"), job = Path.Combine(dir.Path, "job");
        var one = CliFixture.Run(LabelArgs(teacher, single));
        Assert.AreEqual(0, one.Exit, Describe(one));
        var singleManifest = CliFixture.Json(Path.Combine(single, SoftLabelSetManifest.FileName));
        int rows = singleManifest.GetProperty("rows").GetInt32();
        Assert.AreEqual(1200, rows, "every image of the folder (labeled, unlabeled, test)");

        // Shard 2 starts first and is killed (SIGKILL, as an evicted pod) once it has written its first row groups.
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[CliFixture.Tool, .. LabelArgs(teacher, job, "--shard", "2/4", "--row-group", "8", "--teacher-batch", "8", "--teacher-threads", "1")]) start.ArgumentList.Add(a);
        using var victim = Process.Start(start)!;
        var victimOut = victim.StandardOutput.ReadToEndAsync();
        var victimErr = victim.StandardError.ReadToEndAsync();
        // The three others run at the same time; the third takes its shard the way a Kubernetes Indexed Job's pod does.
        var others = Task.Run(() => ChildProcess.RunTogether(CliFixture.Tool,
            [LabelArgs(teacher, job, "--shard", "0/4"), LabelArgs(teacher, job, "--shard", "1/4"), LabelArgs(teacher, job)],
            timeoutMs: 300_000, environment: new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "3", ["JOB_COMPLETIONS"] = "4" }));
        string? partial = null;
        var poll = Stopwatch.StartNew();
        while (partial is null && !victim.HasExited && poll.Elapsed < TimeSpan.FromMinutes(3))
        {
            partial = Directory.Exists(job) ? Directory.GetFiles(job, ".shard-00002-of-00004.parquet.*.tmp").FirstOrDefault(f => new FileInfo(f).Length > 2000) : null;
            if (partial is null) Thread.Sleep(1);
        }
        Assert.IsNotNull(partial, $"shard 2 wrote no row group before it ended:\n{victimOut.Result}\n{victimErr.Result}");
        victim.Kill(entireProcessTree: true);
        victim.WaitForExit();
        var results = others.Result;
        foreach (var r in results) Assert.AreEqual(0, r.Exit, Describe(r));
        StringAssert.Contains(results[2].Output, "shard 3/4:", "JOB_COMPLETION_INDEX and JOB_COMPLETIONS chose the shard");
        Assert.IsFalse(File.Exists(Path.Combine(job, "shard-00002-of-00004.parquet")), "the killed shard left no shard file, only its temporary file");
        Assert.IsTrue(File.Exists(partial));

        var early = CliFixture.Run("label", "merge", job);
        Assert.AreEqual(3, early.Exit, Describe(early));
        StringAssert.Contains(early.Error, "lacks 1 of 4 shards: expected 'shard-00002-of-00004.parquet'");

        var again = CliFixture.Run(LabelArgs(teacher, job, "--shard", "2/4"));
        Assert.AreEqual(0, again.Exit, Describe(again));
        StringAssert.Contains(again.Error, "removed 1 unfinished file(s) of an earlier run of shard 2/4");
        Assert.IsFalse(File.Exists(partial));

        // A retried pod whose shard is complete has nothing to do and leaves the file as it is.
        var shard0 = Path.Combine(job, "shard-00000-of-00004.parquet");
        var before = File.ReadAllBytes(shard0);
        var retried = CliFixture.Run(LabelArgs(teacher, job, "--shard", "0/4"));
        Assert.AreEqual(0, retried.Exit, Describe(retried));
        StringAssert.Contains(retried.Output, "already labeled");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(shard0));

        var merge = CliFixture.Run("label", "merge", job);
        Assert.AreEqual(0, merge.Exit, Describe(merge));
        StringAssert.Contains(merge.Output, $"Merged 4 shards into {job}: {rows} rows");
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(single, "soft-labels.index")), File.ReadAllBytes(Path.Combine(job, "soft-labels.index")),
            "the merged soft labels are bit-identical to a single process's");
        var manifest = CliFixture.Json(Path.Combine(job, SoftLabelSetManifest.FileName));
        Assert.AreEqual(singleManifest.GetProperty("teacher_fingerprint").GetString(), manifest.GetProperty("teacher_fingerprint").GetString());
        Assert.AreEqual(4, manifest.GetProperty("shards").GetArrayLength());

        // The logits themselves, row by row, against the single process's shard file.
        var fromSingle = ReadAll(Path.Combine(single, "shard-00000-of-00001.parquet"));
        var fromJob = Enumerable.Range(0, 4).SelectMany(i => ReadAll(Path.Combine(job, SoftLabelShard.FileNameOf(i, 4)))).ToDictionary(x => x.Key, x => x.Value);
        Assert.AreEqual(fromSingle.Count, fromJob.Count);
        foreach (var (id, logits) in fromSingle) CollectionAssert.AreEqual(logits, fromJob[id], id);
    }

    private static Dictionary<string, float[]> ReadAll(string shard)
    {
        using var reader = SoftLabelShardReader.Open(shard);
        int k = reader.ClassCount;
        return reader.ReadRowGroups().SelectMany(g => g.RowIds.Select((id, r) => (id, g.Logits.AsSpan(r * k, k).ToArray()))).ToDictionary(x => x.id, x => x.Item2);
    }

    [TestMethod]
    public void CorruptMissingOrForeignShardsAreClearErrorsAndTrainingFromTheSetEqualsTrainingFromTheLocalCache()
    {
        using var dir = new TempDir();
        string job = Path.Combine(dir.Path, "job");
        var runs = ChildProcess.RunTogether(CliFixture.Tool, Enumerable.Range(0, 3).Select(i => (IEnumerable<string>)LabelArgs(CliFixture.Teacher, job, "--shard", $"{i}/3")).ToArray(), timeoutMs: 300_000);
        foreach (var r in runs) Assert.AreEqual(0, r.Exit, Describe(r));
        var merged = CliFixture.Run("label", "merge", job);
        Assert.AreEqual(0, merged.Exit, Describe(merged));

        string Copy(string name)
        {
            string d = Path.Combine(dir.Path, name);
            Directory.CreateDirectory(d);
            foreach (var f in Directory.GetFiles(job, "shard-*")) File.Copy(f, Path.Combine(d, Path.GetFileName(f)));
            return d;
        }
        void Refused(string folder, string expected)
        {
            var r = CliFixture.Run("label", "merge", folder);
            Assert.AreEqual(3, r.Exit, Describe(r));
            StringAssert.Contains(r.Error, expected);
            Assert.IsFalse(File.Exists(Path.Combine(folder, SoftLabelSetManifest.FileName)), "a refused merge writes no manifest");
        }

        string missing = Copy("missing");
        File.Delete(Path.Combine(missing, "shard-00001-of-00003.parquet"));
        Refused(missing, "expected 'shard-00001-of-00003.parquet'");

        string corrupt = Copy("corrupt");
        string file = Path.Combine(corrupt, "shard-00002-of-00003.parquet");
        var bytes = File.ReadAllBytes(file);
        for (int i = bytes.Length / 4; i < bytes.Length / 4 + 16; i++) bytes[i] ^= 0xFF;
        File.WriteAllBytes(file, bytes);
        Refused(corrupt, "shard-00002-of-00003.parquet");

        string foreign = Copy("foreign");
        string other = Path.Combine(dir.Path, "other-teacher");
        var otherRun = CliFixture.Run(LabelArgs(ConvTeacher(dir), other, "--shard", "0/3"));
        Assert.AreEqual(0, otherRun.Exit, Describe(otherRun));
        File.Copy(Path.Combine(other, "shard-00000-of-00003.parquet"), Path.Combine(foreign, "shard-00000-of-00003.parquet"), overwrite: true);
        Refused(foreign, "shard-00000-of-00003.parquet' was labeled by another teacher");

        // Training from the merged set and training with the teacher (and its local cache): the same student, byte for byte.
        string fromCache = Path.Combine(dir.Path, "from-cache"), fromSet = Path.Combine(dir.Path, "from-set");
        string[] common = ["--labeled", CliFixture.Data.Labeled, "--unlabeled", CliFixture.Data.Unlabeled, "--validation", CliFixture.Data.Test,
            "--image-size", "28", "--epochs", "1", "--seed", "3", "--plain"];
        var a = CliFixture.Run(["train", "--teacher", CliFixture.Teacher, "--output", fromCache, .. common]);
        Assert.AreEqual(0, a.Exit, Describe(a));
        var b = CliFixture.Run(["train", "--soft-labels", job, "--output", fromSet, .. common]);
        Assert.AreEqual(0, b.Exit, Describe(b));
        StringAssert.Contains(b.Output, $"soft-label set {job}: 10 classes, 1200 rows");
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(fromCache, "student.onnx")), File.ReadAllBytes(Path.Combine(fromSet, "student.onnx")),
            "the same soft labels give the same weights");
        var metrics = CliFixture.Json(Path.Combine(fromSet, "metrics.json"));
        Assert.AreEqual(4, metrics.GetProperty("validation").GetArrayLength(), "the validation images are in the set: the teacher column is reported");

        // Paths under another root are not in the set: the error names the row id and says which root was used.
        var wrongRoot = CliFixture.Run(["train", "--soft-labels", job, "--soft-labels-root", CliFixture.Data.Labeled, "--output", Path.Combine(dir.Path, "wrong"), .. common]);
        Assert.AreNotEqual(0, wrongRoot.Exit, Describe(wrongRoot));
        StringAssert.Contains(wrongRoot.Error, $"relative to '{CliFixture.Data.Labeled}') is not in soft-label set '{job}'");
        Assert.IsFalse(Directory.Exists(Path.Combine(dir.Path, "wrong")), "a failed run leaves nothing behind");
        var both = CliFixture.Run(["train", "--soft-labels", job, "--teacher", CliFixture.Teacher, "--output", Path.Combine(dir.Path, "both"), .. common]);
        Assert.AreEqual(2, both.Exit, Describe(both));
        StringAssert.Contains(both.Error, "Give one source of soft labels");
    }

    [TestMethod]
    public void TheShardComesFromTheOptionOrTheIndexedJobsEnvironmentAndBadValuesAreRefused()
    {
        using var dir = new TempDir();
        string output = Path.Combine(dir.Path, "out");
        (int Exit, string Output, string Error) Label(Dictionary<string, string?> env, params string[] more) =>
            ChildProcess.Run(CliFixture.Tool, LabelArgs(CliFixture.Teacher, output, more), environment: env);
        var none = new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = null, ["JOB_COMPLETIONS"] = null };

        var noIndex = Label(none, "--shards", "4");
        Assert.AreEqual(2, noIndex.Exit, Describe(noIndex));
        StringAssert.Contains(noIndex.Error, "--shards 4 needs the shard index");
        var badShard = Label(none, "--shard", "4/4");
        Assert.AreEqual(2, badShard.Exit, Describe(badShard));
        StringAssert.Contains(badShard.Error, "--shard '4/4': the index must be in 0..N-1");
        var noCount = Label(new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "1", ["JOB_COMPLETIONS"] = null });
        Assert.AreEqual(2, noCount.Exit, Describe(noCount));
        StringAssert.Contains(noCount.Error, "JOB_COMPLETION_INDEX is 1 but the shard count is unknown");
        var fromOption = Label(new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "1", ["JOB_COMPLETIONS"] = null }, "--shards", "5");
        Assert.AreEqual(0, fromOption.Exit, Describe(fromOption));
        Assert.IsTrue(File.Exists(Path.Combine(output, "shard-00001-of-00005.parquet")));
        string elsewhere = Path.Combine(dir.Path, "cuda");
        var cuda = ChildProcess.Run(CliFixture.Tool, LabelArgs(CliFixture.Teacher, elsewhere, "--teacher-device", "cuda"), environment: none);
        Assert.AreEqual(4, cuda.Exit, Describe(cuda));
        StringAssert.Contains(cuda.Error, "--teacher-device cuda: UseCuda is set but ONNX Runtime's CUDA provider could not be created", "no quiet fall-back to the CPU");
        Assert.IsFalse(Directory.Exists(elsewhere), "a failed run leaves no output folder");
        var embeddings = Label(none, "--embeddings");
        Assert.AreEqual(2, embeddings.Exit, Describe(embeddings));
        StringAssert.Contains(embeddings.Error, "--embeddings keeps a CLIP teacher's image embeddings");
        Assert.IsFalse(Directory.GetFiles(output, "*.tmp", SearchOption.AllDirectories).Any());
    }

    [TestMethod]
    public void ALabelRunWithEmbeddingsKeepsEachImagesNormalisedClipEmbeddingAsFloat16()
    {
        using var dir = new TempDir();
        const int E = 16;
        var (vocab, merges, ids) = TeacherFixtures.ClipVocabulary(dir.Path, ["photo", "shirt", "boot"]);
        string text = dir.File("text.onnx", TinyOnnxModels.ClipTextEncoder(TeacherFixtures.RandomMatrix(ids.Count, E, 5)));
        string image = dir.File("image.onnx", TinyOnnxModels.ClipImageEncoder(TeacherFixtures.RandomMatrix(3 * 28 * 28, E, 3), 3, 28, 28));
        string classes = dir.File("classes.txt", System.Text.Encoding.UTF8.GetBytes(string.Join('\n', FashionMnistFolders.ClassNames)));
        string output = Path.Combine(dir.Path, "clip");
        var r = CliFixture.Run("label", "--input", CliFixture.Data.Test, "--output", output, "--classes", classes, "--embeddings",
            "--clip-image", image, "--clip-text", text, "--clip-vocab", vocab, "--clip-merges", merges, "--plain");
        Assert.AreEqual(0, r.Exit, Describe(r));
        StringAssert.Contains(r.Output, $"keeping its {E}-value image embeddings");
        using var reader = SoftLabelShardReader.Open(Path.Combine(output, "shard-00000-of-00001.parquet"));
        Assert.AreEqual(E, reader.Info.EmbeddingSize);
        StringAssert.Contains(reader.Info.TeacherDescription, "a photo of a {}.", "the prompts are recorded with the fingerprint");
        var group = reader.ReadRowGroups().First();
        Assert.AreEqual(200, group.RowIds.Length);
        foreach (var bytes in group.Embeddings!)
        {
            Assert.AreEqual(2 * E, bytes.Length);
            double norm = Math.Sqrt(Enumerable.Range(0, E).Sum(j => Math.Pow((double)System.Buffers.Binary.BinaryPrimitives.ReadHalfLittleEndian(bytes.AsSpan(2 * j)), 2)));
            Assert.AreEqual(1.0, norm, 2e-3, "an L2-normalised embedding, to float16 precision");
        }
        var manifest = CliFixture.Json(Path.Combine(output, SoftLabelSetManifest.FileName));
        Assert.AreEqual(E, manifest.GetProperty("embedding_size").GetInt32());
    }
}
