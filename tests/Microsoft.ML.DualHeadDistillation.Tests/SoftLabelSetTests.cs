using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Teachers;
using DualHeadML.Samples.Onnx;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Soft-label sets in the library: shard files (writer and reader), the merge and its checks, the memory-mapped index,
/// and <c>SoftLabelsFromSet</c> as the teacher input of a Fit (same weights as the teacher column it replaces).
/// </summary>
[TestClass]
public sealed class SoftLabelSetTests
{
    private static readonly string[] Classes = SyntheticData.ClassNames;

    private static SoftLabelShardInfo Info(IReadOnlyCollection<string> allIds, int shardRows, string fingerprint = "", int embedding = 0) => new()
    {
        TeacherFingerprint = fingerprint.Length > 0 ? fingerprint : new string('1', 64),
        TeacherDescription = "test teacher",
        ClassNames = Classes,
        EmbeddingSize = embedding,
        InputRows = allIds.Count,
        InputFingerprint = SoftLabelRowIds.ListingFingerprint(allIds),
        ShardInputRows = shardRows,
    };

    /// <summary>Writes rows (id, logits) as <paramref name="shards"/> shard files in <paramref name="dir"/>, each in hash order.</summary>
    internal static void WriteShards(string dir, IReadOnlyList<(string Id, float[] Logits)> rows, int shards, int? only = null, string fingerprint = "")
    {
        var ids = rows.Select(r => r.Id).ToArray();
        for (int s = 0; s < shards; s++)
        {
            if (only is { } o && o != s) continue;
            var shard = new SoftLabelShard(s, shards);
            var mine = rows.Where(r => shard.Owns(r.Id)).OrderBy(r => SoftLabelRowIds.Hash(r.Id)).ThenBy(r => r.Id, StringComparer.Ordinal).ToList();
            using var writer = new SoftLabelShardWriter(dir, shard, Info(ids, mine.Count, fingerprint), rowGroupSize: 7);
            foreach (var (id, logits) in mine) writer.Add(id, System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(id)), logits);
            writer.Commit();
        }
    }

    private static List<(string Id, float[] Logits)> RandomRows(int n, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(i => ($"images/{i:D4}.png", Enumerable.Range(0, Classes.Length).Select(_ => (float)(r.NextDouble() * 8 - 4)).ToArray())).ToList();
    }

    [TestMethod]
    public void ShardsMergeIntoASetWhoseLookupsGiveEveryRowsLogitsWhateverTheSharding()
    {
        using var dir = new TempDir();
        var rows = RandomRows(300, 1);
        string four = Path.Combine(dir.Path, "four"), one = Path.Combine(dir.Path, "one");
        WriteShards(four, rows, 4);
        WriteShards(one, rows, 1);
        var manifest = SoftLabelSetMerger.Merge(four);
        SoftLabelSetMerger.Merge(one);
        Assert.AreEqual(300, manifest.Rows);
        Assert.AreEqual(4, manifest.Shards.Count);
        Assert.AreEqual(300, manifest.Shards.Sum(s => s.Rows));
        Assert.IsTrue(manifest.Shards.All(s => s.Rows > 40), "the id hash spreads rows over the shards");
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(one, "soft-labels.index")), File.ReadAllBytes(Path.Combine(four, "soft-labels.index")),
            "the index depends on the rows only, not on the sharding");

        using var set = SoftLabelSet.Open(four);
        Assert.AreEqual(300, set.Count);
        var got = new float[Classes.Length];
        foreach (var (id, logits) in rows)
        {
            Assert.IsTrue(set.TryGet(id, got), id);
            CollectionAssert.AreEqual(logits, got, id);
        }
        Assert.IsFalse(set.TryGet("images/9999.png", got), "an id never labeled");

        // The shard files are plain Parquet with the documented columns and metadata, readable row group by row group.
        using var reader = SoftLabelShardReader.Open(Path.Combine(four, "shard-00002-of-00004.parquet"));
        Assert.AreEqual(new SoftLabelShard(2, 4), reader.Shard);
        var first = reader.ReadRowGroups().First();
        Assert.AreEqual(7, first.RowIds.Length, "row groups of the size asked for");
        var expected = rows.Single(r => r.Id == first.RowIds[0]).Logits;
        CollectionAssert.AreEqual(expected, first.Logits.Take(Classes.Length).ToArray());
        reader.Verify();
    }

    [TestMethod]
    public void TheWriterRefusesBadRowsAndLeavesNoFileUnlessCommitted()
    {
        using var dir = new TempDir();
        var rows = RandomRows(40, 2);
        var ids = rows.Select(r => r.Id).ToArray();
        var shard = new SoftLabelShard(0, 2);
        var mine = rows.Where(r => shard.Owns(r.Id)).OrderBy(r => SoftLabelRowIds.Hash(r.Id)).ToList();
        var other = rows.First(r => !shard.Owns(r.Id));
        var hash = new byte[32];
        using (var writer = new SoftLabelShardWriter(dir.Path, shard, Info(ids, mine.Count)))
        {
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => writer.Add(mine[0].Id, hash, [1f, float.NaN, 0f]));
            StringAssert.Contains(e.Message, $"Row '{mine[0].Id}', class 1 ('dog')");
            var wrongShard = Assert.ThrowsExactly<ArgumentException>(() => writer.Add(other.Id, hash, other.Logits));
            StringAssert.Contains(wrongShard.Message, "belongs to shard 1 of 2");
            writer.Add(mine[1].Id, hash, mine[1].Logits);
            var order = Assert.ThrowsExactly<ArgumentException>(() => writer.Add(mine[0].Id, hash, mine[0].Logits));
            StringAssert.Contains(order.Message, "hashes lower");
            var count = Assert.ThrowsExactly<InvalidOperationException>(() => writer.Commit());
            StringAssert.Contains(count.Message, $"1 rows labeled and 0 skipped, but {mine.Count} input rows belong to it");
            Assert.IsTrue(File.Exists(writer.TemporaryPath));
        }
        Assert.AreEqual(0, Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories).Length, "no shard file and no temporary file after a failed shard");

        // A killed run leaves its temporary file; the next run of that shard removes it, and only it.
        File.WriteAllText(Path.Combine(dir.Path, ".shard-00000-of-00002.parquet.123.abc.tmp"), "partial");
        File.WriteAllText(Path.Combine(dir.Path, ".shard-00001-of-00002.parquet.456.def.tmp"), "another pod's");
        Assert.AreEqual(1, SoftLabelShardWriter.RemoveStaleTemporaryFiles(dir.Path, shard));
        Assert.IsTrue(File.Exists(Path.Combine(dir.Path, ".shard-00001-of-00002.parquet.456.def.tmp")), "another shard's file is never touched");
    }

    [TestMethod]
    public void MergeErrorsNameTheShardFile()
    {
        using var dir = new TempDir();
        var rows = RandomRows(200, 3);
        string Fresh(string name)
        {
            string d = Path.Combine(dir.Path, name);
            WriteShards(d, rows, 3);
            return d;
        }
        string Error(string d) => Assert.ThrowsExactly<InvalidDataException>(() => SoftLabelSetMerger.Merge(d)).Message;

        string missing = Fresh("missing");
        File.Delete(Path.Combine(missing, "shard-00001-of-00003.parquet"));
        StringAssert.Contains(Error(missing), "lacks 1 of 3 shards: expected 'shard-00001-of-00003.parquet'");

        string foreign = Fresh("foreign");
        WriteShards(foreign, rows, 3, only: 2, fingerprint: new string('2', 64));
        var m = Error(foreign);
        StringAssert.Contains(m, "shard-00002-of-00003.parquet' was labeled by another teacher");

        // One bit of one stored logit flipped (found by its bytes: Snappy keeps random floats as literals): the row checksum catches it.
        string damaged = Fresh("damaged");
        var (firstId, firstLogits) = rows[0];
        string owner = SoftLabelShard.FileNameOf(Enumerable.Range(0, 3).Single(i => new SoftLabelShard(i, 3).Owns(firstId)), 3);
        string victim = Path.Combine(damaged, owner);
        var bytes = File.ReadAllBytes(victim);
        int at = bytes.AsSpan().IndexOf(BitConverter.GetBytes(firstLogits[1]));
        Assert.IsTrue(at > 0, "the logit's bytes are in the file");
        bytes[at] ^= 0x01;
        File.WriteAllBytes(victim, bytes);
        StringAssert.Contains(Error(damaged), $"Soft-label shard '{victim}': its rows do not match the checksum in its metadata (the file is damaged)");

        string truncated = Fresh("truncated");
        victim = Path.Combine(truncated, "shard-00001-of-00003.parquet");
        File.WriteAllBytes(victim, File.ReadAllBytes(victim)[..100]);
        StringAssert.Contains(Error(truncated), "shard-00001-of-00003.parquet' is not a readable Parquet file");

        string mixed = Fresh("mixed");
        WriteShards(mixed, rows, 2, only: 0);
        StringAssert.Contains(Error(mixed), "shard-00000-of-00002.parquet' is one of 2 shards, the others of 3");

        string renamed = Fresh("renamed");
        File.Move(Path.Combine(renamed, "shard-00002-of-00003.parquet"), Path.Combine(renamed, "shard-00001-of-00003.parquet"), overwrite: true);
        StringAssert.Contains(Error(renamed), "says it is shard 2/3 in its metadata but is named as shard 1/3");

        string otherInput = Fresh("other-input");
        WriteShards(Path.Combine(dir.Path, "tmp"), rows.Take(150).ToList(), 3, only: 1);
        File.Copy(Path.Combine(dir.Path, "tmp", "shard-00001-of-00003.parquet"), Path.Combine(otherInput, "shard-00001-of-00003.parquet"), overwrite: true);
        StringAssert.Contains(Error(otherInput), "shard-00001-of-00003.parquet' labeled another input listing (150 rows)");

        Assert.IsFalse(File.Exists(Path.Combine(missing, SoftLabelSetManifest.FileName)), "no manifest for a failed merge");
        Assert.AreEqual(0, Directory.GetFiles(dir.Path, ".*.tmp", SearchOption.AllDirectories).Length, "no temporary files left");
    }

    [TestMethod]
    public void OpeningASetChecksItsIndexAgainstTheManifest()
    {
        using var dir = new TempDir();
        var rows = RandomRows(100, 4);
        WriteShards(dir.Path, rows, 2);
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => SoftLabelSet.Open(dir.Path));
        StringAssert.Contains(e.Message, "merge its shards first (dualhead label merge");
        SoftLabelSetMerger.Merge(dir.Path);
        string index = Path.Combine(dir.Path, "soft-labels.index");
        var bytes = File.ReadAllBytes(index);
        bytes[^3] ^= 1; // one logit's bit
        File.WriteAllBytes(index, bytes);
        var damaged = Assert.ThrowsExactly<InvalidDataException>(() => SoftLabelSet.Open(dir.Path));
        StringAssert.Contains(damaged.Message, "soft-labels.index' does not match the SHA-256 in its manifest");
        File.WriteAllBytes(index, bytes[..^4]);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SoftLabelSet.Open(dir.Path, verify: false)).Message, "100 rows of 3 logits take");
    }

    [TestMethod]
    public void OneClassUnicodeIdsEmptyAndAllSkippedShardsMerge()
    {
        using var dir = new TempDir();
        string[] ids = ["photos/été/ü.jpg", "a b/c d.png", "日本/写真.jpeg", "x\\y.png"];
        var info = (int count, string[] classes) => new SoftLabelShardInfo
        {
            TeacherFingerprint = new string('3', 64), TeacherDescription = "one class", ClassNames = classes,
            InputRows = ids.Length, InputFingerprint = SoftLabelRowIds.ListingFingerprint(ids), ShardInputRows = count,
        };
        const int n = 6; // more shards than rows: some hold none
        var skippedId = ids[0];
        for (int s = 0; s < n; s++)
        {
            var shard = new SoftLabelShard(s, n);
            var mine = ids.Where(shard.Owns).OrderBy(SoftLabelRowIds.Hash).ToList();
            using var writer = new SoftLabelShardWriter(dir.Path, shard, info(mine.Count, ["only"]));
            foreach (var id in mine.Where(i => i != skippedId)) writer.Add(id, new byte[32], [id.Length]);
            writer.Commit(mine.Contains(skippedId) ? [new SoftLabelSkippedRow(skippedId, "not a JPEG")] : []);
        }
        var manifest = SoftLabelSetMerger.Merge(dir.Path);
        Assert.AreEqual(3, manifest.Rows);
        Assert.IsTrue(manifest.Shards.Any(sh => sh.Rows == 0 && sh.Skipped == 0), "an empty shard is a shard");
        Assert.AreEqual(skippedId, manifest.Skipped.Single().RowId);
        using var set = SoftLabelSet.Open(dir.Path);
        var one = new float[1];
        foreach (var id in ids.Skip(1))
        {
            Assert.IsTrue(set.TryGet(id, one), id);
            Assert.AreEqual(id.Length, one[0]);
        }
        Assert.IsFalse(set.TryGet(skippedId, one));

        // The skipped row, asked for by a Fit's data: the error says why it is not there.
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ids.Select(i => new IdRow { Id = i, Features = new float[SyntheticData.D] }));
        using var transformer = ml.Transforms.SoftLabelsFromSet(dir.Path, rowIdColumnName: "Id").Fit(data);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => transformer.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray());
        StringAssert.Contains(e.Message, $"row id '{skippedId}' (column 'Id' = '{skippedId}') was skipped by the labeling job of soft-label set '{dir.Path}': not a JPEG");
    }

    [TestMethod]
    public void AMergeRecomputesTheInputListingFromTheRowsAndRefusesBadShardCountsAndFingerprints()
    {
        using var dir = new TempDir();
        var rows = RandomRows(30, 9);
        var ids = rows.Select(r => r.Id).ToArray();
        // One shard that claims a labeled row is also skipped (and one more input row than it has): the counts add up,
        // the listing does not.
        var shard = SoftLabelShard.Whole;
        var sorted = rows.OrderBy(r => SoftLabelRowIds.Hash(r.Id)).ToList();
        var info = Info(ids, rows.Count + 1) with { InputRows = rows.Count + 1 };
        using (var writer = new SoftLabelShardWriter(dir.Path, shard, info))
        {
            foreach (var (id, logits) in sorted) writer.Add(id, new byte[32], logits);
            writer.Commit([new SoftLabelSkippedRow(sorted[0].Id, "both")]);
        }
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SoftLabelSetMerger.Merge(dir.Path)).Message,
            "are not the input listing the shards were made from");

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SoftLabelShard(0, 100_000));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => SoftLabelShard.Parse("3/100000", "--shard")).Message, "N in 1..99999");
        var bad = Info(ids, 1) with { TeacherFingerprint = "short" };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new SoftLabelShardWriter(Path.Combine(dir.Path, "x"), shard, bad)).Message,
            "is not a teacher fingerprint (64 lowercase hex digits");
        Assert.AreEqual(SoftLabelRowIds.ListingFingerprint(ids), SoftLabelRowIds.ListingFingerprint(ids.Reverse()), "the listing's identity does not depend on order");
        Assert.AreNotEqual(SoftLabelRowIds.ListingFingerprint(ids), SoftLabelRowIds.ListingFingerprint(ids.Append(ids[0])), "a row twice is another listing");
    }

    private sealed class IdRow
    {
        public string Label { get; set; } = "";
        [VectorType(SyntheticData.D)] public float[] Features { get; set; } = [];
        public string Id { get; set; } = "";
    }

    private sealed class Key { public string Label { get; set; } = ""; }

    [TestMethod]
    public void AFitFromASetGivesTheWeightsOfAFitFromTheTeacherColumn()
    {
        var ml = new MLContext(seed: 1);
        var rows = SyntheticData.Rows(24, 96);
        using var dir = new TempDir();
        WriteShards(dir.Path, rows.Select((r, i) => ($"rows/{i}", r.TeacherLogits)).ToList(), 3);
        SoftLabelSetMerger.Merge(dir.Path);

        using var fromColumn = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions()).Fit(SyntheticData.Load(ml, rows, Classes));

        var idData = ml.Data.LoadFromEnumerable(rows.Select((r, i) => new IdRow { Label = r.Label, Features = r.Features, Id = $"rows/{i}" }));
        var keys = ml.Data.LoadFromEnumerable(Classes.Select(n => new Key { Label = n }));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys)
            .Append(ml.Transforms.SoftLabelsFromSet(dir.Path, rowIdColumnName: "Id"))
            .Append(ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions()));
        var fitted = pipeline.Fit(idData);
        using var fromSet = fitted.LastTransformer;
        CollectionAssert.AreEqual(SyntheticData.Weights(fromColumn), SyntheticData.Weights(fromSet), "same seed, same soft labels: same weights");
        ((IDisposable)fitted.Take(2).Last()).Dispose();

        // A row the set does not hold: an error that names the row, its id and the set.
        var extra = rows.Select((r, i) => new IdRow { Label = r.Label, Features = r.Features, Id = i == 50 ? "rows/unlabeled-by-the-job" : $"rows/{i}" });
        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => pipeline.Fit(ml.Data.LoadFromEnumerable(extra)));
        StringAssert.Contains(bad.Message, "Row 50: row id 'rows/unlabeled-by-the-job' (column 'Id' = 'rows/unlabeled-by-the-job') is not in soft-label set");
    }

    [TestMethod]
    public void AZeroShotTeacherGivesItsNormalisedImageEmbeddingAsASecondColumn()
    {
        var ml = new MLContext(seed: 1);
        using var dir = new TempDir();
        const int E = 6, D = 12;
        var projection = TeacherFixtures.RandomMatrix(D, E, 11);
        string encoder = dir.File("image.onnx", TinyOnnxModels.ClipImageEncoder(projection, 1, 3, 4));
        var classEmbeddings = TeacherFixtures.RandomMatrix(3, E, 12);
        var data = TeacherFixtures.Vectors(ml, TeacherFixtures.RandomRows(10, D, 13));
        var options = new ZeroShotTeacherOptions
        {
            InputColumnName = "Pixels", ImageEncoderPath = encoder, ClassNames = Classes, ClassEmbeddings = classEmbeddings,
            EmbeddingColumnName = "ImageEmbedding", LogitScale = 10f, Preprocessing = new TeacherPreprocessing { SourceShape = [1, 3, 4] },
        };
        using var teacher = ml.Transforms.ZeroShotTeacher(options).Fit(data);
        Assert.AreEqual(E, teacher.EmbeddingSize);
        var scored = teacher.Transform(data);
        var embeddings = scored.GetColumn<float[]>("ImageEmbedding").ToArray();
        var logits = scored.GetColumn<float[]>("TeacherLogits").ToArray();
        var unitClasses = ClassEmbeddings.NormalizeRows(classEmbeddings);
        for (int r = 0; r < embeddings.Length; r++)
        {
            Assert.AreEqual(1.0, Math.Sqrt(embeddings[r].Sum(v => (double)v * v)), 1e-5, "L2-normalised");
            for (int c = 0; c < 3; c++)
            {
                double dot = Enumerable.Range(0, E).Sum(j => (double)embeddings[r][j] * unitClasses[c * E + j]);
                Assert.AreEqual(10 * dot, logits[r][c], 1e-4, "logits = scale * embedding . class embedding: new prompts need no image pass");
            }
        }
        options.CacheDirectory = dir.Path;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ZeroShotTeacher(options)).Message, "cannot be combined with CacheDirectory");
    }
}
