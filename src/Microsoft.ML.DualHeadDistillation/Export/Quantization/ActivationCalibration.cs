using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Export.Quantization;

/// <summary>How the per-tensor range of an activation is taken from the calibration rows.</summary>
public enum DualHeadCalibrationMethod
{
    /// <summary>The smallest and largest value seen.</summary>
    MinMax,
    /// <summary>The values between the (100 - p) and p percentiles (p = <c>CalibrationPercentile</c>, default 99.99): rare outliers do not stretch the grid.</summary>
    Percentile,
}

/// <summary>
/// Runs the fp32 graph on calibration rows with ONNX Runtime and records the range of each named activation: min/max
/// in one pass, then (percentile) a 2,048-bin histogram over that range in a second pass. Every range holds 0, so
/// zero is exact on the uint8 grid (padding, ReLU).
/// </summary>
internal static class ActivationCalibration
{
    public const int Bins = 2048, BatchRows = 64;

    public static Dictionary<string, (float Min, float Max)> Ranges(ModelProto model, IReadOnlyCollection<string> tensors, float[][] rows, DualHeadCalibrationMethod method, double percentile, CancellationToken cancel)
    {
        var probe = model.Clone();
        foreach (var t in tensors.Where(t => probe.Graph.Output.All(o => o.Name != t)))
            probe.Graph.Output.Add(new ValueInfoProto { Name = t, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } } });
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = Create(probe, options);
        string input = probe.Graph.Input.First(i => probe.Graph.Initializer.All(t => t.Name != i.Name)).Name;
        var names = tensors.ToArray();
        var min = names.ToDictionary(n => n, _ => 0f);
        var max = names.ToDictionary(n => n, _ => 0f);
        Pass(session, input, names, rows, cancel, (name, values) =>
        {
            float lo = min[name], hi = max[name];
            foreach (float v in values) { if (v < lo) lo = v; if (v > hi) hi = v; }
            (min[name], max[name]) = (lo, hi);
        });
        if (method == DualHeadCalibrationMethod.MinMax) return names.ToDictionary(n => n, n => (min[n], max[n]));

        var histograms = names.ToDictionary(n => n, _ => new long[Bins]);
        Pass(session, input, names, rows, cancel, (name, values) =>
        {
            float lo = min[name], width = (max[name] - lo) / Bins;
            if (width <= 0) return;
            var h = histograms[name];
            foreach (float v in values) h[Math.Clamp((int)((v - lo) / width), 0, Bins - 1)]++;
        });
        return names.ToDictionary(n => n, n =>
        {
            var h = histograms[n];
            long total = h.Sum();
            if (total == 0 || max[n] <= min[n]) return (min[n], max[n]);
            float width = (max[n] - min[n]) / Bins;
            long tail = (long)Math.Floor(total * (1 - percentile / 100));
            int low = 0, high = Bins - 1;
            for (long seen = 0; low < Bins - 1 && seen + h[low] <= tail; low++) seen += h[low];
            for (long seen = 0; high > 0 && seen + h[high] <= tail; high--) seen += h[high];
            float a = Math.Min(0, min[n] + low * width), b = Math.Max(0, min[n] + (high + 1) * width);
            return (Math.Max(a, min[n]), Math.Min(b, max[n]));
        });
    }

    private static InferenceSession Create(ModelProto model, SessionOptions options)
    {
        try
        {
            return new InferenceSession(Google.Protobuf.MessageExtensions.ToByteArray(model), options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"ONNX Runtime could not load the student's graph for calibration: {e.Message}", e);
        }
    }

    private static void Pass(InferenceSession session, string input, string[] names, float[][] rows, CancellationToken cancel, Action<string, ReadOnlySpan<float>> observe)
    {
        int width = rows[0].Length;
        using var runOptions = new RunOptions();
        for (int start = 0; start < rows.Length; start += BatchRows)
        {
            cancel.ThrowIfCancellationRequested();
            int n = Math.Min(BatchRows, rows.Length - start);
            var batch = new float[n * width];
            for (int i = 0; i < n; i++) rows[start + i].CopyTo(batch, i * width);
            using var value = OrtValue.CreateTensorValueFromMemory(batch, [n, width]);
            using var outputs = session.Run(runOptions, [input], [value], names);
            for (int i = 0; i < names.Length; i++) observe(names[i], outputs[i].GetTensorDataAsSpan<float>());
        }
    }
}
