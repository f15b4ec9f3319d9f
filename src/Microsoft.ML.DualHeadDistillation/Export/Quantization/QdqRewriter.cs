using Onnx;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Microsoft.ML.DualHeadDistillation.Export.Quantization;

/// <summary>
/// Which parts of a graph are quantised, and the QuantizeLinear/DequantizeLinear (QDQ) pairs that do it, in the form
/// ONNX Runtime fuses into its int8 kernels (DQ -> Conv -> Q becomes QLinearConv; MatMul/Gemm, Add likewise):
/// activations uint8, asymmetric, per tensor; weights int8, symmetric (+-127), per output channel; biases int32 at
/// scale x_scale * w_scale[c]. Compute nodes (Conv, Gemm, MatMul, Add) of the backbone are quantised; the heads (the
/// last Gemm/MatMul on each path, with no compute node after them), the softmax, the DHO combination and the arg-max
/// stay fp32. Data-movement and pooling nodes between quantised ones (Relu, MaxPool, AveragePool,
/// GlobalAveragePool, Flatten, Reshape) get their outputs quantised too, so chains stay in int8.
/// </summary>
internal sealed class QdqRewriter
{
    private static readonly HashSet<string> s_compute = new(StringComparer.Ordinal) { "Conv", "Gemm", "MatMul", "Add" };
    private static readonly HashSet<string> s_passThrough = new(StringComparer.Ordinal) { "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape" };

    private readonly GraphEdit _edit;

