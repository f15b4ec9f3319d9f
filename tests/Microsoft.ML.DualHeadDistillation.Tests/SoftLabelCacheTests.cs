using System.Diagnostics;
using DualHeadML.Samples.Onnx;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.Runtime;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The soft-label cache under concurrent writers, unwritable folders and damaged files.</summary>
[TestClass]
public sealed class SoftLabelCacheTests
{
    private const int D = 6, K = 3;
    private const int HeaderSize = 12;

    private sealed class Teacher : IDisposable
    {
        public readonly TempDir Dir = new();
        public readonly float[,] W = TeacherFixtures.RandomMatrix(K, D, 1);
        public readonly string Model;
        public readonly string Cache;
        public Teacher()
        {
            Model = Dir.File("linear.onnx", TinyOnnxModels.Linear(W, [0, 0, 0]));
            Cache = Path.Combine(Dir.Path, "cache");
        }
        public TeacherSoftLabelsOptions Options(string? cache = null) => new()
        {
            InputColumnName = "Pixels", ModelPath = Model, CacheDirectory = cache ?? Cache, BatchSize = 8,
            Runtime = new TeacherRuntimeOptions { IntraOpThreads = 1, InterOpThreads = 1 },
        };
        public double Expected(float[] row, int k) => Enumerable.Range(0, D).Sum(j => (double)W[k, j] * row[j]);
        public void Dispose() => Dir.Dispose();
    }

