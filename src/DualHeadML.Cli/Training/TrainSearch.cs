using DualHeadML.Cli.Console;
using DualHeadML.Cli.Reports;
using Microsoft.ML.DualHeadDistillation.Runs;
using Microsoft.ML.DualHeadDistillation.Search;

namespace DualHeadML.Cli.Training;

/// <summary>`dualhead train --search`: the library's search renders here like a run, with the leaderboard.</summary>
public sealed partial class TrainRun
{
    /// <summary>`train --search`: the library's successive-halving search, then the best configuration trained; the report holds the leaderboard.</summary>
    private int ExecuteSearch(DistillationRunSpec spec, string output, bool resume, bool force, RunInputNames names, string tool, CancellationToken cancel)
    {
        try
        {
            var progress = new DisplayProgress(ui);
            Action<DistillationRunResult, RunOutputs, DistillationSearchResult> write = (r, outputs, s) => WriteReport(r, outputs, s.Spec, s);
            var (result, search) = resume
                ? DistillationSearch.Resume(output, names, progress, write, tool, cancel)
                : DistillationSearch.Execute(spec, output, null, null, force, names, progress, write, tool, Ours, cancel);
            using (result)
            {
                ui.Table("Search leaderboard (validation accuracy)", Leaderboard.Headers, Leaderboard.Rows(search));
                Show(result);
            }
            return ExitCodes.Success;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            ui.Warn($"Stopped. The finished trials are in {Path.Combine(output, DistillationSearch.File)}. Resume the search with:  dualhead train --search --resume {output}");
            return ExitCodes.Cancelled;
        }
    }
}
