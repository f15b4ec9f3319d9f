using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Labeling with a teacher, as a soft-label set: a single process labels every image and writes the merged set
/// (shard-00000-of-00001.parquet, soft-labels.index, manifest.json), soft-labels.tsv for reading, and fills the teacher
/// cache; with a shard of N it labels only the images whose id hashes to that shard and writes that shard's Parquet
/// file (<see cref="Merge"/> then checks and merges the shards). What `dualhead label` and `label merge` call.
/// </summary>
public static class SoftLabelJob
{
    /// <summary>The readable listing a single-process job writes beside the set.</summary>
    public const string TsvFileName = "soft-labels.tsv";
    /// <summary>The column a CLIP teacher's image embeddings go to.</summary>
    public const string EmbeddingColumn = "ImageEmbedding";

    private sealed record Row(string Id, ulong Hash, ImageItem Item);

    /// <summary>Labels the shard <paramref name="s"/> names; errors are <see cref="DistillationRunException"/>s naming the setting as <paramref name="names"/> says.</summary>
    public static LabelJobResult Label(LabelJobSpec s, IDistillationRunProgress? progress = null, RunInputNames? names = null, CancellationToken cancel = default)
    {
        progress ??= new Silent();
        names ??= RunInputNames.Spec;
        var total = Stopwatch.StartNew();
        if (s.Embeddings && !s.Teacher.IsClip) throw DistillationRunException.BadSettings($"{names["Embeddings"]} keeps a CLIP teacher's image embeddings; an ONNX classifier teacher has none.");
        var definition = TeacherDefinition.For(s.Teacher, names);
        if (!definition.RunsOnCrops) throw DistillationRunException.BadSettings($"Labeling runs a teacher model ({names["Teacher.OnnxPath"]} or {names["Teacher.ClipImage"]}); a {definition.Name} is already labeled.");
        definition.Check(s.Teacher, names);
        var (items, ids, inputFingerprint) = List(s, names);
        var mine = ShardRows(s, items, ids, names, progress);
        var skipped = new List<SkippedFile>();
        var readable = new HashSet<string>(ImageListing.Readable(mine.Select(r => r.Item), s.Strict, skipped, cancel, names["Strict"]).Select(r => r.Path));
        foreach (var sk in skipped) progress.Warning($"skipped '{sk.Path}': {sk.Reason}");
        var rows = mine.Where(r => readable.Contains(r.Item.Path)).ToList();

        var ml = new MLContext(seed: 1);
        string[]? classes = s.ClassesFile is { } c ? TeacherClasses.ReadLines(c, names["Classes"]) : null;
        var view = ImageRows.LoadSequential(ml, rows.Select(r => r.Item.Path));
        // A single process keeps the teacher cache in the output folder; shards of a job run without one (a shared cache
        // file would be rewritten by every pod).
        string? cache = s.Sharded || s.Embeddings ? null : Path.Combine(s.Output, "teacher-cache");
        using var opened = definition.Open(new TeacherContext { ML = ml, Spec = s.Teacher, Data = view, Classes = classes, CacheDirectory = cache, EmbeddingColumn = s.Embeddings ? EmbeddingColumn : null, Names = names });
        var teacher = opened.Model!;
        var teacherClasses = teacher.ClassNames?.ToArray() ?? Enumerable.Range(0, teacher.ClassCount).Select(k => $"class{k}").ToArray();
        var info = new SoftLabelShardInfo
        {
            TeacherFingerprint = teacher.Fingerprint,
            TeacherDescription = Describe(s.Teacher, teacher, classes, names),
            ClassNames = teacherClasses,
            EmbeddingSize = teacher.EmbeddingSize,
            InputRows = items.Count,
            InputFingerprint = inputFingerprint,
            ShardInputRows = mine.Count,
        };
        string target = Path.Combine(s.Output, s.Shard.FileName);
        string? why = null;
        if (s.Sharded && Done(target, info, out why, cancel))
        {
            progress.Info($"Shard {s.Shard} is already labeled in {target} by the same teacher on the same input; nothing to do.");
            return new LabelJobResult(target, 0, 0, 0, 0, 0, true, null, null);
        }
        if (why is not null) progress.Warning(why);
        progress.Info($"{rows.Count} images, {teacherClasses.Length} classes; teacher on {teacher.ExecutionProvider}{(s.Embeddings ? $", keeping its {teacher.EmbeddingSize}-value image embeddings" : "")}");
        var watch = Stopwatch.StartNew();
        var idsByPath = mine.ToDictionary(r => r.Item.Path, r => r.Id);
        var tsv = Write(s, teacher, view, rows, skipped, idsByPath, info, teacherClasses, names, progress, cancel);
        double seconds = watch.Elapsed.TotalSeconds;
        progress.Info(string.Create(CultureInfo.InvariantCulture,
            $"Wrote {target}: {rows.Count} images ({skipped.Count} skipped), {teacher.Statistics.RowsComputed} computed and {teacher.Statistics.CacheHits} from the cache, {rows.Count / Math.Max(1e-9, seconds):0.0} images/s, {total.Elapsed.TotalSeconds:0.0} s in all"));
        string? tsvPath = null;
        SoftLabelSetManifest? merged = null;
        if (tsv is not null)
        {
            tsvPath = Path.Combine(s.Output, TsvFileName);
            RunFolder.WriteText(tsvPath, tsv.ToString());
            merged = Merge(s.Output, cancel);
        }
        return new LabelJobResult(target, rows.Count, skipped.Count, teacher.Statistics.RowsComputed, teacher.Statistics.CacheHits, seconds, false, tsvPath, merged);
    }

