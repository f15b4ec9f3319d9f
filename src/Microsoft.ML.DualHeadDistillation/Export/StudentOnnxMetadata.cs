using System.Globalization;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>
/// What an exported student says about itself in the ONNX file's metadata_props (ONNX Runtime:
/// <c>session.ModelMetadata.CustomMetadataMap</c>). Class names and preprocessing use the teacher keys
/// (<see cref="TeacherMetadata"/>: <c>dualhead.class_names</c>, <c>dualhead.input_size</c>, <c>dualhead.mean</c>,
/// <c>dualhead.std</c>, <c>dualhead.scale</c>, ...), so an exported student can also serve as a teacher.
/// The student adds <c>dualhead.model</c>, <c>dualhead.format_version</c>, <c>dualhead.mode</c>,
/// <c>dualhead.alpha</c>, <c>dualhead.beta</c>, <c>dualhead.student</c>, <c>dualhead.student_parameters</c>,
/// <c>dualhead.input_name</c>, <c>dualhead.feature_size</c>, for image backbones <c>dualhead.image_shape</c> ("C,H,W"),
/// and, when the student standardises its input, <c>dualhead.standardization_mean</c> / <c>dualhead.standardization_std</c>
/// (per channel, comma-separated); for students trained on an image column <c>dualhead.image_storage_size</c> (S) and
/// <c>dualhead.image_crop</c> ("C,H,W"): the graph's input is the H x W center crop, in [0, 1], of the image resized so
/// its shorter side is S (antialiased bilinear, size truncated) and center-cropped to S x S (offsets rounded down).
/// Standardisation is part of the graph: deployment code must not apply it again
/// (unlike <c>dualhead.mean</c> / <c>dualhead.std</c>, the image preprocessing that produced the features).
/// </summary>
public sealed record StudentOnnxMetadata(
    IReadOnlyList<string> ClassNames,
    TeacherPreprocessing? Preprocessing,
    DualHeadTrainingMode Mode,
    float Alpha,
    float Beta,
    string Student,
    long StudentParameters,
    string InputName,
    int FeatureSize,
    int[]? ImageShape)
{
    /// <summary>The standardisation built into the graph (per channel), or null when there is none.</summary>
    public Students.InputStatistics? Standardization { get; init; }
    public const string StandardizationMeanKey = "dualhead.standardization_mean";
    public const string StandardizationStdKey = "dualhead.standardization_std";
    public const string ModelKey = "dualhead.model";
    public const string ModelValue = "DualHeadDistill student";
    public const string FormatVersionKey = "dualhead.format_version";
    public const string FormatVersion = "1";
    public const string ModeKey = "dualhead.mode";
    public const string AlphaKey = "dualhead.alpha";
    public const string BetaKey = "dualhead.beta";
    public const string StudentKey = "dualhead.student";
    public const string StudentParametersKey = "dualhead.student_parameters";
    public const string InputNameKey = "dualhead.input_name";
    public const string FeatureSizeKey = "dualhead.feature_size";
    public const string ImageShapeKey = "dualhead.image_shape";
    public const string ImageStorageSizeKey = "dualhead.image_storage_size";
    public const string ImageCropKey = "dualhead.image_crop";

    /// <summary>For students trained on an image column: the side S of the stored square (see the class summary), else null.</summary>
    public int? ImageStorageSize { get; init; }

    public const string PrecisionKey = "dualhead.precision";
    public const string QuantizationKey = "dualhead.quantization";
    public const string Int8CheckKey = "dualhead.int8_check";

    /// <summary>"fp32", or "int8" for a quantised student (<c>dualhead.precision</c>).</summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>How an int8 student was quantised (<c>dualhead.quantization</c>), else null.</summary>
    public string? Quantization { get; init; }
    /// <summary>An int8 student's accuracy check against fp32 (<c>dualhead.int8_check</c>: accuracies and agreement, or "unchecked: ..."), else null.</summary>
    public string? Int8Check { get; init; }

    internal static Dictionary<string, string> Write(DualHeadStudent student, StudentExportInfo info)
    {
        var map = TeacherMetadata.Write(info.ClassNames, info.Preprocessing);
        map[ModelKey] = ModelValue;
        map[FormatVersionKey] = FormatVersion;
        map[ModeKey] = info.Mode.Name;
        map[AlphaKey] = info.Alpha.ToString("R", CultureInfo.InvariantCulture);
        map[BetaKey] = info.Beta.ToString("R", CultureInfo.InvariantCulture);
        map[StudentKey] = student.Description;
        map[StudentParametersKey] = student.ParameterCount.ToString(CultureInfo.InvariantCulture);
        map[InputNameKey] = info.InputName;
        map[FeatureSizeKey] = student.Backbone.InputSize.ToString(CultureInfo.InvariantCulture);
        if (info.ImageShape is { } s) map[ImageShapeKey] = $"{s.Channels},{s.Height},{s.Width}";
        if (info.Images is { } images)
        {
            map[ImageStorageSizeKey] = images.StorageSize.ToString(CultureInfo.InvariantCulture);
            map[ImageCropKey] = $"{images.Crop.Channels},{images.Crop.Height},{images.Crop.Width}";
        }
        if (student.InputStandardization?.Statistics is { } stats)
        {
            map[StandardizationMeanKey] = string.Join(",", stats.Mean.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
            map[StandardizationStdKey] = string.Join(",", stats.Std.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        }
        return map;
    }

    /// <summary>Reads the metadata of an exported student; a missing or malformed entry is an error naming the key and <paramref name="source"/>.</summary>
    public static StudentOnnxMetadata Read(IReadOnlyDictionary<string, string> map, string source)
    {
        ArgumentNullException.ThrowIfNull(map);
        if (!map.TryGetValue(ModelKey, out var model) || model != ModelValue)
            throw new InvalidDataException($"'{source}' is not an exported DualHeadDistill student: metadata '{ModelKey}' is missing.");
        string Get(string key) => map.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"'{source}': metadata '{key}' is missing.");
        T Parse<T>(string key, Func<string, T?> parse) where T : struct =>
            parse(Get(key)) ?? throw new InvalidDataException($"'{source}': metadata '{key}' is '{Get(key)}', which is not a valid {typeof(T).Name}.");
        static float? F(string v) => float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) ? f : null;
        var teacher = TeacherMetadata.Read(map, source);
        int[]? shape = map.TryGetValue(ImageShapeKey, out var s)
            ? s.Split(',').Select(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : throw new InvalidDataException($"'{source}': metadata '{ImageShapeKey}' is '{s}'; expected C,H,W.")).ToArray()
            : null;
        return new StudentOnnxMetadata(
            teacher.ClassNames ?? throw new InvalidDataException($"'{source}': metadata '{TeacherMetadata.ClassNamesKey}' is missing."),
            teacher.Preprocessing,
            Parse<DualHeadTrainingMode>(ModeKey, v => string.IsNullOrWhiteSpace(v) ? (DualHeadTrainingMode?)null : DualHeadTrainingMode.FromName(v)),
            Parse<float>(AlphaKey, F),
            Parse<float>(BetaKey, F),
            Get(StudentKey),
            Parse<long>(StudentParametersKey, v => long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) ? l : (long?)null),
            Get(InputNameKey),
            Parse<int>(FeatureSizeKey, v => int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : (int?)null),
            shape)
        {
            ImageStorageSize = map.TryGetValue(ImageStorageSizeKey, out var storage)
                ? int.TryParse(storage, NumberStyles.Integer, CultureInfo.InvariantCulture, out var side) && side > 0 ? side
                    : throw new InvalidDataException($"'{source}': metadata '{ImageStorageSizeKey}' is '{storage}'; expected a positive integer.")
                : null,
            Precision = map.TryGetValue(PrecisionKey, out var precision) ? precision is "int8" or "fp32" ? precision
                : throw new InvalidDataException($"'{source}': metadata '{PrecisionKey}' is '{precision}'; expected int8 or fp32.") : "fp32",
            Quantization = map.GetValueOrDefault(QuantizationKey),
            Int8Check = map.GetValueOrDefault(Int8CheckKey),
            Standardization = map.TryGetValue(StandardizationMeanKey, out var mean) && map.TryGetValue(StandardizationStdKey, out var std)
                ? new Students.InputStatistics(Floats(StandardizationMeanKey, mean), Floats(StandardizationStdKey, std))
                : null,
        };

        float[] Floats(string key, string text) => text.Split(',').Select(p => F(p) ?? throw new InvalidDataException($"'{source}': metadata '{key}' is '{text}'; expected numbers separated by commas.")).ToArray();
    }
}
