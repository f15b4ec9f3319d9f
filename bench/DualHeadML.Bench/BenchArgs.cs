using System.Globalization;

/// <summary>The benchmarks' command line: one parser for every benchmark (--name VALUE pairs and --flag switches).</summary>
internal static class BenchArgs
{
    /// <summary>The value after <paramref name="name"/>, or null when it is absent.</summary>
    public static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>True when the switch <paramref name="name"/> is given.</summary>
    public static bool Has(string[] args, string name) => args.Contains(name);

    /// <summary>A whole-number option (at least <paramref name="min"/>), or <paramref name="fallback"/> when absent; a bad value is an error naming it.</summary>
    public static int Int(string[] args, string name, int fallback, int min)
    {
        string? v = Value(args, name);
        if (v is null) return fallback;
        if (!int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) || n < min)
            throw new ArgumentException($"{name} must be a whole number >= {min}; got '{v}'.");
        return n;
    }
}
