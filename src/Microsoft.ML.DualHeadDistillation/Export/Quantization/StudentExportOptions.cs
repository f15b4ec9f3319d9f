namespace Microsoft.ML.DualHeadDistillation.Export.Quantization;

/// <summary>The precision an exported student is written in.</summary>
public enum DualHeadQuantization
{
    /// <summary>fp32: the graph as trained.</summary>
    None,
    /// <summary>Static int8 (QDQ): weights int8 per channel, activations uint8 per tensor from calibration rows (<see cref="StudentQuantizer"/>).</summary>
    Int8,
}

/// <summary>How <c>DualHeadDistillTransformer.ExportToOnnx(path, options)</c> writes the student.</summary>
public sealed record StudentExportOptions
{
    public const double DefaultMaxAccuracyDrop = 0.01;

    public DualHeadQuantization Quantization { get; init; } = DualHeadQuantization.None;
    /// <summary>Rows the activations are calibrated on (the model's feature or image column; labels not needed). Required for int8.</summary>
    public IDataView? CalibrationData { get; init; }
    /// <summary>Calibration rows used (the first ones).</summary>
    public int CalibrationRows { get; init; } = 512;
    /// <summary>
    /// Labeled rows on which fp32 and int8 are compared (accuracy and the share of rows whose class agrees), written into
    /// the graph's metadata; null: the accuracy is unchecked (a warning says so).
    /// </summary>
    public IDataView? ValidationData { get; init; }
    /// <summary>The largest accuracy drop on <see cref="ValidationData"/> accepted (a share: 0.01 = 1 point); more is refused unless <see cref="AllowAccuracyDrop"/>.</summary>
    public double MaxAccuracyDrop { get; init; } = DefaultMaxAccuracyDrop;
    /// <summary>Write the int8 graph even when it loses more than <see cref="MaxAccuracyDrop"/>.</summary>
    public bool AllowAccuracyDrop { get; init; }
    /// <summary>Calibration method, percentile and the first convolution's precision.</summary>
    public DualHeadQuantizationOptions Int8 { get; init; } = new();
}

/// <summary>What an export wrote: the precision, the sizes and (with validation data) the checked accuracy.</summary>
public sealed record StudentExportResult
{
    public required DualHeadQuantization Quantization { get; init; }
    public required long Bytes { get; init; }
    public long Fp32Bytes { get; init; }
    /// <summary>The quantiser's account (null for fp32).</summary>
    public QuantizedStudentGraph? Int8 { get; init; }
    /// <summary>Validation rows compared (0: unchecked).</summary>
    public int ValidationRows { get; init; }
    public double Fp32Accuracy { get; init; } = double.NaN;
    public double Int8Accuracy { get; init; } = double.NaN;
    /// <summary>Share of validation rows whose predicted class is the same in fp32 and int8.</summary>
    public double Agreement { get; init; } = double.NaN;
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>fp32 minus int8 accuracy (a share), NaN when unchecked.</summary>
    public double AccuracyDrop => Fp32Accuracy - Int8Accuracy;
}
