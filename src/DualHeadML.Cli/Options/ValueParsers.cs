using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace DualHeadML.Cli.Options;

/// <summary>Option values as users write them; a bad one is a parse error naming the option (exit 2).</summary>
public static partial class ValueParsers
{
    private static string Token(ArgumentResult r) => r.Tokens.Count == 1 ? r.Tokens[0].Value : string.Join(" ", r.Tokens.Select(t => t.Value));

    /// <summary>A path made absolute (a run folder's run.json keeps absolute paths).</summary>
    public static string? Full(string? path) => path is null ? null : Path.GetFullPath(path);

    public static TimeSpan? Duration(ArgumentResult r)
    {
        string text = Token(r);
        if (Durations.TryParse(text, out var span)) return span;
        r.AddError($"{Flag(r)} '{text}' is not a duration; use e.g. 90s, 10m, 1.5h.");
        return null;
    }

    public static DualHeadPrecision Precision(ArgumentResult r)
    {
        string text = Token(r);
        switch (text.Trim().ToLowerInvariant())
        {
            case "auto": return DualHeadPrecision.Auto;
            case "float32" or "fp32": return DualHeadPrecision.Float32;
            case "bfloat16" or "bf16": return DualHeadPrecision.BFloat16;
            default:
                r.AddError($"{Flag(r)} '{text}' is not one of auto, float32, bfloat16.");
                return DualHeadPrecision.Auto;
        }
    }

    public static TeacherViewChoice TeacherView(ArgumentResult r)
    {
        try
        {
            return TeacherViewChoice.Parse(Token(r), Flag(r));
        }
        catch (DistillationRunException e)
        {
            r.AddError(e.Message);
            return TeacherViewChoice.Cached;
        }
    }

    /// <summary>Comma-separated sizes ("48,48,64") of at least 8 pixels.</summary>
    public static int[]? Sizes(ArgumentResult r)
    {
        string text = Token(r);
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var sizes = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out sizes[i]) || sizes[i] < 8)
            {
                r.AddError($"{Flag(r)} '{text}': '{parts[i]}' is not a size of at least 8 pixels; expected sizes like 48,48,64 ending at --image-size.");
                return null;
            }
        return sizes;
    }

    /// <summary>KEY=VALUE tokens (repeatable) as a dictionary.</summary>
    public static Dictionary<string, string> Settings(ArgumentResult r)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in r.Tokens.Select(t => t.Value))
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0)
            {
                r.AddError($"{Flag(r)} '{pair}' is not KEY=VALUE.");
                break;
            }
            settings[pair[..eq].Trim()] = pair[(eq + 1)..].Trim();
        }
        return settings;
    }

    /// <summary>The flag as the user typed it (an alias such as --teacher-mode names itself).</summary>
    private static string Flag(ArgumentResult r) => r.Parent is OptionResult o ? o.IdentifierToken?.Value ?? o.Option.Name : "the value";
}

/// <summary>Durations as users write them: 90s, 10m, 1.5h, 1h30m, or hh:mm:ss.</summary>
public static partial class Durations
{
    public static bool TryParse(string text, out TimeSpan span)
    {
        span = default;
        text = text.Trim().ToLowerInvariant();
        if (text.Contains(':')) return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out span) && span > TimeSpan.Zero;
        var match = Pattern().Match(text);
        if (!match.Success || text.Length == 0) return false;
        double Part(int i) => match.Groups[i].Success ? double.Parse(match.Groups[i].Value, CultureInfo.InvariantCulture) : 0;
        span = TimeSpan.FromHours(Part(1)) + TimeSpan.FromMinutes(Part(2)) + TimeSpan.FromSeconds(Part(3));
        return span > TimeSpan.Zero;
    }

    [GeneratedRegex(@"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")]
    private static partial Regex Pattern();
}
