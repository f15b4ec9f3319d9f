using System.CommandLine;
using System.Globalization;
using DualHeadML.Cli.Console;
using DualHeadML.Cli.Options;
using DualHeadML.Cli.Reports;
using Microsoft.ML.DualHeadDistillation.Diagnosis;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace DualHeadML.Cli.Commands;

/// <summary>
/// `dualhead diagnose`: will distillation pay off? The teacher on the labeled images (and a sample of the unlabeled
/// ones), its accuracy, confusions and calibration, and the verdict, in seconds and before any training
/// (the library's <see cref="RunDiagnosis"/>). The images and teacher options are train's.
/// </summary>
public static class DiagnoseCommand
{
    private static readonly string[] ImageOptions = ["--labeled", "--unlabeled", "--validation", "--manifest", "--strict", "--soft-labels", "--soft-labels-root"];

    public static Command Build(Option<bool> plain)
    {
        var sample = new Option<int>("--unlabeled-sample") { Description = "Unlabeled images the teacher runs on (evenly spread) for its entropy.", DefaultValueFactory = _ => RunDiagnosis.DefaultUnlabeledSample, HelpName = "N" };
        var cache = new Option<string?>("--cache") { Description = "Keep the teacher's answers in this soft-label cache folder (a later train with the same folder reuses them).", HelpName = "DIR" };
        var json = new Option<string?>("--json") { Description = "Also write the diagnosis as JSON to FILE.", HelpName = "FILE" };
        var plot = new Option<string?>("--plot") { Description = "Also write the teacher's confusion matrix on the labeled images as SVG to FILE.", HelpName = "FILE" };
        var images = new SpecOptionTable<DistillationRunSpec>();
        images.AddRange(TrainOptions.Create().Where(o => ImageOptions.Contains(o.Flag)));
        var teacher = TeacherOptions.Create();
        var command = new Command("diagnose", "Will distilling from this teacher beat training on the labels? Measures the teacher on the labeled images and gives a verdict, before any training.")
        {
            sample, cache, json, plot,
        };
        images.AddTo(command);
        teacher.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                var names = new RunInputNames(images.NamesAsTyped(parse).Concat(teacher.NamesAsTyped(parse)).ToDictionary(p => p.Key, p => p.Value));
                var spec = images.Read(parse, new DistillationRunSpec());
                spec = spec with { Teacher = teacher.Read(parse, spec.Teacher) };
                int n = parse.GetValue(sample);
                if (n < 0) throw new UsageException(ExitCodes.UsageError, $"--unlabeled-sample must be 0 or more; got {n}.");
                var watch = System.Diagnostics.Stopwatch.StartNew();
                var diagnosis = RunDiagnosis.Assess(spec, names, n, parse.GetValue(cache) is { } c ? Path.GetFullPath(c) : null, new DisplayProgress(ui), cancel);
                Show(ui, diagnosis);
                ui.Info(string.Create(CultureInfo.InvariantCulture, $"diagnosed in {watch.Elapsed.TotalSeconds:0.0} s"));
                if (parse.GetValue(json) is { } file) RunFolder.WriteText(Path.GetFullPath(file), RunReport.DiagnosisJson(diagnosis));
                if (parse.GetValue(plot) is { } svg) RunFolder.WriteText(Path.GetFullPath(svg), Plots.TeacherConfusion(diagnosis).Svg);
                return ExitCodes.Success;
            }, cancel);
        });
        return command;
    }

    /// <summary>The diagnosis as tables and lines (also train's block).</summary>
    public static void Show(RunDisplay ui, TeacherDiagnosis d)
    {
        ui.Table("Teacher on the labeled images", ["class", "images", "teacher agrees", "95 % CI"],
            d.PerClass.Select(c => (IReadOnlyList<string>)[c.Class, c.Agreement.Rows.ToString(CultureInfo.InvariantCulture), P(c.Agreement.Value), $"{P(c.Agreement.Lower)}-{P(c.Agreement.Upper)}"])
                .Append(["all", d.Accuracy.Rows.ToString(CultureInfo.InvariantCulture), P(d.Accuracy.Value), $"{P(d.Accuracy.Lower)}-{P(d.Accuracy.Upper)}"]));
        foreach (var line in d.Describe()) ui.Info(line);
    }

    private static string P(double v) => double.IsNaN(v) ? "-" : v.ToString("P1", CultureInfo.InvariantCulture);
}
