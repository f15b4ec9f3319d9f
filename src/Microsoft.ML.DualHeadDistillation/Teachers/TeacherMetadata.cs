using System.Globalization;
using System.Text.Json;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// What a teacher model can say about itself, stored in the ONNX file's metadata_props so it travels with
/// the model: <c>dualhead.class_names</c> (JSON array of strings), <c>dualhead.input_size</c> ("224" or
/// "224,224"), <c>dualhead.resize</c> (shorter side), <c>dualhead.mean</c> and <c>dualhead.std</c>
/// (comma-separated, RGB), <c>dualhead.interpolation</c> ("bicubic" or "bilinear"),
/// <c>dualhead.channel_order</c> ("rgb" or "bgr"), <c>dualhead.logit_scale</c>, <c>dualhead.scale</c> (multiplier applied to raw pixel values).
/// Options set explicitly always win over metadata.
/// </summary>
public sealed record TeacherMetadata(
    IReadOnlyList<string>? ClassNames,
    TeacherPreprocessing? Preprocessing,
    float? LogitScale)
{
    public const string ClassNamesKey = "dualhead.class_names";
    public const string InputSizeKey = "dualhead.input_size";
    public const string ResizeKey = "dualhead.resize";
    public const string MeanKey = "dualhead.mean";
    public const string StdKey = "dualhead.std";
    public const string InterpolationKey = "dualhead.interpolation";
    public const string ChannelOrderKey = "dualhead.channel_order";
    public const string LogitScaleKey = "dualhead.logit_scale";
    public const string ScaleKey = "dualhead.scale";

    /// <summary>The metadata entries for class names and preprocessing, in the format <see cref="Read"/> accepts.</summary>
    public static Dictionary<string, string> Write(IReadOnlyList<string>? classNames, TeacherPreprocessing? preprocessing)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        if (classNames is not null) map[ClassNamesKey] = JsonSerializer.Serialize(classNames);
        if (preprocessing is { } p)
        {
            static string Join(IEnumerable<float> values) => string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
            if (p.CropHeight is int h && p.CropWidth is int w) map[InputSizeKey] = h == w ? $"{h}" : $"{h},{w}";
            if (p.ResizeShorterSide is int r) map[ResizeKey] = r.ToString(CultureInfo.InvariantCulture);
            if (p.Mean is not null) map[MeanKey] = Join(p.Mean);
            if (p.Std is not null) map[StdKey] = Join(p.Std);
            map[InterpolationKey] = p.Interpolation == ResizeInterpolation.Bicubic ? "bicubic" : "bilinear";
            map[ChannelOrderKey] = p.ChannelOrder == ChannelOrder.Rgb ? "rgb" : "bgr";
            map[ScaleKey] = Join([p.Scale]);
        }
        return map;
    }

    /// <summary>Reads the metadata of a model's custom metadata map; a malformed entry is an error naming the key.</summary>
    public static TeacherMetadata Read(IReadOnlyDictionary<string, string> map, string path)
    {
        string[]? names = null;
        if (map.TryGetValue(ClassNamesKey, out var json))
        {
            try { names = JsonSerializer.Deserialize<string[]>(json); }
            catch (JsonException e) { throw new InvalidDataException($"Teacher model '{path}': metadata '{ClassNamesKey}' must be a JSON array of strings ({e.Message}).", e); }
        }
        TeacherPreprocessing? prep = null;
        if (new[] { InputSizeKey, ResizeKey, MeanKey, StdKey, InterpolationKey, ChannelOrderKey, ScaleKey }.Any(map.ContainsKey))
        {
            prep = new TeacherPreprocessing();
            if (map.TryGetValue(InputSizeKey, out var size))
            {
                var hw = Floats(size, InputSizeKey, path);
                prep.CropHeight = (int)hw[0];
                prep.CropWidth = (int)hw[^1];
                prep.ResizeShorterSide = (int)hw.Min();
            }
            if (map.TryGetValue(ResizeKey, out var resize)) prep.ResizeShorterSide = (int)Floats(resize, ResizeKey, path)[0];
            if (map.TryGetValue(ScaleKey, out var pixelScale)) prep.Scale = Floats(pixelScale, ScaleKey, path)[0];
            if (map.TryGetValue(MeanKey, out var mean)) prep.Mean = Floats(mean, MeanKey, path);
            if (map.TryGetValue(StdKey, out var std)) prep.Std = Floats(std, StdKey, path);
            if (map.TryGetValue(InterpolationKey, out var interp))
                prep.Interpolation = interp.Trim().ToLowerInvariant() switch
                {
                    "bicubic" => ResizeInterpolation.Bicubic,
                    "bilinear" => ResizeInterpolation.Bilinear,
                    _ => throw new InvalidDataException($"Teacher model '{path}': metadata '{InterpolationKey}' is '{interp}'; expected bicubic or bilinear."),
                };
            if (map.TryGetValue(ChannelOrderKey, out var order))
                prep.ChannelOrder = order.Trim().ToLowerInvariant() switch
                {
                    "rgb" => ChannelOrder.Rgb,
                    "bgr" => ChannelOrder.Bgr,
                    _ => throw new InvalidDataException($"Teacher model '{path}': metadata '{ChannelOrderKey}' is '{order}'; expected rgb or bgr."),
                };
        }
        float? scale = map.TryGetValue(LogitScaleKey, out var s) ? Floats(s, LogitScaleKey, path)[0] : null;
        return new TeacherMetadata(names, prep, scale);
    }

    private static float[] Floats(string value, string key, string path)
    {
        try
        {
            return value.Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries).Select(v => float.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"Teacher model '{path}': metadata '{key}' is '{value}'; expected comma-separated numbers.", e);
        }
    }
}