    /// <summary>Checks a labeling job's shard files (every shard present, one teacher, no duplicate ids, all input rows) and merges them into a soft-label set.</summary>
    public static SoftLabelSetManifest Merge(string folder, CancellationToken cancel = default)
    {
        try
        {
            return SoftLabelSetMerger.Merge(folder, cancel);
        }
        catch (Exception e) when (e is InvalidDataException or DirectoryNotFoundException or FileNotFoundException)
        {
            throw DistillationRunException.BadData(e.Message);
        }
    }

    /// <summary>The whole listing, its row ids and its fingerprint: every shard must see the same input.</summary>
    private static (List<ImageItem> Items, string[] Ids, string Fingerprint) List(LabelJobSpec s, RunInputNames names)
    {
        List<ImageItem> items;
        string root;
        if (s.Manifest is { } file)
        {
            items = ImageManifest.Read(file, names["Manifest"]);
            root = Path.GetDirectoryName(Path.GetFullPath(file))!;
        }
        else if (s.Input is { } dir)
        {
            ImageListing.RequireFolder(dir, names["Input"]);
            root = Path.GetFullPath(dir);
            items = ImageListing.Images(dir).Select(p => new ImageItem(p, null)).ToList();
        }
        else throw DistillationRunException.BadSettings($"Give the images: {names["Input"]} DIR or {names["Manifest"]} FILE.");
        var ids = items.Select(i => SoftLabelRowIds.FromPath(root, i.Path)).ToArray();
        var duplicate = ids.GroupBy(x => x, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw DistillationRunException.BadData($"Image '{duplicate.Key}' is listed twice; every row id must be unique.");
        return (items, ids, SoftLabelRowIds.ListingFingerprint(ids));
    }

    /// <summary>This shard's rows, in row-id hash order (the order of its file and of the merged index); the output folder made ready.</summary>
    private static List<Row> ShardRows(LabelJobSpec s, List<ImageItem> items, string[] ids, RunInputNames names, IDistillationRunProgress progress)
    {
        var mine = Enumerable.Range(0, items.Count).Select(i => new Row(ids[i], SoftLabelRowIds.Hash(ids[i]), items[i]))
            .Where(r => s.Shard.OwnsHash(r.Hash))
            .OrderBy(r => r.Hash).ThenBy(r => r.Id, StringComparer.Ordinal).ToList();
        var otherJob = Directory.Exists(s.Output)
            ? Directory.EnumerateFiles(s.Output, "shard-*.parquet").FirstOrDefault(f => SoftLabelShard.TryParseFileName(Path.GetFileName(f), out var other) && other.Count != s.Shard.Count)
            : null;
        if (otherJob is not null)
            throw DistillationRunException.BadSettings($"{names["Output"]} '{s.Output}' holds '{Path.GetFileName(otherJob)}', a shard of another labeling job (not {s.Shard.Count} shards); give each job its own folder.");
        Directory.CreateDirectory(s.Output);
        int stale = SoftLabelShardWriter.RemoveStaleTemporaryFiles(s.Output, s.Shard);
        if (stale > 0) progress.Warning($"removed {stale} unfinished file(s) of an earlier run of shard {s.Shard} (a killed process); labeling it again");
        progress.Info($"{items.Count} images listed; shard {s.Shard}: {mine.Count} of them");
        return mine;
    }

    /// <summary>Runs the teacher over the rows into the shard's file (committed whole); returns soft-labels.tsv's text for a single-process job.</summary>
    private static StringBuilder? Write(LabelJobSpec s, TeacherSoftLabelsTransformer teacher, IDataView view, List<Row> rows, List<SkippedFile> skipped, Dictionary<string, string> byPath, SoftLabelShardInfo info,
        string[] teacherClasses, RunInputNames names, IDistillationRunProgress progress, CancellationToken cancel)
    {
        var watch = Stopwatch.StartNew();
        var tsv = s.Sharded ? null : new StringBuilder();
        bool probabilities = s.Teacher.Probabilities;
        tsv?.Append("path\tpredicted\tprobability\t").AppendJoin('\t', teacherClasses.Select(n => probabilities ? $"prob:{n}" : $"logit:{n}")).Append('\n');
        using var writer = new SoftLabelShardWriter(s.Output, s.Shard, info, s.RowGroup);
        progress.Training(() =>
        {
            var scored = teacher.Transform(view);
            var columns = new List<DataViewSchema.Column> { scored.Schema["Image"], scored.Schema[RunTeacher.OutputColumn] };
            if (s.Embeddings) columns.Add(scored.Schema[EmbeddingColumn]);
            using var cursor = scored.GetRowCursor(columns);
            var image = cursor.GetGetter<VBuffer<byte>>(scored.Schema["Image"]);
            var logitsGetter = cursor.GetGetter<VBuffer<float>>(scored.Schema[RunTeacher.OutputColumn]);
            var embeddingGetter = s.Embeddings ? cursor.GetGetter<VBuffer<float>>(scored.Schema[EmbeddingColumn]) : null;
            VBuffer<byte> bytes = default;
            VBuffer<float> buffer = default, embedding = default;
            var hash = new byte[32];
            int row = 0;
            while (cursor.MoveNext())
            {
                cancel.ThrowIfCancellationRequested();
                var (id, _, item) = rows[row];
                image(ref bytes);
                SHA256.HashData(bytes.GetValues(), hash);
                logitsGetter(ref buffer);
                var logits = buffer.DenseValues().ToArray();
                // A teacher that gives probabilities is stored as log-probabilities (what the trainer makes of them),
                // so a set always holds logits.
                var stored = probabilities ? LogOf(logits, item.Path, names) : logits;
                ReadOnlySpan<float> embeddingValues = default;
                if (embeddingGetter is not null)
                {
                    embeddingGetter(ref embedding);
                    embeddingValues = embedding.GetValues();
                }
                try
                {
                    writer.Add(id, hash, stored, embeddingValues);
                }
                catch (ArgumentOutOfRangeException e)
                {
                    throw DistillationRunException.BadModel($"'{item.Path}': {e.Message.Split(" (Parameter")[0]}");
                }
                if (tsv is not null) AppendTsv(tsv, item.Path, logits, teacherClasses, probabilities);
                row++;
                if (row % 64 == 0 || row == rows.Count) progress.Teacher(row, rows.Count, watch.Elapsed.TotalSeconds);
            }
            return row;
        });
        cancel.ThrowIfCancellationRequested();
        writer.Commit(skipped.Select(k => new SoftLabelSkippedRow(byPath[k.Path], k.Reason)).ToArray());
        return tsv;
    }

    private static void AppendTsv(StringBuilder tsv, string path, float[] logits, string[] teacherClasses, bool probabilities)
    {
        int best = ClassifierScores.ArgMax(logits);
        double max = logits.Max(), top = probabilities ? max : 1 / logits.Sum(v => Math.Exp(v - max)); // softmax of logits; probabilities as given
        tsv.Append(path).Append('\t').Append(teacherClasses[best]).Append('\t')
            .Append(top.ToString("0.######", CultureInfo.InvariantCulture)).Append('\t')
            .AppendJoin('\t', logits.Select(v => v.ToString("R", CultureInfo.InvariantCulture))).Append('\n');
    }

    /// <summary>log(max(p, 1e-12)) of probabilities in [0, 1], as the trainer turns TeacherOutputKind.Probabilities into logits.</summary>
    private static float[] LogOf(float[] probabilities, string path, RunInputNames names)
    {
        var logits = new float[probabilities.Length];
        for (int c = 0; c < logits.Length; c++)
        {
            float p = probabilities[c];
            if (!(p >= 0 && p <= 1.0001f))
                throw DistillationRunException.BadModel($"'{path}': the teacher gave {p} for class {c}, but {names["Teacher.Probabilities"]} says it outputs probabilities in [0, 1].");
            logits[c] = MathF.Log(MathF.Max(p, 1e-12f));
        }
        return logits;
    }

    /// <summary>
    /// True when the shard's file is complete, checks out, skipped nothing, and was made by this teacher from this input
    /// (a retried pod has nothing to do). A shard with skipped images is labeled again: a read that failed may work now.
    /// </summary>
    private static bool Done(string path, SoftLabelShardInfo info, out string? why, CancellationToken cancel)
    {
        why = null;
        if (!File.Exists(path)) return false;
        try
        {
            using var reader = SoftLabelShardReader.Open(path);
            if (reader.Info.TeacherFingerprint != info.TeacherFingerprint || reader.Info.InputFingerprint != info.InputFingerprint
                || !reader.Info.ClassNames.SequenceEqual(info.ClassNames) || reader.Info.EmbeddingSize != info.EmbeddingSize)
            {
                why = $"'{path}' was labeled by another teacher or from another input listing; labeling the shard again";
                return false;
            }
            if (reader.Skipped.Count > 0)
            {
                why = $"'{path}' skipped {reader.Skipped.Count} unreadable image(s); labeling the shard again";
                return false;
            }
            reader.Verify(cancel);
            return true;
        }
        catch (InvalidDataException e)
        {
            why = $"{e.Message.Split(" Delete it")[0]} Labeling the shard again.";
            return false;
        }
    }

    /// <summary>What the fingerprint stands for, readable: the teacher's files, preprocessing, classes and prompts.</summary>
    private static string Describe(TeacherSpec t, TeacherSoftLabelsTransformer teacher, IReadOnlyList<string>? classes, RunInputNames names)
    {
        object description = t.IsClip
            ? new
            {
                kind = "clip-zero-shot",
                image_encoder = Path.GetFileName(t.ClipImage),
                text_encoder = Path.GetFileName(t.ClipText),
                templates = t.ClipTemplatesFile is { } f ? TeacherClasses.ReadLines(f, names["Teacher.ClipTemplatesFile"]) : ClipPromptTemplates.Default.ToArray(),
                prompts = classes is null ? null : TeacherClasses.Prompts(classes, t.ClassPromptsFile, names["Teacher.ClassPromptsFile"]),
                preprocessing = teacher.Preprocessing?.Describe() ?? "none",
                classes = teacher.ClassNames,
            }
            : new
            {
                kind = "onnx",
                model = Path.GetFileName(t.OnnxPath),
                output = t.OnnxOutput,
                stored = t.Probabilities ? "log of the teacher's probabilities" : "the teacher's logits",
                preprocessing = teacher.Preprocessing?.Describe() ?? "none",
                classes = teacher.ClassNames,
            };
        return JsonSerializer.Serialize(description);
    }
    private sealed class Silent : IDistillationRunProgress;
}
