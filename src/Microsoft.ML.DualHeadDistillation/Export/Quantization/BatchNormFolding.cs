using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Export.Quantization;

/// <summary>
/// Folds each inference-mode BatchNormalization into the Conv (or Gemm with transB = 1) that alone feeds it:
/// s = gamma / sqrt(var + eps); W'[c] = W[c] * s[c]; b'[c] = (b[c] - mean[c]) * s[c] + beta[c]. The fp32 outputs are
/// unchanged up to rounding; the BN node and its statistics go. Done before quantising so the weights that are
/// rounded to int8 are the ones the network uses.
/// </summary>
internal static class BatchNormFolding
{
    /// <summary>Folds in place; returns how many BatchNormalization nodes went.</summary>
    public static int Fold(GraphProto graph)
    {
        var edit = new GraphEdit(graph);
        int folded = 0;
        foreach (var bn in graph.Node.Where(n => n.OpType == "BatchNormalization").ToList())
        {
            if (bn.Output.Count != 1 || bn.Input.Count != 5) continue; // training-mode outputs: leave it
            if (edit.Producer(bn.Input[0]) is not { } producer || producer.OpType is not ("Conv" or "Gemm")) continue;
            if (edit.Consumers(bn.Input[0]).Count != 1 || edit.IsGraphOutput(bn.Input[0])) continue;
            if (producer.OpType == "Gemm" && (GraphEdit.IntAttribute(producer, "transB", 0) != 1 || GraphEdit.IntAttribute(producer, "transA", 0) != 0
                || GraphEdit.FloatAttribute(producer, "alpha", 1) != 1 || GraphEdit.FloatAttribute(producer, "beta", 1) != 1)) continue;
            if (!edit.Initializers.TryGetValue(producer.Input[1], out var weight) || bn.Input.Skip(1).Any(i => !edit.Initializers.ContainsKey(i))) continue;
            if (edit.Consumers(producer.Input[1]).Count != 1) continue; // a shared weight cannot take one BN's scale
            float[] gamma = GraphEdit.Floats(edit.Initializers[bn.Input[1]]), beta = GraphEdit.Floats(edit.Initializers[bn.Input[2]]);
            float[] mean = GraphEdit.Floats(edit.Initializers[bn.Input[3]]), variance = GraphEdit.Floats(edit.Initializers[bn.Input[4]]);
            float epsilon = GraphEdit.FloatAttribute(bn, "epsilon", 1e-5f);
            int channels = gamma.Length;
            float[] w = GraphEdit.Floats(weight);
            if (weight.Dims.Count < 2 || weight.Dims[0] != channels || w.Length % channels != 0) continue;
            int perChannel = w.Length / channels;
            float[] bias = producer.Input.Count > 2 && producer.Input[2].Length > 0 ? GraphEdit.Floats(edit.Initializers[producer.Input[2]]) : new float[channels];
            var newBias = new float[channels];
            for (int c = 0; c < channels; c++)
            {
                // In double: the folded weights match the BN of the fp32 graph to rounding.
                double s = gamma[c] / Math.Sqrt(variance[c] + (double)epsilon);
                for (int i = 0; i < perChannel; i++) w[c * perChannel + i] = (float)(w[c * perChannel + i] * s);
                newBias[c] = (float)((bias[c] - mean[c]) * s + beta[c]);
            }
            GraphEdit.SetFloats(weight, w);
            string biasName = edit.AddInitializer(weight.Name + "_folded_bias", TensorProto.Types.DataType.Float, newBias, channels);
            if (producer.Input.Count > 2) producer.Input[2] = biasName; else producer.Input.Add(biasName);
            producer.Output[0] = bn.Output[0];
            graph.Node.Remove(bn);
            folded++;
        }
        RemoveUnused(graph);
        return folded;
    }

    /// <summary>Drops initializers no node reads (the folded statistics and old biases).</summary>
    public static void RemoveUnused(GraphProto graph)
    {
        var used = new HashSet<string>(graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name)), StringComparer.Ordinal);
        foreach (var t in graph.Initializer.Where(t => !used.Contains(t.Name)).ToList()) graph.Initializer.Remove(t);
    }
}
