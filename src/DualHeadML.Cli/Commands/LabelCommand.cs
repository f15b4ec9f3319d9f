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

    public static Command Build(Option<bool> plain)
    {
        var output = new Option<string>("--output", "-o") { Description = "Folder of the soft-label set (a shared volume or object-store mount for a sharded job).", Required = true, HelpName = "DIR" };
        var shard = new Option<string?>("--shard") { Description = "Label shard I of N only (0-based), e.g. 2/8; default: JOB_COMPLETION_INDEX of a Kubernetes Indexed Job, else the whole input.", HelpName = "I/N" };
        var shards = new Option<int?>("--shards") { Description = "N, the shard count, when the index comes from JOB_COMPLETION_INDEX (default: JOB_COMPLETIONS).", HelpName = "N" };
        var settingsTable = LabelOptions.Create();
        var teacherOptions = TeacherOptions.Create();
        var command = new Command("label", "Run the teacher over images and write its soft labels as a soft-label set (one shard of a labeling job with --shard).")
        {
            output, shard, shards, BuildMerge(plain),
        };
        settingsTable.AddTo(command);
        teacherOptions.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                var (selected, sharded) = ShardSelection.Resolve(parse.GetValue(shard), parse.GetValue(shards), Environment.GetEnvironmentVariable);
                var spec = settingsTable.Read(parse, new LabelJobSpec { Output = Path.GetFullPath(parse.GetValue(output)!), Shard = selected, Sharded = sharded });
                spec = spec with { Teacher = teacherOptions.Read(parse, spec.Teacher) };
                var names = new RunInputNames(settingsTable.NamesAsTyped(parse).Concat(teacherOptions.NamesAsTyped(parse)).Append(KeyValuePair.Create("Output", "--output"))
                    .ToDictionary(p => p.Key, p => p.Value));
                bool created = !Directory.Exists(spec.Output);
                try
                {
                    var result = SoftLabelJob.Label(spec, new DisplayProgress(ui), names, cancel);
                    if (result.AlreadyDone) return ExitCodes.Success;
                    if (result.Merged is { } merged)
                        ui.Info($"Wrote {result.TsvFile} and the soft-label set ({merged.Rows} rows, {SoftLabelSetManifest.FileName}); train from it with dualhead train --soft-labels {spec.Output}");
                    else
                        ui.Info($"Shard {spec.Shard} done. When every shard is, merge them: dualhead label merge {spec.Output}");
                    return ExitCodes.Success;
                }
                catch when (created)
                {
                    // A failed first run leaves no empty output folder behind (a shard's own temporary file is already gone).
                    try { if (Directory.Exists(spec.Output) && !Directory.EnumerateFileSystemEntries(spec.Output).Any()) Directory.Delete(spec.Output); }
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
                var m = SoftLabelJob.Merge(parse.GetValue(folder)!, cancel);
                ui.Info(string.Create(CultureInfo.InvariantCulture,
                    $"Merged {m.Shards.Count} shards into {Path.GetFullPath(parse.GetValue(folder)!)}: {m.Rows} rows ({m.Skipped.Count} skipped of {m.InputRows} input rows), {m.Classes.Count} classes, teacher {m.TeacherFingerprint[..12]}…; {SoftLabelSetManifest.FileName} written in {watch.Elapsed.TotalSeconds:0.0} s"));
                return ExitCodes.Success;
            }, cancel);
        });
        return command;
    }
}
