using Microsoft.ML.DualHeadDistillation.Specs;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// How a run's teacher sees the images (<see cref="DualHeadTeacherView"/> and, for cached views, how many): written
/// <c>cached</c>, <c>same-crop</c> or <c>views:V</c> on a command line and in run.json.
/// </summary>
[JsonConverter(typeof(TeacherViewChoiceJsonConverter))]
public readonly record struct TeacherViewChoice(DualHeadTeacherView View, int Views = 1)
{
    /// <summary>Once per image, un-augmented (the default).</summary>
    public static TeacherViewChoice Cached => new(DualHeadTeacherView.Cached);
    /// <summary>On every training crop, as the DHO paper does.</summary>
    public static TeacherViewChoice SameCrop => new(DualHeadTeacherView.SameCropOnline);

    /// <summary><paramref name="text"/> as cached, same-crop or views:V (views alone: 4); an error naming <paramref name="setting"/> otherwise.</summary>
    public static TeacherViewChoice Parse(string text, string setting = "TeacherView")
    {
        string t = text.Trim().ToLowerInvariant();
        if (t is "cached") return Cached;
        if (t is "same-crop" or "samecrop" or "samecroponline") return SameCrop;
        if (t is "views" or "cachedviews") return new(DualHeadTeacherView.CachedViews, 4);
        if (t.StartsWith("views:", StringComparison.Ordinal) && int.TryParse(t[6..], NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v >= 1)
            return new(DualHeadTeacherView.CachedViews, v);
        throw DistillationRunException.BadSettings($"{setting} '{text}' is not one of cached, same-crop, views:V (V >= 1, e.g. views:4).");
    }

    /// <summary>True when the teacher runs once per image before training (its logits stored with the sample).</summary>
    public bool IsCached => View == DualHeadTeacherView.Cached;

    public override string ToString() => View switch
    {
        DualHeadTeacherView.SameCropOnline => "same-crop",
        DualHeadTeacherView.CachedViews => $"views:{Views}",
        _ => "cached",
    };
}

/// <summary>Writes a <see cref="TeacherViewChoice"/> as its text.</summary>
public sealed class TeacherViewChoiceJsonConverter : JsonConverter<TeacherViewChoice>
{
    public override TeacherViewChoice Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        try
        {
            return TeacherViewChoice.Parse(reader.GetString() ?? "");
        }
        catch (DistillationRunException e)
        {
            throw new JsonException(e.Message);
        }
    }

    public override void Write(Utf8JsonWriter writer, TeacherViewChoice value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}
