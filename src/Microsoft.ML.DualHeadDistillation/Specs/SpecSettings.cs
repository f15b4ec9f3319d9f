using System.Collections;
using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>
/// An immutable, ordered set of named string settings (a component's keyword arguments, as timm's
/// <c>create_model(name, **kwargs)</c> takes them). Equality compares every key and value, so two specs that
/// carry the same settings are equal. Typed accessors name the setting in their errors.
/// </summary>
[JsonConverter(typeof(SpecSettingsJsonConverter))]
public sealed class SpecSettings : IReadOnlyDictionary<string, string>, IEquatable<SpecSettings>
{
    private readonly ImmutableSortedDictionary<string, string> _values;

    private SpecSettings(ImmutableSortedDictionary<string, string> values) => _values = values;

    /// <summary>No settings.</summary>
    public static SpecSettings Empty { get; } = new(ImmutableSortedDictionary.Create<string, string>(StringComparer.Ordinal));

    /// <summary>Settings copied from <paramref name="values"/> (null gives <see cref="Empty"/>).</summary>
    public static SpecSettings From(IEnumerable<KeyValuePair<string, string>>? values)
    {
        if (values is null) return Empty;
        var builder = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in values)
        {
            if (string.IsNullOrWhiteSpace(key)) throw new ArgumentException("A setting needs a non-empty name.", nameof(values));
            builder[key] = value ?? throw new ArgumentException($"Setting '{key}' has no value.", nameof(values));
        }
        return builder.Count == 0 ? Empty : new SpecSettings(builder.ToImmutable());
    }

    /// <summary>A copy with <paramref name="key"/> set to <paramref name="value"/>.</summary>
    public SpecSettings With(string key, string value) => new(_values.SetItem(key, value));

    /// <summary>The integer list stored under <paramref name="key"/> ("256,128"), or <paramref name="fallback"/> when absent.</summary>
    public int[] GetInts(string key, int[] fallback)
    {
        if (!_values.TryGetValue(key, out var text)) return fallback;
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var result = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out result[i]))
                throw new ArgumentException($"Setting '{key}' is '{text}'; expected integers separated by commas.", key);
        return result;
    }

    /// <summary>The integer stored under <paramref name="key"/>, or <paramref name="fallback"/>.</summary>
    public int GetInt(string key, int fallback) =>
        !_values.TryGetValue(key, out var text) ? fallback
        : int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
        : throw new ArgumentException($"Setting '{key}' is '{text}'; expected an integer.", key);

    /// <summary>The number stored under <paramref name="key"/>, or <paramref name="fallback"/>.</summary>
    public float GetFloat(string key, float fallback) =>
        !_values.TryGetValue(key, out var text) ? fallback
        : float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
        : throw new ArgumentException($"Setting '{key}' is '{text}'; expected a number.", key);

    public string this[string key] => _values[key];
    public IEnumerable<string> Keys => _values.Keys;
    public IEnumerable<string> Values => _values.Values;
    public int Count => _values.Count;
    public bool ContainsKey(string key) => _values.ContainsKey(key);
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out string value) => _values.TryGetValue(key, out value);
    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => _values.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public bool Equals(SpecSettings? other) => other is not null && _values.Count == other._values.Count && _values.SequenceEqual(other._values);
    public override bool Equals(object? obj) => Equals(obj as SpecSettings);
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var (k, v) in _values) { hash.Add(k); hash.Add(v); }
        return hash.ToHashCode();
    }
    public static bool operator ==(SpecSettings? a, SpecSettings? b) => a is null ? b is null : a.Equals(b);
    public static bool operator !=(SpecSettings? a, SpecSettings? b) => !(a == b);

    public override string ToString() => _values.Count == 0 ? "{}" : "{" + string.Join(", ", _values.Select(p => $"{p.Key}={p.Value}")) + "}";
}

internal sealed class SpecSettingsJsonConverter : JsonConverter<SpecSettings>
{
    public override SpecSettings Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        SpecSettings.From(JsonSerializer.Deserialize<Dictionary<string, string>>(ref reader, options));

    public override void Write(Utf8JsonWriter writer, SpecSettings value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (k, v) in value) writer.WriteString(k, v);
        writer.WriteEndObject();
    }
}
