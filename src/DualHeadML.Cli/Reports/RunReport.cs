using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.DualHeadDistillation.Runs;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Diagnosis;
using Microsoft.ML.DualHeadDistillation.Search;

namespace DualHeadML.Cli.Reports;

/// <summary>metrics.json, report.md and report.html of a run's <see cref="DistillationRunSummary"/>.</summary>
public static class RunReport
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(), new ComponentNameJsonConverter<DualHeadTrainingMode>(), new ComponentNameJsonConverter<DualHeadBackbone>() },
    };

    public static string ToJson(DistillationRunSummary summary, DistillationSearchResult? search = null)
    {
        var node = JsonSerializer.SerializeToNode(summary, s_json)!.AsObject();
        if (search is not null)
            node["search"] = JsonSerializer.SerializeToNode(new
            {
                Best = search.Best.ToString(),
                BestConfiguration = search.Best,
                Choice = search.Choice is { } c ? new
                {
                    Kept = c.Chosen.ToString(),
                    HalvingBest = c.Best.ToString(),
                    Reference = c.Reference.ToString(),
                    c.BestScore,
                    c.ReferenceScore,
                    Epochs = c.Budget,
                    c.ValidationRows,
                    c.StandardError,
                    c.RequiredLead,
                    c.FewestRowsPerClass,
                    c.Reason,
                } : null,
                search.StoppedByBudget,
                search.SearchSeconds,
                Leaderboard = Leaderboard.Ranked(search).Select(t => new { Configuration = t.Arm.ToString(), t.Arm, t.Rung, Epochs = t.Budget, ValidationAccuracy = t.Score, t.Seconds }),
            }, s_json);
        return node.ToJsonString(s_json);
    }

    /// <summary>`dualhead diagnose --json`: the diagnosis as metrics.json holds it.</summary>
    public static string DiagnosisJson(TeacherDiagnosis diagnosis) => JsonSerializer.Serialize(diagnosis, s_json);

    private static string P(double v) => double.IsNaN(v) ? "-" : v.ToString("P2", CultureInfo.InvariantCulture);
    private static string F(double v, string format = "0.0") => v.ToString(format, CultureInfo.InvariantCulture);

    private static IEnumerable<(string Key, string Value)> Summary(DistillationRunSummary r)
    {
        yield return ("Classes", $"{r.Classes.Count}: {string.Join(", ", r.Classes)}");
        yield return ("Images", $"{r.LabeledImages} labeled, {r.UnlabeledImages} unlabeled, {r.ValidationImages} validation ({r.ValidationSource}), {r.Skipped.Count} skipped as unreadable");
        yield return ("Teacher", $"{r.Teacher} (mode {r.TeacherMode})");
        yield return ("Student", r.Student);
        yield return ("Objective", r.Objective);
        yield return ("Training", $"{r.Epochs} epochs{(r.EpochsChosenBy is null ? "" : $" ({r.EpochsChosenBy})")}, {r.TotalSteps} steps, {F(r.MeanStepMilliseconds)} ms/step, seed {r.Seed}, device {r.Device}");
        yield return ("Inference", FormattableString.Invariant($"alpha {r.Alpha:0.##}, beta {r.Beta:0.##}{(r.AlphaBeta is null ? "" : " (chosen on the validation images)")}"));
        yield return ("Wall time", $"listing {F(r.Seconds.Listing)} s, decoding/store {F(r.Seconds.DecodingStore)} s, teacher {F(r.Seconds.Teacher)} s, training {F(r.Seconds.Training)} s, report {F(r.Seconds.Report)} s; total {F(r.Seconds.Total)} s");
    }

    public static string ToMarkdown(DistillationRunSummary r, IReadOnlyList<Plot> plots, DistillationSearchResult? search = null)
    {
        var md = new StringBuilder();
        md.AppendLine("# dualhead train: report").AppendLine();
        foreach (var (k, v) in Summary(r)) md.AppendLine($"- **{k}**: {v}");
        md.AppendLine().AppendLine("## Validation accuracy").AppendLine();
        md.AppendLine("| | " + string.Join(" | ", r.Validation.Select(s => s.Name)) + " |");
        md.AppendLine("|---|" + string.Concat(r.Validation.Select(_ => "---|")));
        md.AppendLine("| all classes | " + string.Join(" | ", r.Validation.Select(s => P(s.Accuracy))) + " |");
        for (int c = 0; c < r.Classes.Count; c++)
            md.AppendLine($"| {r.Classes[c]} | " + string.Join(" | ", r.Validation.Select(s => P(s.PerClassAccuracy[c]))) + " |");
        if (search is not null)
        {
            md.AppendLine().AppendLine(FormattableString.Invariant($"## Search leaderboard ({search.Trials.Count} trials in {search.SearchSeconds:0} s; kept: {search.Best})")).AppendLine();
            if (search.Choice is { } choice) md.AppendLine(choice.ToString()).AppendLine();
            md.AppendLine("| " + string.Join(" | ", Leaderboard.Headers) + " |");
            md.AppendLine("|" + string.Concat(Leaderboard.Headers.Select(_ => "---|")));
            foreach (var row in Leaderboard.Rows(search)) md.AppendLine("| " + string.Join(" | ", row) + " |");
        }
        md.AppendLine().AppendLine("## Plots").AppendLine();
        foreach (var p in plots) md.AppendLine($"![{p.Title}](plots/{p.FileName})").AppendLine();
        AppendLists(r, line => md.AppendLine(line));
        return md.ToString();
    }

    private static void AppendLists(DistillationRunSummary r, Action<string> line)
    {
        if (r.Diagnosis is { } d)
        {
            line("## Diagnosis: the teacher on the labeled images, before training");
            line("");
            foreach (var l in d.Describe()) line($"- {l}");
            line("");
        }
        if (r.AlphaBeta is { } ab)
        {
            line("## Choice of alpha and beta");
            line("");
            line(FormattableString.Invariant($"- kept alpha {ab.Alpha:0.##}, beta {ab.Beta:0.##}: validation accuracy {ab.Accuracy:P1} ± {ab.StandardError:P1} (one standard error) on {ab.ValidationRows} images, the smallest class {ab.FewestRowsPerClass}"));
            line($"- {ab.Reason}");
            line("");
        }
        if (r.Warnings.Count > 0)
        {
            line("## Warnings");
            line("");
            foreach (var w in r.Warnings) line($"- {w}");
            line("");
        }
        if (r.Skipped.Count > 0)
        {
            line($"## Skipped files ({r.Skipped.Count})");
            line("");
            foreach (var s in r.Skipped.Take(200)) line($"- `{s.Path}`: {s.Reason}");
            if (r.Skipped.Count > 200) line($"- ... and {r.Skipped.Count - 200} more (metrics.json lists them all)");
            line("");
        }
        line("## Outputs");
        line("");
        foreach (var o in r.Outputs) line($"- {o}");
    }

    public static string ToHtml(DistillationRunSummary r, IReadOnlyList<Plot> plots, DistillationSearchResult? search = null)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var h = new StringBuilder();
        h.AppendLine("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dualhead train: report</title>");
        h.AppendLine("<style>body{font-family:Arial,Helvetica,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}dt{font-weight:bold;float:left;clear:left;width:8em}dd{margin-left:9em}code{background:#f4f4f4}</style>");
        h.AppendLine("</head><body><h1>dualhead train: report</h1><dl>");
        foreach (var (k, v) in Summary(r)) h.AppendLine($"<dt>{E(k)}</dt><dd>{E(v)}</dd>");
        h.AppendLine("</dl><h2>Validation accuracy</h2><table><tr><th></th>");
        foreach (var s in r.Validation) h.Append($"<th>{E(s.Name)}</th>");
        h.AppendLine("</tr><tr><td>all classes</td>" + string.Concat(r.Validation.Select(s => $"<td>{P(s.Accuracy)}</td>")) + "</tr>");
        for (int c = 0; c < r.Classes.Count; c++)
            h.AppendLine($"<tr><td>{E(r.Classes[c])}</td>" + string.Concat(r.Validation.Select(s => $"<td>{P(s.PerClassAccuracy[c])}</td>")) + "</tr>");
        h.AppendLine("</table>");
        if (search is not null)
        {
            h.AppendLine($"<h2>{E(FormattableString.Invariant($"Search leaderboard ({search.Trials.Count} trials in {search.SearchSeconds:0} s; kept: {search.Best})"))}</h2>");
            if (search.Choice is { } choice) h.AppendLine($"<p>{E(choice.ToString())}</p>");
            h.AppendLine("<table><tr>");
            foreach (var header in Leaderboard.Headers) h.Append($"<th>{E(header)}</th>");
            h.AppendLine("</tr>");
            foreach (var row in Leaderboard.Rows(search)) h.AppendLine("<tr>" + string.Concat(row.Select(c => $"<td>{E(c)}</td>")) + "</tr>");
            h.AppendLine("</table>");
        }
        h.AppendLine("<h2>Plots</h2>");
        foreach (var p in plots)
            h.AppendLine($"<figure><img class=\"plot\" alt=\"{E(p.Title)}\" src=\"data:image/svg+xml;base64,{Convert.ToBase64String(Encoding.UTF8.GetBytes(p.Svg))}\"><figcaption>{E(p.Title)}</figcaption></figure>");
        var lists = new StringBuilder();
        bool inList = false;
        AppendLists(r, line =>
        {
            if (line.StartsWith("## ", StringComparison.Ordinal)) { if (inList) { lists.Append("</ul>"); inList = false; } lists.Append($"<h2>{E(line[3..])}</h2>"); }
            else if (line.StartsWith("- ", StringComparison.Ordinal)) { if (!inList) { lists.Append("<ul>"); inList = true; } lists.Append($"<li>{E(line[2..].Replace("`", ""))}</li>"); }
        });
        if (inList) lists.Append("</ul>");
        h.AppendLine(lists.ToString());
        h.AppendLine("</body></html>");
        return h.ToString();
    }
}
