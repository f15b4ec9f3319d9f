using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using DualHeadML.Cli.Console;
using DualHeadML.Cli.Options;
using Microsoft.ML.DualHeadDistillation.Runs;
using DualHeadML.Cli.Reports;
using DualHeadML.Cli.Training;

namespace DualHeadML.Cli.Commands;

/// <summary>`dualhead evaluate`: accuracy, per-class accuracy and the confusion matrix on a folder of labeled images.</summary>
public static class EvaluateCommand
{
    public static Command Build(Option<bool> plain)
    {
        var model = new Option<string>("--model", "-m") { Description = "model.zip, or the output folder of `dualhead train`.", Required = true, HelpName = "PATH" };
        var data = new Option<string>("--data") { Description = "Labeled images: one subfolder per class.", Required = true, HelpName = "DIR" };
        var strict = new Option<bool>("--strict") { Description = "Fail on an unreadable image instead of skipping it." };
        var json = new Option<string?>("--json") { Description = "Also write the figures as JSON to FILE.", HelpName = "FILE" };
        var command = new Command("evaluate", "Accuracy, per-class accuracy and confusion matrix of a model on a folder of labeled images (beside the teacher's, with --teacher or --clip-*).") { model, data, strict, json };
        var teacherOptions = TeacherOptions.Create();
        teacherOptions.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                using var loaded = LoadedModel.Open(parse.GetValue(model)!);
                var (classes, items) = ImageListing.ReadClassFolders(parse.GetValue(data)!, "--data");
                var unknown = classes.Where(c => !loaded.Classes.Contains(c, StringComparer.OrdinalIgnoreCase)).ToArray();
                if (unknown.Length > 0)
                    throw new UsageException(ExitCodes.DataError, $"--data has class folders the model does not know: {string.Join(", ", unknown)} (model classes: {string.Join(", ", loaded.Classes)}).");
                var skipped = new List<SkippedFile>();
                items = ImageListing.Readable(items, parse.GetValue(strict), skipped, cancel);
                foreach (var s in skipped) ui.Warn($"skipped '{s.Path}': {s.Reason}");
                if (items.Count == 0) throw new UsageException(ExitCodes.DataError, $"--data '{parse.GetValue(data)}' has no readable images.");
                var labels = items.Select(i => Array.FindIndex(loaded.Classes, c => string.Equals(c, i.Label, StringComparison.OrdinalIgnoreCase))).ToArray();
                var (score, ce, kd) = loaded.Score(items.Select(i => i.Path).ToArray(), cancel);
                int k = loaded.Classes.Length;
                var results = new List<ClassifierScores>();
                var teacherSpec = teacherOptions.Read(parse, new Microsoft.ML.DualHeadDistillation.Teachers.TeacherSpec());
                if (TeacherScoring.NamesATeacher(teacherSpec))
                {
                    var names = new RunInputNames(teacherOptions.NamesAsTyped(parse).ToDictionary(p => p.Key, p => p.Value));
                    results.Add(ClassifierScores.From("teacher", labels, TeacherScoring.Score(teacherSpec, items, loaded.Classes, names, cancel), k));
                }
                results.Add(ClassifierScores.From("model", labels, score, k));
                if (ce is not null) results.Add(ClassifierScores.From("CE head", labels, ce, k));
                if (kd is not null) results.Add(ClassifierScores.From("KD head", labels, kd, k));
                ui.Info($"{items.Count} images of {classes.Length} classes ({skipped.Count} skipped) scored with {loaded.Path}");
                ui.Table("Accuracy", ["", .. results.Select(r => r.Name)],
                    [["all classes", .. results.Select(r => P(r.Accuracy))],
                     .. loaded.Classes.Select((c, i) => (IReadOnlyList<string>)[c, .. results.Select(r => P(r.PerClassAccuracy[i]))])]);
                var m = results.First(r => r.Name == "model").Confusion;
                ui.Table("Confusion matrix (rows: true class, columns: predicted)", ["true \\ predicted", .. loaded.Classes],
                    loaded.Classes.Select((c, t) => (IReadOnlyList<string>)[c, .. m[t].Select(v => v.ToString(CultureInfo.InvariantCulture))]));
                if (parse.GetValue(json) is { } file)
                    RunFolder.WriteText(Path.GetFullPath(file), JsonSerializer.Serialize(new
                    {
                        model = loaded.Path,
                        images = items.Count,
                        skipped = skipped.Count,
                        classes = loaded.Classes,
                        accuracy = results.First(r => r.Name == "model").Accuracy,
                        results = results.Select(r => new { name = r.Name, accuracy = r.Accuracy, per_class = r.PerClassAccuracy.Select(a => double.IsNaN(a) ? (double?)null : a), confusion = r.Confusion }),
                    }, new JsonSerializerOptions { WriteIndented = true }));
                return ExitCodes.Success;
            }, cancel);
        });
        return command;
    }

    private static string P(double v) => double.IsNaN(v) ? "-" : v.ToString("P2", CultureInfo.InvariantCulture);
}
