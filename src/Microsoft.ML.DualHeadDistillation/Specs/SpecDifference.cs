using System.Reflection;

namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>A field where two specs differ: its path ("Student.Backbone.EmbeddingSize"), the option it comes from, and both values.</summary>
internal sealed record SpecDifference(string Field, string Option, string? Left, string? Right)
{
    /// <summary>
    /// Walks the public properties of two spec records of the same type, depth first in declaration order,
    /// and returns the first leaf whose values differ. Nested records are walked; everything else is compared
    /// with Equals. New fields are covered without listing them anywhere.
    /// </summary>
    public static SpecDifference? First<T>(T left, T right) where T : class
    {
        ArgumentNullException.ThrowIfNull(left);
        ArgumentNullException.ThrowIfNull(right);
        return Walk(typeof(T), left, right, "", typeof(T).Name);
    }

    private static SpecDifference? Walk(Type type, object? left, object? right, string path, string option)
    {
        if (Equals(left, right)) return null;
        if (left is SpecSettings a && right is SpecSettings b)
        {
            // Name the first setting that differs: Student.Backbone.Settings.hidden_layers.
            string key = a.Keys.Union(b.Keys).Order(StringComparer.Ordinal).First(k => !a.TryGetValue(k, out var x) || !b.TryGetValue(k, out var y) || x != y);
            return new SpecDifference($"{path}.{key}", option, a.TryGetValue(key, out var l) ? l : "(not set)", b.TryGetValue(key, out var r) ? r : "(not set)");
        }
        if (left is null || right is null || !IsSpecRecord(type))
            return new SpecDifference(path, option, Show(left), Show(right));
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(p => p.MetadataToken))
        {
            if (property.GetIndexParameters().Length > 0 || property.Name == "EqualityContract") continue;
            string name = property.GetCustomAttribute<SpecOptionAttribute>()?.Option ?? option;
            var found = Walk(property.PropertyType, property.GetValue(left), property.GetValue(right), path.Length == 0 ? property.Name : $"{path}.{property.Name}", name);
            if (found is not null) return found;
        }
        return new SpecDifference(path, option, Show(left), Show(right));
    }

    private static bool IsSpecRecord(Type type) => type.Namespace == typeof(SpecDifference).Namespace && type.IsClass && type.GetMethod("<Clone>$") is not null;

    private static string? Show(object? value) => value switch
    {
        null => "null",
        float f => f.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    public override string ToString() => $"{Field} (option {Option}): {Left} vs {Right}";
}
