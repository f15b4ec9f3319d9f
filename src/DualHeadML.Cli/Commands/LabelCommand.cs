using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using DualHeadML.Cli.Console;
using Microsoft.ML.DualHeadDistillation.Runs;
using DualHeadML.Cli.Labeling;
using DualHeadML.Cli.Options;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Cli.Commands;

/// <summary>
/// `dualhead label`: the teacher's soft labels as a soft-label set. A single process labels every image and writes the
/// merged set (shard-00000-of-00001.parquet, soft-labels.index, manifest.json), soft-labels.tsv for reading, and fills the
/// teacher cache. With --shard I/N (or a Kubernetes Indexed Job's JOB_COMPLETION_INDEX) it labels only the images whose
/// id hashes to shard I and writes that shard's Parquet file; `dualhead label merge DIR` then checks and merges the shards.
/// A row's id is the image's path relative to --input (or to the manifest's folder).
/// </summary>
public static class LabelCommand
{
    public const string FileName = "soft-labels.tsv";
    private const string EmbeddingColumn = "ImageEmbedding";

    public static Command Build(Option<bool> plain)
    {
        var input = new Option<string?>("--input") { Description = "Folder of images to label (any depth); row ids are paths relative to it.", HelpName = "DIR" };
        var manifest = new Option<string?>("--manifest") { Description = "CSV/TSV of path[,label] lines instead of a folder; row ids are paths relative to its folder.", HelpName = "FILE" };
        var classes = new Option<string?>("--classes") { Description = "Class names, one per line (required for a CLIP teacher; an ONNX teacher has its own).", HelpName = "FILE" };
        var output = new Option<string>("--output", "-o") { Description = "Folder of the soft-label set (a shared volume or object-store mount for a sharded job).", Required = true, HelpName = "DIR" };
        var strict = new Option<bool>("--strict") { Description = "Fail on an unreadable image instead of skipping it." };
        var shard = new Option<string?>("--shard") { Description = "Label shard I of N only (0-based), e.g. 2/8; default: JOB_COMPLETION_INDEX of a Kubernetes Indexed Job, else the whole input.", HelpName = "I/N" };
        var shards = new Option<int?>("--shards") { Description = "N, the shard count, when the index comes from JOB_COMPLETION_INDEX (default: JOB_COMPLETIONS).", HelpName = "N" };
        var embeddings = new Option<bool>("--embeddings") { Description = "CLIP teacher: also keep each image's L2-normalised embedding (float16), so class names or prompts can change without running the image encoder again." };
        var rowGroup = new Option<int?>("--row-group") { Description = "Rows per Parquet row group (default: about 4 MB of values, at most 8,192 rows).", HelpName = "N" };
        var teacherOptions = TeacherOptions.Create();
        var command = new Command("label", "Run the teacher over images and write its soft labels as a soft-label set (one shard of a labeling job with --shard).")
        {
            input, manifest, classes, output, strict, shard, shards, embeddings, rowGroup, BuildMerge(plain),
        };
        teacherOptions.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                var (selected, sharded) = ShardSelection.Resolve(parse.GetValue(shard), parse.GetValue(shards), Environment.GetEnvironmentVariable);
                var settings = new LabelSettings(parse.GetValue(input), parse.GetValue(manifest), parse.GetValue(classes), Path.GetFullPath(parse.GetValue(output)!),
                    parse.GetValue(strict), selected, sharded, parse.GetValue(embeddings), parse.GetValue(rowGroup) is { } g ? TrainCommand.Positive(g, "--row-group") : null, teacherOptions.Read(parse, new TeacherSpec()), new RunInputNames(teacherOptions.Names.Append(KeyValuePair.Create("Classes", "--classes")).ToDictionary(p => p.Key, p => p.Value)));
                bool created = !Directory.Exists(settings.Output);
                try
                {
                    return Label(ui, settings, cancel);
                }
                catch when (created)
                {
                    // A failed first run leaves no empty output folder behind (a shard's own temporary file is already gone).
                    try { if (Directory.Exists(settings.Output) && !Directory.EnumerateFileSystemEntries(settings.Output).Any()) Directory.Delete(settings.Output); }
                    catch (IOException) { }
                    throw;
                }
            }, cancel);
        });
        return command;
    }

    private static Command BuildMerge(Option<bool> plain)
    {
        var folder = new Argument<string>("DIR") { Description = "The output folder of the labeling job's shards." };
        var command = new Command("merge", "Check a labeling job's shard files (every shard present, one teacher, no duplicate ids, all input rows) and merge them into a soft-label set (soft-labels.index, manifest.json).") { folder };
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                var watch = Stopwatch.StartNew();
                var m = Merge(parse.GetValue(folder)!, cancel);
                ui.Info(string.Create(CultureInfo.InvariantCulture,
                    $"Merged {m.Shards.Count} shards into {Path.GetFullPath(parse.GetValue(folder)!)}: {m.Rows} rows ({m.Skipped.Count} skipped of {m.InputRows} input rows), {m.Classes.Count} classes, teacher {m.TeacherFingerprint[..12]}…; {SoftLabelSetManifest.FileName} written in {watch.Elapsed.TotalSeconds:0.0} s"));
                return ExitCodes.Success;
            }, cancel);
        });
        return command;
    }

    /// <summary>Merges, turning the set's checks into data errors (exit 3) that name the shard file.</summary>
    private static SoftLabelSetManifest Merge(string folder, CancellationToken cancel)
    {
        try
        {
            return SoftLabelSetMerger.Merge(folder, cancel);
        }
        catch (Exception e) when (e is InvalidDataException or DirectoryNotFoundException or FileNotFoundException)
        {
            throw new UsageException(ExitCodes.DataError, e.Message);
        }
    }

    private sealed record LabelSettings(string? Input, string? Manifest, string? Classes, string Output, bool Strict, SoftLabelShard Shard, bool Sharded,
        bool Embeddings, int? RowGroup, TeacherSpec Teacher, RunInputNames Names);

    private static int Label(RunDisplay ui, LabelSettings s, CancellationToken cancel)
    {
        var total = Stopwatch.StartNew();
        if (s.Embeddings && !s.Teacher.IsClip) throw new UsageException(ExitCodes.UsageError, "--embeddings keeps a CLIP teacher's image embeddings; an ONNX classifier teacher has none.");
        var definition = TeacherDefinition.For(s.Teacher, s.Names);
        if (definition.Name == "SoftLabelSet") throw new UsageException(ExitCodes.UsageError, "dualhead label runs a teacher model (--teacher or --clip-image); --soft-labels is a set already labeled.");
        definition.Check(s.Teacher, s.Names);
        // 1. The whole listing, its row ids and its fingerprint: every shard must see the same input.
        List<ImageItem> items;
        string root;
        if (s.Manifest is { } file)
        {
            items = ImageManifest.Read(file, "--manifest");
            root = Path.GetDirectoryName(Path.GetFullPath(file))!;
        }
        else if (s.Input is { } dir)
        {
            ImageListing.RequireFolder(dir, "--input");
            root = Path.GetFullPath(dir);
            items = ImageListing.Images(dir).Select(p => new ImageItem(p, null)).ToList();
        }
        else throw new UsageException(ExitCodes.UsageError, "Give the images: --input DIR or --manifest FILE.");
        var ids = items.Select(i => SoftLabelRowIds.FromPath(root, i.Path)).ToArray();
        var duplicate = ids.GroupBy(x => x, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new UsageException(ExitCodes.DataError, $"Image '{duplicate.Key}' is listed twice; every row id must be unique.");
        string inputFingerprint = SoftLabelRowIds.ListingFingerprint(ids);

        // 2. This shard's rows, in row-id hash order (the order of its file and of the merged index).
        var mine = Enumerable.Range(0, items.Count).Select(i => (Id: ids[i], Hash: SoftLabelRowIds.Hash(ids[i]), Item: items[i]))
            .Where(r => s.Shard.OwnsHash(r.Hash))
            .OrderBy(r => r.Hash).ThenBy(r => r.Id, StringComparer.Ordinal).ToList();
        var otherJob = Directory.Exists(s.Output)
            ? Directory.EnumerateFiles(s.Output, "shard-*.parquet").FirstOrDefault(f => SoftLabelShard.TryParseFileName(Path.GetFileName(f), out var other) && other.Count != s.Shard.Count)
            : null;
        if (otherJob is not null)
            throw new UsageException(ExitCodes.UsageError, $"--output '{s.Output}' holds '{Path.GetFileName(otherJob)}', a shard of another labeling job (not {s.Shard.Count} shards); give each job its own folder.");
        Directory.CreateDirectory(s.Output);
        int stale = SoftLabelShardWriter.RemoveStaleTemporaryFiles(s.Output, s.Shard);
        if (stale > 0) ui.Warn($"removed {stale} unfinished file(s) of an earlier run of shard {s.Shard} (a killed process); labeling it again");
        ui.Info($"{items.Count} images listed; shard {s.Shard}: {mine.Count} of them");

        var skipped = new List<SkippedFile>();
        var byPath = mine.ToDictionary(r => r.Item.Path, r => r.Id);
        var readable = ImageListing.Readable(mine.Select(r => r.Item), s.Strict, skipped, cancel);
        foreach (var sk in skipped) ui.Warn($"skipped '{sk.Path}': {sk.Reason}");
        var keep = new HashSet<string>(readable.Select(r => r.Path));
        var rows = mine.Where(r => keep.Contains(r.Item.Path)).ToList();

        var ml = new MLContext(seed: 1);
        string[]? names = s.Classes is { } c ? TeacherClasses.ReadLines(c, "--classes") : null;
        var view = ImageRows.LoadSequential(ml, rows.Select(r => r.Item.Path));
        // A single process keeps the teacher cache in the output folder; shards of a job run without one (a shared cache
        // file would be rewritten by every pod).
        string? cache = s.Sharded || s.Embeddings ? null : Path.Combine(s.Output, "teacher-cache");
        using var opened = definition.Open(new TeacherContext { ML = ml, Spec = s.Teacher, Data = view, Classes = names, CacheDirectory = cache, EmbeddingColumn = s.Embeddings ? EmbeddingColumn : null, Names = s.Names });
        var teacher = opened.Model!;
        var teacherClasses = teacher.ClassNames?.ToArray() ?? Enumerable.Range(0, teacher.ClassCount).Select(k => $"class{k}").ToArray();
        var info = new SoftLabelShardInfo
        {
            TeacherFingerprint = teacher.Fingerprint,
            TeacherDescription = Describe(s.Teacher, teacher, names),
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
            ui.Info($"Shard {s.Shard} is already labeled in {target} by the same teacher on the same input; nothing to do.");
            return ExitCodes.Success;
        }
        if (why is not null) ui.Warn(why);
        ui.Info($"{rows.Count} images, {teacherClasses.Length} classes; teacher on {teacher.ExecutionProvider}{(s.Embeddings ? $", keeping its {teacher.EmbeddingSize}-value image embeddings" : "")}");

        var watch = Stopwatch.StartNew();
        var tsv = s.Sharded ? null : new StringBuilder();
        bool probabilities = s.Teacher.Probabilities;
        tsv?.Append("path\tpredicted\tprobability\t").AppendJoin('\t', teacherClasses.Select(n => probabilities ? $"prob:{n}" : $"logit:{n}")).Append('\n');
        using (var writer = new SoftLabelShardWriter(s.Output, s.Shard, info, s.RowGroup))
        {
            ui.Run(sink =>
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
                    var stored = probabilities ? LogOf(logits, item.Path) : logits;
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
                        throw new UsageException(ExitCodes.ModelError, $"'{item.Path}': {e.Message.Split(" (Parameter")[0]}");
                    }
                    if (tsv is not null)
                    {
                        int best = ClassifierScores.ArgMax(logits);
                        double max = logits.Max(), top = probabilities ? max : 1 / logits.Sum(v => Math.Exp(v - max)); // softmax of logits; probabilities as given
                        tsv.Append(item.Path).Append('\t').Append(teacherClasses[best]).Append('\t')
                            .Append(top.ToString("0.######", CultureInfo.InvariantCulture)).Append('\t')
                            .AppendJoin('\t', logits.Select(v => v.ToString("R", CultureInfo.InvariantCulture))).Append('\n');
                    }
                    row++;
                    if (row % 64 == 0 || row == rows.Count) sink.Teacher(row, rows.Count, watch.Elapsed.TotalSeconds);
                }
                return row;
            });
            cancel.ThrowIfCancellationRequested();
            writer.Commit(skipped.Select(k => new SoftLabelSkippedRow(byPath[k.Path], k.Reason)).ToArray());
        }
        double seconds = watch.Elapsed.TotalSeconds;
        ui.Info(string.Create(CultureInfo.InvariantCulture,
            $"Wrote {target}: {rows.Count} images ({skipped.Count} skipped), {teacher.Statistics.RowsComputed} computed and {teacher.Statistics.CacheHits} from the cache, {rows.Count / Math.Max(1e-9, seconds):0.0} images/s, {total.Elapsed.TotalSeconds:0.0} s in all"));
        if (tsv is null)
        {
            ui.Info($"Shard {s.Shard} done. When every shard is, merge them: dualhead label merge {s.Output}");
            return ExitCodes.Success;
        }
        string tsvPath = Path.Combine(s.Output, FileName);
        RunFolder.WriteText(tsvPath, tsv.ToString());
        var merged = Merge(s.Output, cancel);
        ui.Info($"Wrote {tsvPath} and the soft-label set ({merged.Rows} rows, {SoftLabelSetManifest.FileName}); train from it with dualhead train --soft-labels {s.Output}");
        return ExitCodes.Success;
    }

    /// <summary>log(max(p, 1e-12)) of probabilities in [0, 1], as the trainer turns TeacherOutputKind.Probabilities into logits.</summary>
    private static float[] LogOf(float[] probabilities, string path)
    {
        var logits = new float[probabilities.Length];
        for (int c = 0; c < logits.Length; c++)
        {
            float p = probabilities[c];
            if (!(p >= 0 && p <= 1.0001f))
                throw new UsageException(ExitCodes.ModelError, $"'{path}': the teacher gave {p} for class {c}, but --teacher-probabilities says it outputs probabilities in [0, 1].");
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
    private static string Describe(TeacherSpec t, TeacherSoftLabelsTransformer teacher, IReadOnlyList<string>? classes)
    {
        object description = t.IsClip
            ? new
            {
                kind = "clip-zero-shot",
                image_encoder = Path.GetFileName(t.ClipImage),
                text_encoder = Path.GetFileName(t.ClipText),
                templates = t.ClipTemplatesFile is { } f ? TeacherClasses.ReadLines(f, "--clip-templates") : ClipPromptTemplates.Default.ToArray(),
                prompts = classes is null ? null : TeacherClasses.Prompts(classes, t.ClassPromptsFile, "--class-prompts"),
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
}
