using System.Globalization;
using Microsoft.ML.DualHeadDistillation.Search;

namespace DualHeadML.Cli.Reports;

/// <summary>The search's trials as a leaderboard: the furthest rung first, then by validation accuracy.</summary>
public static class Leaderboard
{
    public static IEnumerable<SearchTrial<SearchConfiguration>> Ranked(DistillationSearchResult search) =>
        search.Trials.OrderByDescending(t => t.Rung).ThenByDescending(t => t.Score);

    public static IEnumerable<IReadOnlyList<string>> Rows(DistillationSearchResult search) =>
        Ranked(search).Select((t, i) => (IReadOnlyList<string>)
        [
            (i + 1).ToString(CultureInfo.InvariantCulture) + (t.Arm == search.Best && t.Rung == search.Trials.Max(x => x.Rung) ? " (kept)" : ""),
            t.Arm.ToString(), t.Budget.ToString(CultureInfo.InvariantCulture), t.Score.ToString("P1", CultureInfo.InvariantCulture), t.Seconds.ToString("0.0", CultureInfo.InvariantCulture),
        ]);

    public static readonly string[] Headers = ["#", "configuration", "epochs", "validation", "seconds"];
}
