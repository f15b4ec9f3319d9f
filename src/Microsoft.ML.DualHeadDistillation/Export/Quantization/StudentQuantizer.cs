using System.Globalization;
using Google.Protobuf;
using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Export.Quantization;

/// <summary>How <see cref="StudentQuantizer"/> quantises a student's ONNX graph.</summary>
public sealed record DualHeadQuantizationOptions
{
    /// <summary>How activation ranges are taken from the calibration rows.</summary>
    public DualHeadCalibrationMethod CalibrationMethod { get; init; } = DualHeadCalibrationMethod.Percentile;
    /// <summary>The percentile of <see cref="DualHeadCalibrationMethod.Percentile"/> (each tail keeps 100 - p percent outside the range).</summary>
    public double CalibrationPercentile { get; init; } = 99.99;
    /// <summary>Calibration rows used (the first ones given).</summary>
    public int CalibrationRows { get; init; } = 512;
    /// <summary>Quantise the first convolution too (false: it stays fp32, as its input is the raw image).</summary>
    public bool QuantizeFirstConvolution { get; init; } = true;

    internal void Validate()
    {
        if (!(CalibrationPercentile > 50 && CalibrationPercentile <= 100)) throw new ArgumentOutOfRangeException(nameof(CalibrationPercentile), CalibrationPercentile, "CalibrationPercentile must be in (50, 100].");
        if (CalibrationRows < 1) throw new ArgumentOutOfRangeException(nameof(CalibrationRows), CalibrationRows, "CalibrationRows must be at least 1.");
        if (!Enum.IsDefined(CalibrationMethod)) throw new ArgumentOutOfRangeException(nameof(CalibrationMethod), CalibrationMethod, "Unknown calibration method.");
    }
}

/// <summary>An int8 (QDQ) graph and what was done to make it.</summary>
public sealed record QuantizedStudentGraph(byte[] Model, int FoldedBatchNorms, int QuantizedNodes, int FloatNodes, int QuantizedActivations, DualHeadCalibrationMethod CalibrationMethod, int CalibrationRows)
{
    /// <summary>Metadata key of the precision ("int8") in the quantised graph.</summary>
    public const string PrecisionKey = StudentOnnxMetadata.PrecisionKey;
}

/// <summary>
/// Static int8 quantisation of a student's exported ONNX graph (ONNX Runtime's own quantiser is Python-only): BatchNorm
/// folded into its convolution (<see cref="BatchNormFolding"/>), activation ranges calibrated on rows
/// (<see cref="ActivationCalibration"/>), then QuantizeLinear/DequantizeLinear pairs around the backbone's Conv, Gemm,
/// MatMul and Add nodes (<see cref="QdqRewriter"/>) that ONNX Runtime fuses into its int8 kernels; the heads, softmax,
/// DHO combination and arg-max stay fp32. Inputs and outputs are unchanged, so any caller of the fp32 graph runs it.
/// </summary>
public static class StudentQuantizer
{
    /// <summary>Quantises <paramref name="fp32Onnx"/> (the portable graph) with <paramref name="calibrationRows"/> (rows as the graph reads them).</summary>
    public static QuantizedStudentGraph Quantize(byte[] fp32Onnx, IReadOnlyList<float[]> calibrationRows, DualHeadQuantizationOptions? options = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(fp32Onnx);
        ArgumentNullException.ThrowIfNull(calibrationRows);
        options ??= new DualHeadQuantizationOptions();
        options.Validate();
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(fp32Onnx);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"The student's graph is not an ONNX model: {e.Message}", e);
        }
        var input = model.Graph.Input.FirstOrDefault(i => model.Graph.Initializer.All(t => t.Name != i.Name))
            ?? throw new InvalidDataException("The student's graph has no input.");
        var dims = input.Type?.TensorType?.Shape?.Dim;
        if (input.Type?.TensorType?.ElemType != (int)TensorProto.Types.DataType.Float || dims is not { Count: 2 } || dims[1].DimValue <= 0)
            throw new InvalidDataException($"The student's graph input '{input.Name}' must be float [N, D]; it is not.");
        long width = dims[1].DimValue;
        var rows = Rows(calibrationRows, width, options.CalibrationRows, input.Name);

        var graph = model.Clone();
        OnnxChecksum.Strip(graph);
        int folded = BatchNormFolding.Fold(graph.Graph);
        var plan = QdqRewriter.Plan(graph.Graph, options.QuantizeFirstConvolution);
        if (plan.QuantizedNodes.Count == 0) throw new InvalidDataException("The student's graph has no Conv, Gemm, MatMul or Add node in its backbone to quantise.");
        var ranges = ActivationCalibration.Ranges(graph, plan.Activations, rows, options.CalibrationMethod, options.CalibrationPercentile, cancel);
        plan.Apply(ranges);
        var meta = graph.MetadataProps;
        void Set(string key, string value)
        {
            foreach (var old in meta.Where(p => p.Key == key).ToList()) meta.Remove(old);
            meta.Add(new StringStringEntryProto { Key = key, Value = value });
        }
        Set(QuantizedStudentGraph.PrecisionKey, "int8");
        Set(StudentOnnxMetadata.QuantizationKey, string.Create(CultureInfo.InvariantCulture,
            $"QDQ; weights int8 symmetric per channel; activations uint8 per tensor ({options.CalibrationMethod}{(options.CalibrationMethod == DualHeadCalibrationMethod.Percentile ? $" {options.CalibrationPercentile}" : "")}, {rows.Length} rows); first convolution {(options.QuantizeFirstConvolution ? "int8" : "fp32")}; {folded} BatchNorm folded"));
        return new QuantizedStudentGraph(OnnxChecksum.Seal(graph), folded, plan.QuantizedNodes.Count, plan.FloatNodes.Count, plan.Activations.Count, options.CalibrationMethod, rows.Length);
    }

    private static float[][] Rows(IReadOnlyList<float[]> given, long width, int limit, string inputName)
    {
        if (given.Count == 0) throw new ArgumentException("The calibration data has no rows; give at least one image (512 by default are used).", "calibrationRows");
        var rows = given.Take(limit).ToArray();
        for (int r = 0; r < rows.Length; r++)
        {
            if (rows[r] is null || rows[r].Length != width)
                throw new ArgumentException($"Calibration row {r} has {rows[r]?.Length ?? 0} values; the student's input '{inputName}' takes {width}.", "calibrationRows");
            int bad = Array.FindIndex(rows[r], v => !float.IsFinite(v));
            if (bad >= 0) throw new ArgumentException($"Calibration row {r} holds {rows[r][bad]} at slot {bad}; calibration rows must be finite.", "calibrationRows");
        }
        return rows;
    }
}
