using System.Globalization;
using DualHeadML.Cli.Codegen;
using DualHeadML.Cli.Console;
using DualHeadML.Cli.Options;
using DualHeadML.Cli.Reports;
using Microsoft.ML.DualHeadDistillation.Runs;
using Microsoft.ML.DualHeadDistillation.Search;

namespace DualHeadML.Cli.Training;

/// <summary>
/// `dualhead train`: the library's <see cref="DistillationRun"/> does the run (listing, teacher, fit, resume, evaluation,
/// model files); this renders its progress, writes the report and the consumption project, and prints the tables.
/// </summary>
public sealed partial class TrainRun(RunDisplay ui)
{
    /// <summary>The tool's files in a run folder, besides the library's.</summary>
    public const string Metrics = "metrics.json", ReportMd = "report.md", ReportHtml = "report.html", Plots = "plots";

    /// <summary>The tool's files in a run folder (removed with the run's own when it is replaced).</summary>
    private static readonly string[] Ours = [Metrics, ReportMd, ReportHtml, Plots, ConsumptionProject.FolderName];

    public int Execute(DistillationRunSpec spec, string output, bool resume, bool force, RunInputNames names, CancellationToken cancel, bool search = false)
    {
        string tool = $"dualhead {DistillationRun.LibraryVersion}";
        string[] ours = Ours;
        if (search) return ExecuteSearch(spec, output, resume, force, names, tool, cancel);
        if (resume && File.Exists(Path.Combine(output, DistillationSearch.File)))
            throw new UsageException(ExitCodes.UsageError, $"'{output}' holds a search ({DistillationSearch.File}); resume it with --search --resume {output}.");
        var run = resume ? DistillationRun.Resume(output, names) : DistillationRun.Create(spec, output, force, names);
        if (run.IsResumed) ui.Info($"Resuming the run in {run.Folder} with its own settings ({RunFolder.Settings}).");
        (run.Tool, run.CallerOutputs) = (tool, ours);
        try
        {
            using var result = run.Execute(new DisplayProgress(ui), (r, outputs) => WriteReport(r, outputs, run.Spec), cancel);
            Show(result);
            return ExitCodes.Success;
        }
        catch (DistillationRunCancelledException stopped) when (cancel.IsCancellationRequested)
        {
            ui.Warn(stopped.Resumable
                ? $"Stopped. A resumable checkpoint is in {stopped.CheckpointPath}. Resume with:  dualhead train --resume {stopped.Folder}"
                : "Stopped before the first training step: there is nothing to resume; the outputs were removed.");
            return ExitCodes.Cancelled;
        }
    }

    /// <summary>metrics.json, report.md, report.html, the plots and the consumption project, written while the run is open (a failure removes them with it).</summary>
    private static void WriteReport(DistillationRunResult result, RunOutputs outputs, DistillationRunSpec spec, DistillationSearchResult? search = null)
    {
        var summary = result.Summary with
        {
            Outputs =
            [
                .. result.Summary.Outputs,
                $"{Metrics}, {ReportMd}, {ReportHtml}, {Plots}/: this report",
                $"{ConsumptionProject.FolderName}/: a generated project that predicts with {RunFolder.Model} (cd {ConsumptionProject.FolderName} && dotnet run -- IMAGE)",
            ],
        };
        var student = summary.Validation.First(x => x.Name is not "teacher");
        var plots = Reports.Plots.All(result.Model.TrainingReport, summary.Classes, summary.Validation, student, summary.Diagnosis).ToList();
        if (search is not null) plots.Add(Reports.Plots.Leaderboard(search));
        foreach (var p in plots) outputs.WriteText($"{Plots}/{p.FileName}", p.Svg);
        string? packageSource = spec.Annotations?.GetValueOrDefault(TrainOptions.PackageSource);
        ConsumptionProject.Write(outputs.Add(ConsumptionProject.FolderName), summary.Classes, result.Model.FeatureColumnName, packageSource, DistillationRun.LibraryVersion);
        outputs.WriteText(Metrics, RunReport.ToJson(summary, search));
        outputs.WriteText(ReportMd, RunReport.ToMarkdown(summary, plots, search));
        outputs.WriteText(ReportHtml, RunReport.ToHtml(summary, plots, search));
    }

    private void Show(DistillationRunResult result)
    {
        var (scores, classes, t) = (result.Summary.Validation, result.Summary.Classes, result.Summary.Seconds);
        static string P(double v, string format) => double.IsNaN(v) ? "-" : v.ToString(format, CultureInfo.InvariantCulture);
        ui.Table("Validation accuracy", ["", .. scores.Select(x => x.Name)],
            [["all classes", .. scores.Select(x => P(x.Accuracy, "P2"))], .. classes.Select((c, i) => (IReadOnlyList<string>)[c, .. scores.Select(x => P(x.PerClassAccuracy[i], "P1"))])]);
        ui.Table("Wall time (s)", ["listing", "decoding/store", "teacher", "training", "report", "total"],
            [[.. new[] { t.Listing, t.DecodingStore, t.Teacher, t.Training, t.Report, t.Total }.Select(x => P(x, "0.0"))]]);
        string output = result.Folder;
        ui.Info($"Outputs in {output}: {RunFolder.Model}, {RunFolder.Onnx}, {RunFolder.Checkpoint}, {Metrics}, {ReportHtml}, {ReportMd}, {ConsumptionProject.FolderName}/");
        ui.Info($"Next: dualhead predict --model {output} IMAGE...   |   dualhead evaluate --model {output} --data DIR");
    }
}