    private QdqRewriter(GraphProto graph, bool quantizeFirstConvolution)
    {
        _edit = new GraphEdit(graph);
        var nodes = graph.Node.ToList();
        // A head: a Gemm/MatMul with no compute node after it.
        var downstreamCompute = new HashSet<NodeProto>();
        for (int i = nodes.Count - 1; i >= 0; i--)
        {
            var n = nodes[i];
            if (n.Output.SelectMany(_edit.Consumers).Any(c => s_compute.Contains(c.OpType) && c.OpType != "Add" || downstreamCompute.Contains(c))) downstreamCompute.Add(n);
        }
        var firstConv = nodes.FirstOrDefault(n => n.OpType == "Conv");
        foreach (var n in nodes)
        {
            if (!s_compute.Contains(n.OpType)) continue;
            bool head = n.OpType is "Gemm" or "MatMul" && !downstreamCompute.Contains(n);
            bool addAfterHeads = n.OpType == "Add" && !downstreamCompute.Contains(n) && !n.Input.Any(i => _edit.Producer(i) is { } p && QuantizedNodes.Contains(p));
            if (head || addAfterHeads || n == firstConv && !quantizeFirstConvolution) { FloatNodes.Add(n); continue; }
            if (n.OpType == "Gemm" && (GraphEdit.IntAttribute(n, "transA", 0) != 0 || GraphEdit.FloatAttribute(n, "alpha", 1) != 1 || GraphEdit.FloatAttribute(n, "beta", 1) != 1)) { FloatNodes.Add(n); continue; }
            if (n.OpType is "Conv" or "Gemm" && !_edit.Initializers.ContainsKey(n.Input[1])) { FloatNodes.Add(n); continue; }
            QuantizedNodes.Add(n);
        }
        // The activations: float inputs (not weights) and outputs of quantised nodes, and outputs of pass-through nodes reading one.
        // A quantised node whose only consumer is a Relu is not quantised at its own output: the Relu's output is, with
        // zero point 0, and ONNX Runtime then drops the Relu into the int8 kernel (Conv -> Relu -> Q becomes QLinearConv),
        // instead of requantising between them.
        var intoRelu = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in nodes)
        {
            if (QuantizedNodes.Contains(n))
            {
                foreach (var i in ActivationInputs(n)) AddActivation(i);
                if (_edit.IsGraphOutput(n.Output[0])) continue;
                if (_edit.Consumers(n.Output[0]) is [{ OpType: "Relu" }]) intoRelu.Add(n.Output[0]);
                else AddActivation(n.Output[0]);
            }
            else if (s_passThrough.Contains(n.OpType) && (Activations.Contains(n.Input[0]) || intoRelu.Contains(n.Input[0])) && !_edit.IsGraphOutput(n.Output[0]))
            {
                AddActivation(n.Output[0]);
                // Max pooling, flattening and reshaping do not change values: their outputs keep their input's scale and
                // zero point, so ONNX Runtime drops the DQ -> op -> Q around them and runs them on uint8.
                if (n.OpType is "MaxPool" or "Flatten" or "Reshape" && Activations.Contains(n.Input[0])) SharesScaleWith[n.Output[0]] = n.Input[0];
            }
        }
    }

    /// <summary>Activations quantised with the scale and zero point of another (the input of a value-preserving node).</summary>
    public Dictionary<string, string> SharesScaleWith { get; } = new(StringComparer.Ordinal);

    private void AddActivation(string name)
    {
        if (!Activations.Contains(name)) Activations.Add(name);
    }

    public HashSet<NodeProto> QuantizedNodes { get; } = [];
    public List<NodeProto> FloatNodes { get; } = [];
    /// <summary>The activation tensors to calibrate and quantise, in graph order.</summary>
    public List<string> Activations { get; } = [];

    public static QdqRewriter Plan(GraphProto graph, bool quantizeFirstConvolution) => new(graph, quantizeFirstConvolution);

    private IEnumerable<string> ActivationInputs(NodeProto n) => n.OpType switch
    {
        "Conv" or "Gemm" => [n.Input[0]],
        _ => n.Input.Where(i => i.Length > 0 && !_edit.Initializers.ContainsKey(i)),
    };

    /// <summary>Writes the QDQ pairs with the calibrated <paramref name="ranges"/>.</summary>
    public void Apply(IReadOnlyDictionary<string, (float Min, float Max)> ranges)
    {
        var scales = new Dictionary<string, (float Scale, byte ZeroPoint)>(StringComparer.Ordinal);
        foreach (string t in Activations)
        {
            var (scale, zero) = scales[t] = SharesScaleWith.TryGetValue(t, out string? source) ? scales[source] : Uint8(ranges[t]);
            var consumers = _edit.Consumers(t);
            if (consumers.Count == 0) continue;
            string s = _edit.AddInitializer($"{t}_scale", DataType.Float, [scale]);
            string z = _edit.AddInitializer($"{t}_zero_point", DataType.Uint8, [zero]);
            string q = _edit.Unique($"{t}_quantized"), dq = _edit.Unique($"{t}_dequantized");
            _edit.Insert(consumers[0], "QuantizeLinear", [t, s, z], q);
            _edit.Insert(consumers[0], "DequantizeLinear", [q, s, z], dq);
            foreach (var c in consumers)
                for (int i = 0; i < c.Input.Count; i++)
                    if (c.Input[i] == t) c.Input[i] = dq;
        }
        foreach (var n in QuantizedNodes.Where(n => n.OpType is "Conv" or "Gemm" or "MatMul"))
        {
            int weightInput = 1;
            if (!_edit.Initializers.TryGetValue(n.Input[weightInput], out var weight)) continue;
            int axis = n.OpType switch { "Conv" => 0, "Gemm" => GraphEdit.IntAttribute(n, "transB", 0) == 1 ? 0 : 1, _ => 1 };
            if (n.OpType == "MatMul" && weight.Dims.Count != 2) continue;
            var (quantized, wScales) = Int8PerChannel(GraphEdit.Floats(weight), weight.Dims.ToArray(), axis);
            string input = ScaledInput(n);
            long channels = weight.Dims[axis];
            string q = _edit.AddInitializer($"{weight.Name}_int8", DataType.Int8, quantized, [.. weight.Dims]);
            string s = _edit.AddInitializer($"{weight.Name}_scale", DataType.Float, wScales, channels);
            string z = _edit.AddInitializer($"{weight.Name}_zero_point", DataType.Int8, new sbyte[channels], channels);
            string dq = _edit.Unique($"{weight.Name}_dequantized");
            _edit.Insert(n, "DequantizeLinear", [q, s, z], dq, Int("axis", axis));
            n.Input[weightInput] = dq;
            // The bias as int32 at the product of the input's and the weight's scales (what QLinearConv / QGemm take).
            if (n.OpType is "Conv" or "Gemm" && n.Input.Count > 2 && _edit.Initializers.TryGetValue(n.Input[2], out var bias) && bias.Dims.Count == 1 && bias.Dims[0] == channels
                && scales.TryGetValue(input, out var x))
            {
                float[] b = GraphEdit.Floats(bias);
                var bScales = wScales.Select(w => w * x.Scale).ToArray();
                var bq = b.Select((v, c) => (int)Math.Clamp(Math.Round(v / (double)bScales[c]), int.MinValue, int.MaxValue)).ToArray();
                string bqName = _edit.AddInitializer($"{bias.Name}_int32", DataType.Int32, bq, channels);
                string bs = _edit.AddInitializer($"{bias.Name}_scale", DataType.Float, bScales, channels);
                string bz = _edit.AddInitializer($"{bias.Name}_zero_point", DataType.Int32, new int[channels], channels);
                string bdq = _edit.Unique($"{bias.Name}_dequantized");
                _edit.Insert(n, "DequantizeLinear", [bqName, bs, bz], bdq, Int("axis", 0));
                n.Input[2] = bdq;
            }
        }
        BatchNormFolding.RemoveUnused(_edit.Graph);
    }

    /// <summary>The activation the node's first input was before its DQ (its scale is the bias's factor).</summary>
    private string ScaledInput(NodeProto n) => _edit.Producer(n.Input[0]) is { OpType: "DequantizeLinear" } dq && _edit.Producer(dq.Input[0]) is { OpType: "QuantizeLinear" } q ? q.Input[0] : n.Input[0];

    /// <summary>Asymmetric uint8: scale = (max - min) / 255, zero point = round(-min / scale); the range holds 0.</summary>
    public static (float Scale, byte ZeroPoint) Uint8((float Min, float Max) range)
    {
        float lo = Math.Min(0, range.Min), hi = Math.Max(0, range.Max);
        if (!float.IsFinite(lo) || !float.IsFinite(hi)) throw new InvalidDataException($"An activation range is not finite ({lo}, {hi}): the calibration rows overflow the fp32 network.");
        if (hi - lo < 1e-30f) return (1f, 0);
        float scale = (hi - lo) / 255f;
        return (scale, (byte)Math.Clamp(Math.Round(-lo / scale), 0, 255));
    }

    /// <summary>Symmetric int8 per channel along <paramref name="axis"/>: scale[c] = max|w_c| / 127, q = round(w / scale[c]) in [-127, 127].</summary>
    public static (sbyte[] Values, float[] Scales) Int8PerChannel(float[] w, long[] dims, int axis)
    {
        long channels = dims[axis], inner = dims.Skip(axis + 1).Aggregate(1L, (a, d) => a * d);
        var scales = new float[channels];
        for (long i = 0; i < w.Length; i++)
        {
            long c = i / inner % channels;
            scales[c] = Math.Max(scales[c], Math.Abs(w[i]));
        }
        for (int c = 0; c < channels; c++) scales[c] = scales[c] > 0 ? scales[c] / 127f : 1f;
        var q = new sbyte[w.Length];
        for (long i = 0; i < w.Length; i++) q[i] = (sbyte)Math.Clamp(Math.Round(w[i] / scales[i / inner % channels]), -127, 127);
        return (q, scales);
    }
}
