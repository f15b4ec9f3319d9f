using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using DualHeadML.Cli.Console;
using DualHeadML.Cli.Data;
using DualHeadML.Cli.Reports;
using DualHeadML.Cli.Teachers;
using DualHeadML.Cli.Training;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DualHeadML.Cli.Commands;

/// <summary>
/// `dualhead label`: the teacher's soft labels only, for inspection (soft-labels.tsv: file, top class, its probability,
/// the K logits, or probabilities with --teacher-probabilities) and to fill the teacher cache (teacher-cache/), which a
/// later `label` over the same images reads instead of running the teacher.
/// </summary>
public static class LabelCommand
{
    public const string FileName = "soft-labels.tsv";

    public static Command Build(Option<bool> plain)
    {
        var input = new Option<string?>("--input") { Description = "Folder of images to label (any depth).", HelpName = "DIR" };
        var manifest = new Option<string?>("--manifest") { Description = "CSV/TSV of path[,label] lines instead of a folder.", HelpName = "FILE" };
        var classes = new Option<string?>("--classes") { Description = "Class names, one per line (required for a CLIP teacher; an ONNX teacher has its own).", HelpName = "FILE" };
        var output = new Option<string>("--output", "-o") { Description = "Folder for soft-labels.tsv and teacher-cache/.", Required = true, HelpName = "DIR" };
        var strict = new Option<bool>("--strict") { Description = "Fail on an unreadable image instead of skipping it." };
        var teacherOptions = new TeacherOptionSet();
        var command = new Command("label", "Run the teacher over images and write its soft labels (with the on-disk cache).") { input, manifest, classes, output, strict };
        teacherOptions.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                var total = Stopwatch.StartNew();
                List<ImageItem> items;
                if (parse.GetValue(manifest) is { } file) items = Manifest.Read(file);
                else if (parse.GetValue(input) is { } dir)
                {
                    ImageListing.RequireFolder(dir, "--input");
                    items = ImageListing.Images(dir).Select(p => new ImageItem(p, null)).ToList();
                }
                else throw new UsageException(ExitCodes.UsageError, "Give the images: --input DIR or --manifest FILE.");
                var skipped = new List<SkippedFile>();
                items = ImageListing.Readable(items, parse.GetValue(strict), skipped, cancel);
                foreach (var s in skipped) ui.Warn($"skipped '{s.Path}': {s.Reason}");
                if (items.Count == 0) throw new UsageException(ExitCodes.DataError, "No readable images to label.");
                string outDir = Path.GetFullPath(parse.GetValue(output)!);
                Directory.CreateDirectory(outDir);
                var ml = new MLContext(seed: 1);
                string[]? names = parse.GetValue(classes) is { } c ? TeacherFactory.ReadLines(c, "--classes") : null;
                var view = ImageData.Load(ml, items.Select(i => i with { Label = null }), names ?? ["?"]);
                var teacherSettings = teacherOptions.Read(parse);
                using var teacher = TeacherFactory.Create(ml, teacherSettings, names, Path.Combine(outDir, "teacher-cache"), view);
                bool probabilities = teacherSettings.Probabilities;
                var teacherClasses = teacher.ClassNames?.ToArray() ?? Enumerable.Range(0, teacher.ClassCount).Select(k => $"class{k}").ToArray();
                ui.Info($"{items.Count} images, {teacherClasses.Length} classes; teacher on {teacher.ExecutionProvider}");
                var lines = new StringBuilder();
                lines.Append("path\tpredicted\tprobability\t").AppendJoin('\t', teacherClasses.Select(n => probabilities ? $"prob:{n}" : $"logit:{n}")).Append('\n');
                var watch = Stopwatch.StartNew();
                ui.Run(sink =>
                {
                    var scored = teacher.Transform(view);
                    using var cursor = scored.GetRowCursor([scored.Schema[TeacherFactory.OutputColumn]]);
                    var getter = cursor.GetGetter<VBuffer<float>>(scored.Schema[TeacherFactory.OutputColumn]);
                    VBuffer<float> buffer = default;
                    int row = 0;
                    while (cursor.MoveNext())
                    {
                        cancel.ThrowIfCancellationRequested();
                        getter(ref buffer);
                        var logits = buffer.DenseValues().ToArray();
                        int best = ClassifierScores.ArgMax(logits);
                        double max = logits.Max(), top = probabilities ? max : 1 / logits.Sum(v => Math.Exp(v - max)); // softmax of logits; probabilities as given
                        lines.Append(items[row].Path).Append('\t').Append(teacherClasses[best]).Append('\t')
                            .Append(top.ToString("0.######", CultureInfo.InvariantCulture)).Append('\t')
                            .AppendJoin('\t', logits.Select(v => v.ToString("R", CultureInfo.InvariantCulture))).Append('\n');
                        row++;
                        if (row % 64 == 0 || row == items.Count) sink.Teacher(row, items.Count, watch.Elapsed.TotalSeconds);
                    }
                    return row;
                });
                string tsv = Path.Combine(outDir, FileName);
                TrainRun.WriteAtomic(tsv, lines.ToString());
                ui.Info(string.Create(CultureInfo.InvariantCulture,
                    $"Wrote {tsv}: {items.Count} images ({skipped.Count} skipped), {teacher.Statistics.RowsComputed} computed and {teacher.Statistics.CacheHits} from the cache, {items.Count / Math.Max(1e-9, watch.Elapsed.TotalSeconds):0.0} images/s, {total.Elapsed.TotalSeconds:0.0} s in all"));
                return ExitCodes.Success;
            }, cancel);
        });
        return command;
    }
}
