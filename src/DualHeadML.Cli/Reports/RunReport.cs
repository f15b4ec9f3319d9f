using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using DualHeadML.Cli.Data;
using Microsoft.ML.DualHeadDistillation;

namespace DualHeadML.Cli.Reports;

/// <summary>Wall time of a run's phases, in seconds.</summary>
public sealed record PhaseTimes
{
    public double Listing { get; set; }
    /// <summary>Decoding the images and writing the sample store (the store pass minus the teacher's share of it).</summary>
    public double DecodingStore { get; set; }
    public double Teacher { get; set; }
    public double Training { get; set; }
    public double Report { get; set; }
    public double Total { get; set; }
}

/// <summary>What metrics.json holds, and what report.md / report.html show.</summary>
public sealed record RunReport
{
    public required string Tool { get; init; }
    public required IReadOnlyList<string> Classes { get; init; }
    public required int LabeledImages { get; init; }
    public required int UnlabeledImages { get; init; }
    public required int ValidationImages { get; init; }
    public required string ValidationSource { get; init; }
    public required IReadOnlyList<SkippedFile> Skipped { get; init; }
    public required string Teacher { get; init; }
    public required string TeacherMode { get; init; }
    public required string Student { get; init; }
    public required long StudentParameters { get; init; }
    public required string Objective { get; init; }
    public required int Epochs { get; init; }
    public string? EpochsChosenBy { get; init; }
    public required int Seed { get; init; }
    public required string Device { get; init; }
    public required float Alpha { get; init; }
    public required float Beta { get; init; }
    public required double MeanStepMilliseconds { get; init; }
    public required int TotalSteps { get; init; }
    /// <summary>Validation accuracy of each way of predicting: DHO (the combined Score), the CE head, the KD head, the teacher.</summary>
    public required IReadOnlyList<ClassifierScores> Validation { get; init; }
    public required IReadOnlyList<DualHeadEpochReport> EpochReports { get; init; }
    public AlphaBetaSearchResult? AlphaBeta { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }
    public required PhaseTimes Seconds { get; init; }
    public required IReadOnlyList<string> Outputs { get; init; }

    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(), new ComponentNameJsonConverter<DualHeadTrainingMode>(), new ComponentNameJsonConverter<DualHeadBackbone>() },
    };

    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    private static string P(double v) => double.IsNaN(v) ? "-" : v.ToString("P2", CultureInfo.InvariantCulture);
    private static string F(double v, string format = "0.0") => v.ToString(format, CultureInfo.InvariantCulture);

    private IEnumerable<(string Key, string Value)> Summary()
    {
        yield return ("Classes", $"{Classes.Count}: {string.Join(", ", Classes)}");
        yield return ("Images", $"{LabeledImages} labeled, {UnlabeledImages} unlabeled, {ValidationImages} validation ({ValidationSource}), {Skipped.Count} skipped as unreadable");
        yield return ("Teacher", $"{Teacher} (mode {TeacherMode})");
        yield return ("Student", Student);
        yield return ("Objective", Objective);
        yield return ("Training", $"{Epochs} epochs{(EpochsChosenBy is null ? "" : $" ({EpochsChosenBy})")}, {TotalSteps} steps, {F(MeanStepMilliseconds)} ms/step, seed {Seed}, device {Device}");
        yield return ("Inference", FormattableString.Invariant($"alpha {Alpha:0.##}, beta {Beta:0.##}{(AlphaBeta is null ? "" : " (chosen on the validation images)")}"));
        yield return ("Wall time", $"listing {F(Seconds.Listing)} s, decoding/store {F(Seconds.DecodingStore)} s, teacher {F(Seconds.Teacher)} s, training {F(Seconds.Training)} s, report {F(Seconds.Report)} s; total {F(Seconds.Total)} s");
    }

    public string ToMarkdown(IReadOnlyList<Plot> plots)
    {
        var md = new StringBuilder();
        md.AppendLine("# dualhead train: report").AppendLine();
        foreach (var (k, v) in Summary()) md.AppendLine($"- **{k}**: {v}");
        md.AppendLine().AppendLine("## Validation accuracy").AppendLine();
        md.AppendLine("| | " + string.Join(" | ", Validation.Select(s => s.Name)) + " |");
        md.AppendLine("|---|" + string.Concat(Validation.Select(_ => "---|")));
        md.AppendLine("| all classes | " + string.Join(" | ", Validation.Select(s => P(s.Accuracy))) + " |");
        for (int c = 0; c < Classes.Count; c++)
            md.AppendLine($"| {Classes[c]} | " + string.Join(" | ", Validation.Select(s => P(s.PerClassAccuracy[c]))) + " |");
        md.AppendLine().AppendLine("## Plots").AppendLine();
        foreach (var p in plots) md.AppendLine($"![{p.Title}](plots/{p.FileName})").AppendLine();
        AppendLists(md, line => md.AppendLine(line));
        return md.ToString();
    }

    private void AppendLists(StringBuilder sb, Action<string> line)
    {
        if (Warnings.Count > 0)
        {
            line("## Warnings");
            line("");
            foreach (var w in Warnings) line($"- {w}");
            line("");
        }
        if (Skipped.Count > 0)
        {
            line($"## Skipped files ({Skipped.Count})");
            line("");
            foreach (var s in Skipped.Take(200)) line($"- `{s.Path}`: {s.Reason}");
            if (Skipped.Count > 200) line($"- ... and {Skipped.Count - 200} more (metrics.json lists them all)");
            line("");
        }
        line("## Outputs");
        line("");
        foreach (var o in Outputs) line($"- {o}");
    }

    public string ToHtml(IReadOnlyList<Plot> plots)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var h = new StringBuilder();
        h.AppendLine("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dualhead train: report</title>");
        h.AppendLine("<style>body{font-family:Arial,Helvetica,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}dt{font-weight:bold;float:left;clear:left;width:8em}dd{margin-left:9em}code{background:#f4f4f4}</style>");
        h.AppendLine("</head><body><h1>dualhead train: report</h1><dl>");
        foreach (var (k, v) in Summary()) h.AppendLine($"<dt>{E(k)}</dt><dd>{E(v)}</dd>");
        h.AppendLine("</dl><h2>Validation accuracy</h2><table><tr><th></th>");
        foreach (var s in Validation) h.Append($"<th>{E(s.Name)}</th>");
        h.AppendLine("</tr><tr><td>all classes</td>" + string.Concat(Validation.Select(s => $"<td>{P(s.Accuracy)}</td>")) + "</tr>");
        for (int c = 0; c < Classes.Count; c++)
            h.AppendLine($"<tr><td>{E(Classes[c])}</td>" + string.Concat(Validation.Select(s => $"<td>{P(s.PerClassAccuracy[c])}</td>")) + "</tr>");
        h.AppendLine("</table><h2>Plots</h2>");
        foreach (var p in plots)
            h.AppendLine($"<figure><img class=\"plot\" alt=\"{E(p.Title)}\" src=\"data:image/svg+xml;base64,{Convert.ToBase64String(Encoding.UTF8.GetBytes(p.Svg))}\"><figcaption>{E(p.Title)}</figcaption></figure>");
        var lists = new StringBuilder();
        bool inList = false;
        AppendLists(lists, line =>
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
