using System.Globalization;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Export.Quantization;

/// <summary>
/// The int8 export with its accuracy guarantee: quantise the portable graph on the calibration rows, score the
/// validation rows with both graphs in ONNX Runtime, write fp32 / int8 accuracy and agreement into the metadata, and
/// refuse (nothing written) when int8 loses more than <see cref="StudentExportOptions.MaxAccuracyDrop"/>.
/// </summary>
internal static class Int8Export
{
    /// <summary>
    /// Quantises <paramref name="fp32"/> (the portable graph, or the ML.NET-flavored one: <paramref name="predictedOutput"/>
    /// names its predicted-index output) and checks the very graph it returns.
    /// </summary>
    public static (byte[] Bytes, StudentExportResult Result) Build(DualHeadDistillTransformer model, byte[] fp32, StudentExportOptions options, CancellationToken cancel,
        string predictedOutput = StudentOnnxExporter.PredictedIndexOutput)
    {
        if (options.Quantization != DualHeadQuantization.Int8) throw new ArgumentException($"Quantization is {options.Quantization}; this builds the int8 student (DualHeadQuantization.Int8).", nameof(options));
        if (options.CalibrationData is null) throw new ArgumentException("Int8 export needs CalibrationData: rows of the model's input (a few hundred images like those it will see).", nameof(options));
        if (!(options.MaxAccuracyDrop >= 0 && options.MaxAccuracyDrop < 1)) throw new ArgumentOutOfRangeException(nameof(options), options.MaxAccuracyDrop, "MaxAccuracyDrop is a share of rows in [0, 1): 0.01 is one point.");
        if (options.CalibrationRows < 1) throw new ArgumentOutOfRangeException(nameof(options), options.CalibrationRows, "CalibrationRows must be at least 1.");
        var calibration = Features(model, options.CalibrationData, options.CalibrationRows, "CalibrationData", cancel);
        var q = StudentQuantizer.Quantize(fp32, calibration, options.Int8 with { CalibrationRows = options.CalibrationRows }, cancel);
        var warnings = new List<string>();
        string check;
        var result = new StudentExportResult { Quantization = DualHeadQuantization.Int8, Bytes = 0, Fp32Bytes = fp32.Length, Int8 = q };
        if (options.ValidationData is { } validation)
        {
            var rows = model.ReadValidation(validation, new Training.FitCancellation(cancel, null));
            if (rows.Rows == 0) throw new ArgumentException("ValidationData has no rows.", nameof(options));
            var x = Enumerable.Range(0, rows.Rows).Select(i => rows.Features.AsSpan(i * rows.FeatureSize, rows.FeatureSize).ToArray()).ToArray();
            long[] a = Predict(fp32, x, cancel, predictedOutput), b = Predict(q.Model, x, cancel, predictedOutput);
            int labeled = rows.Labels.Count(l => l >= 0);
            double Accuracy(long[] p) => labeled == 0 ? double.NaN : rows.Labels.Where((l, i) => l >= 0 && p[i] == l).Count() / (double)labeled;
            result = result with { ValidationRows = rows.Rows, Fp32Accuracy = Accuracy(a), Int8Accuracy = Accuracy(b), Agreement = a.Zip(b).Count(p => p.First == p.Second) / (double)rows.Rows };
            check = string.Create(CultureInfo.InvariantCulture, $"fp32 accuracy {result.Fp32Accuracy:0.0000}, int8 accuracy {result.Int8Accuracy:0.0000}, agreement {result.Agreement:0.0000} on {rows.Rows} validation rows");
            if (result.AccuracyDrop > options.MaxAccuracyDrop + 1e-12)
            {
                string message = string.Create(CultureInfo.InvariantCulture,
                    $"The int8 student loses {result.AccuracyDrop * 100:0.0#} points of accuracy on the {rows.Rows} validation rows ({result.Fp32Accuracy:P2} fp32 -> {result.Int8Accuracy:P2} int8, {result.Agreement:P1} of the rows agree), more than MaxAccuracyDrop ({options.MaxAccuracyDrop * 100:0.##} points). Calibrate on rows like those it will see (CalibrationData), keep the first convolution in fp32 (QuantizeFirstConvolution = false), or accept the drop (AllowAccuracyDrop). Nothing was written.");
                if (!options.AllowAccuracyDrop) throw new InvalidOperationException(message);
                warnings.Add(message.Replace(" Nothing was written.", " Written anyway (AllowAccuracyDrop).", StringComparison.Ordinal));
            }
        }
        else
        {
            check = "unchecked: no validation data";
            warnings.Add("The int8 student's accuracy is unchecked: give ValidationData to compare it with fp32 (and refuse a drop over MaxAccuracyDrop).");
        }
        var graph = ModelProto.Parser.ParseFrom(q.Model);
        graph.MetadataProps.Add(new StringStringEntryProto { Key = StudentOnnxMetadata.Int8CheckKey, Value = check });
        byte[] bytes = OnnxChecksum.Seal(graph);
        return (bytes, result with { Bytes = bytes.Length, Warnings = warnings });
    }

    /// <summary>Up to <paramref name="limit"/> rows of the model's input column, as the exported graph reads them.</summary>
    private static float[][] Features(DualHeadDistillTransformer model, IDataView data, int limit, string option, CancellationToken cancel)
    {
        var reader = model.Input.Bind(data.Schema, option, "Calibration feature");
        var column = data.Schema[model.FeatureColumnName];
        var rows = new List<float[]>();
        using var cursor = data.GetRowCursor([column]);
        var read = reader.Bind(cursor);
        long row = 0;
        while (rows.Count < limit && cursor.MoveNext())
        {
            cancel.ThrowIfCancellationRequested();
            var values = new float[model.InputSize];
            read.Read(row, values);
            int bad = Array.FindIndex(values, v => !float.IsFinite(v));
            if (bad >= 0) throw new ArgumentOutOfRangeException(option, $"Row {row}, slot {bad} of {option} column '{column.Name}' is {values[bad]}; calibration rows must be finite.");
            rows.Add(values);
            row++;
        }
        if (rows.Count == 0) throw new ArgumentException($"{option} has no rows; give at least one (512 are used by default).", option);
        return rows.ToArray();
    }

    /// <summary>The predicted class index of every row (ONNX Runtime, batches of 64).</summary>
    public static long[] Predict(byte[] onnx, float[][] rows, CancellationToken cancel, string output = StudentOnnxExporter.PredictedIndexOutput)
    {
        using var session = OnnxRuntimeSessions.Create(onnx, "the student's graph");
        string input = session.InputMetadata.Keys.Single();
        var predicted = new long[rows.Length];
        using var runOptions = new RunOptions();
        int d = rows[0].Length;
        for (int start = 0; start < rows.Length; start += 64)
        {
            cancel.ThrowIfCancellationRequested();
            int n = Math.Min(64, rows.Length - start);
            var x = new float[n * d];
            for (int i = 0; i < n; i++) rows[start + i].CopyTo(x, i * d);
            using var value = OrtValue.CreateTensorValueFromMemory(x, [n, d]);
            using var outputs = session.Run(runOptions, [input], [value], [output]);
            outputs[0].GetTensorDataAsSpan<long>().CopyTo(predicted.AsSpan(start, n));
        }
        return predicted;
    }
}