    /// <summary>An MLContext whose warnings are collected.</summary>
    private static (MLContext Ml, List<string> Warnings) LoggingContext()
    {
        var ml = new MLContext(seed: 1);
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.RawMessage); };
        return (ml, warnings);
    }

    /// <summary>Fit + Transform (every row read) + Dispose; returns the logits, the statistics and the warnings.</summary>
    private static (float[][] Logits, long Computed, long Hits, IReadOnlyList<string> Warnings, string? File) FitReadDispose(MLContext ml, Teacher t, float[][] rows, string? cache = null)
    {
        var data = TeacherFixtures.Vectors(ml, rows);
        var teacher = ml.Transforms.TeacherSoftLabels(t.Options(cache)).Fit(data);
        try
        {
            var logits = teacher.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray();
            return (logits, teacher.Statistics.RowsComputed, teacher.Statistics.CacheHits, teacher.CacheWarnings, teacher.CacheFile);
        }
        finally
        {
            teacher.Dispose();
            Assert.IsTrue(teacher.SessionReleased, "Dispose must release the ONNX Runtime session");
        }
    }

    private static void AssertCorrect(Teacher t, float[][] rows, float[][] logits)
    {
        Assert.AreEqual(rows.Length, logits.Length);
        for (int i = 0; i < rows.Length; i++)
            for (int k = 0; k < K; k++) Assert.AreEqual(t.Expected(rows[i], k), logits[i][k], 1e-5, $"row {i} class {k}");
    }

    /// <summary>A final teacher over all rows: every row from the cache, with the values the model computes.</summary>
    private static void AssertCacheHoldsAll(Teacher t, float[][] rows)
    {
        var ml = new MLContext(seed: 2);
        var (logits, computed, hits, warnings, _) = FitReadDispose(ml, t, rows);
        Assert.AreEqual(0, warnings.Count, string.Join("\n", warnings));
        Assert.AreEqual(rows.Length, hits, $"cache hits (rows computed {computed})");
        Assert.AreEqual(0, computed);
        AssertCorrect(t, rows, logits);
        var data = TeacherFixtures.Vectors(ml, rows);
        var noCache = t.Options();
        noCache.CacheDirectory = null;
        using var direct = ml.Transforms.TeacherSoftLabels(noCache).Fit(data);
        var computedLogits = direct.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray();
        for (int i = 0; i < rows.Length; i++) CollectionAssert.AreEqual(computedLogits[i], logits[i], $"row {i}");
    }

    [TestMethod]
    public void FourThreadsWritingOneCacheFolderKeepEveryRow()
    {
        using var t = new Teacher();
        var rows = TeacherFixtures.RandomRows(400, D, 7);
        const int threads = 4, loops = 6;
        var errors = new List<string>();
        var workers = Enumerable.Range(0, threads).Select(thread => new Thread(() =>
        {
            var (ml, logged) = LoggingContext();
            for (int loop = 0; loop < loops; loop++)
            {
                // Overlapping windows of 40 rows: thread th covers [100 th, 100 th + 140), the last wraps to 0.
                var subset = Enumerable.Range(thread * 100 + loop * 20, 40).Select(i => rows[i % rows.Length]).ToArray();
                try
                {
                    var (logits, _, _, warnings, _) = FitReadDispose(ml, t, subset);
                    AssertCorrect(t, subset, logits);
                    lock (errors) errors.AddRange(warnings.Select(w => $"thread {thread} loop {loop}: warning {w}"));
                }
                catch (Exception e)
                {
                    lock (errors) errors.Add($"thread {thread} loop {loop}: {e.GetType().Name}: {e.Message}");
                }
            }
            lock (errors) errors.AddRange(logged.Select(w => $"thread {thread}: logged {w}"));
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        Assert.AreEqual(0, errors.Count, string.Join("\n", errors));
        Assert.AreEqual(0, Directory.GetFiles(t.Cache, "*.tmp").Length, "temporary files left behind");
        AssertCacheHoldsAll(t, rows);
    }

    [TestMethod]
    public void TwoProcessesSharingACacheFolderBothSucceedAndKeepTheUnion()
    {
        using var t = new Teacher();
        var rows = TeacherFixtures.RandomRows(400, D, 8);
        string rowsFile = Path.Combine(t.Dir.Path, "rows.bin");
        using (var writer = new BinaryWriter(File.Create(rowsFile)))
        {
            writer.Write(rows.Length);
            writer.Write(D);
            foreach (var r in rows) foreach (float v in r) writer.Write(v);
        }
        string program = ChildProcess.BuiltProgram("SoftLabelCacheWriter");
        // Process A writes rows [0, 240) and B rows [160, 400), each in 12 Fits of 20 rows.
        var results = ChildProcess.RunTogether(program, [
            [t.Model, t.Cache, rowsFile, "0", "240", "12"],
            [t.Model, t.Cache, rowsFile, "160", "240", "12"],
        ]);
        foreach (var (exit, output, error) in results)
        {
            Console.WriteLine(output);
            Assert.AreEqual(0, exit, $"child failed: {error}\n{output}");
            StringAssert.Contains(output, "log warnings 0");
            Assert.IsFalse(output.Contains("cache warning"), output);
        }
        AssertCacheHoldsAll(t, rows);
    }

    [TestMethod]
    public void UnwritableCacheFolderRunsWithoutCacheWithOneWarningAndReleasesTheSession()
    {
        using var t = new Teacher();
        var rows = TeacherFixtures.RandomRows(20, D, 3);
        // Tests run as root here, where chmod 0555 does not stop writes. These fail for root too: a folder
        // below a regular file (the folder cannot be created) and /proc/self (exists; no file can be created there).
        string file = t.Dir.File("plain-file", [1, 2, 3]);
        foreach (var folder in new[] { Path.Combine(file, "sub"), "/proc/self" })
        {
            var (ml, logged) = LoggingContext();
            var data = TeacherFixtures.Vectors(ml, rows);
            var teacher = ml.Transforms.TeacherSoftLabels(t.Options(folder)).Fit(data);
            // Detected at Fit, before any row is computed.
            Assert.AreEqual(0, teacher.Statistics.RowsComputed);
            Assert.AreEqual(1, teacher.CacheWarnings.Count, string.Join("\n", teacher.CacheWarnings));
            string warning = teacher.CacheWarnings[0];
            StringAssert.Contains(warning, $"Soft-label cache folder '{folder}' cannot be written");
            StringAssert.Contains(warning, "the teacher runs without a cache");
            Assert.IsNull(teacher.CacheFile);
            AssertCorrect(t, rows, teacher.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray());
            AssertCorrect(t, rows, teacher.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray());
            Assert.AreEqual(40, teacher.Statistics.RowsComputed);
            teacher.Dispose(); // must not throw
            Assert.IsTrue(teacher.SessionReleased);
            Assert.AreEqual(1, teacher.CacheWarnings.Count, string.Join("\n", teacher.CacheWarnings));
            CollectionAssert.AreEqual(new[] { warning }, logged, "the warning goes to MLContext.Log once");
            Console.WriteLine(warning);
        }
    }

    [TestMethod]
    public void UnwritableCacheFolderLoopDoesNotLeak()
    {
        using var dir = new TempDir();
        var (bytes, _) = TinyOnnxModels.ConvClassifier(1, 28, 28, 10, seed: 5);
        var model = dir.File("conv.onnx", bytes);
        string unwritable = Path.Combine(dir.File("plain-file", [1]), "sub");
        var ml = new MLContext(seed: 1);
        var data = TeacherFixtures.Vectors(ml, TeacherFixtures.RandomRows(64, 784, 3));
        var options = new TeacherSoftLabelsOptions
        {
            InputColumnName = "Pixels", ModelPath = model, CacheDirectory = unwritable, BatchSize = 32,
            Runtime = new TeacherRuntimeOptions { IntraOpThreads = 1, InterOpThreads = 1 },
        };
        long Rss()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            using var self = Process.GetCurrentProcess();
            return self.WorkingSet64;
        }
        void Loop()
        {
            var teacher = ml.Transforms.TeacherSoftLabels(options).Fit(data);
            Assert.AreEqual(64, teacher.Transform(data).GetColumn<float[]>("TeacherLogits").Count());
            Assert.AreEqual(1, teacher.CacheWarnings.Count);
            teacher.Dispose();
            Assert.IsTrue(teacher.SessionReleased);
        }
        for (int i = 0; i < 5; i++) Loop(); // warm-up: ONNX Runtime's and ML.NET's one-time allocations
        long before = Rss();
        for (int i = 0; i < 20; i++) Loop();
        long growth = Rss() - before;
        Console.WriteLine($"RSS growth over 20 loops: {growth / 1e6:0.0} MB");
        Assert.IsTrue(growth < 40_000_000, $"RSS grew {growth / 1e6:0.0} MB over 20 Fit+Transform+Dispose loops");
    }

    /// <summary>Bytes per record, from the file's length (40 + 4 K in format version 2).</summary>
    private static int RecordSize(string file, int rows)
    {
        long body = new FileInfo(file).Length - HeaderSize;
        Assert.AreEqual(0, body % rows, $"{file}: {body} bytes of records for {rows} rows");
        return (int)(body / rows);
    }

    /// <summary>Writes the cache for <paramref name="rows"/> and returns its file.</summary>
    private static string Populate(Teacher t, float[][] rows)
    {
        var (logits, computed, _, warnings, file) = FitReadDispose(new MLContext(seed: 1), t, rows);
        Assert.AreEqual(rows.Length, computed);
        Assert.AreEqual(0, warnings.Count, string.Join("\n", warnings));
        AssertCorrect(t, rows, logits);
        return file!;
    }

    /// <summary>After damage: one warning naming the file, the damaged rows recomputed, all values right, and the file repaired.</summary>
    private static void AssertRecovered(Teacher t, float[][] rows, string file, int recomputed, string expectedWarning)
    {
        var (ml, logged) = LoggingContext();
        var (logits, computed, hits, warnings, _) = FitReadDispose(ml, t, rows);
        Assert.AreEqual(1, warnings.Count, string.Join("\n", warnings));
        StringAssert.Contains(warnings[0], $"'{file}'");
        StringAssert.Contains(warnings[0], expectedWarning);
        CollectionAssert.AreEqual(warnings.ToArray(), logged);
        Console.WriteLine(warnings[0]);
        Assert.AreEqual(recomputed, computed);
        Assert.AreEqual(rows.Length - recomputed, hits);
        AssertCorrect(t, rows, logits);
        AssertCacheHoldsAll(t, rows); // rewritten whole: no warning, every row a hit
    }

    [TestMethod]
    public void TenByteCacheFileIsReportedAndRebuilt()
    {
        using var t = new Teacher();
        var rows = TeacherFixtures.RandomRows(20, D, 4);
        string file = Populate(t, rows);
        File.WriteAllBytes(file, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        AssertRecovered(t, rows, file, 20, "is 10 bytes long, shorter than the 12-byte header");
    }

    [TestMethod]
    public void FlippedBitInAStoredLogitIsDetectedAndRecomputed()
    {
        using var t = new Teacher();
        var rows = TeacherFixtures.RandomRows(20, D, 5);
        string file = Populate(t, rows);
        var bytes = File.ReadAllBytes(file);
        bytes[HeaderSize + 5 * RecordSize(file, 20) + 32 + 3] ^= 0x40; // the top exponent bit of record 5's first logit
        File.WriteAllBytes(file, bytes);
        AssertRecovered(t, rows, file, 1, "1 of 20 records failed their checksum and were dropped");
    }

    [TestMethod]
    public void TruncatedCacheFileKeepsItsWholeRecords()
    {
        using var t = new Teacher();
        var rows = TeacherFixtures.RandomRows(20, D, 6);
        string file = Populate(t, rows);
        int size = RecordSize(file, 20);
        using (var stream = new FileStream(file, FileMode.Open)) stream.SetLength(stream.Length - 7);
        AssertRecovered(t, rows, file, 1, $"ends with a partial record ({size - 7} of {size} bytes");
    }

    [TestMethod]
    public void ForeignOrOtherVersionCacheFileIsIgnoredAndRebuilt()
    {
        using var t = new Teacher();
        var rows = TeacherFixtures.RandomRows(20, D, 7);
        string file = Populate(t, rows);
        File.WriteAllText(file, "This is not a cache file, but it is long enough to have a header.");
        AssertRecovered(t, rows, file, 20, "is not a soft-label cache file; this version reads DHSL0002 files. It is ignored and will be rebuilt.");
        // A version 1 file (the old format: no checksums).
        File.WriteAllBytes(file, [.. "DHSL0001"u8, .. BitConverter.GetBytes(K), .. new byte[44 * 3]]);
        AssertRecovered(t, rows, file, 20, "is a soft-label cache file of another version (DHSL0001)");
        File.WriteAllBytes(file, [.. "DHSL0002"u8, .. BitConverter.GetBytes(5), .. new byte[60]]);
        AssertRecovered(t, rows, file, 20, "holds 5 values per row but this teacher gives 3");
    }

    [TestMethod]
    public void CacheFolderLostAfterFitGivesAWarningNotAnException()
    {
        using var t = new Teacher();
        var rows = TeacherFixtures.RandomRows(20, D, 9);
        var (ml, logged) = LoggingContext();
        var data = TeacherFixtures.Vectors(ml, rows);
        var teacher = ml.Transforms.TeacherSoftLabels(t.Options()).Fit(data);
        Directory.Delete(t.Cache, recursive: true);
        File.WriteAllText(t.Cache, "the folder is now a file");
        // The cursor's Dispose writes the cache: the failure is a warning and the rows are still served.
        AssertCorrect(t, rows, teacher.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray());
        teacher.Dispose();
        Assert.IsTrue(teacher.SessionReleased);
        Assert.AreEqual(1, teacher.CacheWarnings.Count, string.Join("\n", teacher.CacheWarnings));
        StringAssert.Contains(teacher.CacheWarnings[0], $"Soft-label cache '{teacher.CacheFile}': 20 new entries could not be written");
        StringAssert.Contains(teacher.CacheWarnings[0], "They will be recomputed next time.");
        CollectionAssert.AreEqual(teacher.CacheWarnings.ToArray(), logged);
        Console.WriteLine(teacher.CacheWarnings[0]);
    }
}
