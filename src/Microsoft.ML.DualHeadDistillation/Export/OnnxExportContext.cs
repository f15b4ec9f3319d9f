using Onnx;
using TorchSharp;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>
/// What a backbone or layer exporter writes with: <see cref="Export"/> for any module (looked up by type),
/// a few common nodes (<see cref="Add"/>, <see cref="Relu"/>, <see cref="Reshape"/>), weights from tensors
/// (<c>Weights</c>), and the underlying <see cref="Graph"/> for anything else.
/// </summary>
public sealed class OnnxExportContext
{
    internal OnnxExportContext(OnnxGraphBuilder graph) => Graph = graph;

    /// <summary>The graph being written (nodes, initializers, unique names).</summary>
    public OnnxGraphBuilder Graph { get; }

    /// <summary>Writes <paramref name="module"/> reading <paramref name="input"/>; <paramref name="path"/> names its nodes and weights (and appears in errors).</summary>
    public OnnxValue Export(nn.Module module, string path, OnnxValue input)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (OnnxLayerExporters.Find(module.GetType()) is { } exporter) return exporter(this, module, path, input);
        if (module is IOnnxExportable self) return self.ExportOnnx(this, path, input);
        throw Unsupported(path, module, $"no ONNX exporter is registered for {module.GetType().Name} and it does not implement IOnnxExportable; register one with OnnxLayerExporters.Register<{module.GetType().Name}>(...). Registered: {string.Join(", ", OnnxLayerExporters.ModuleTypes.Select(t => t.Name))}");
    }

    /// <summary>a + b (a residual connection); both must have the same shape.</summary>
    public OnnxValue Add(OnnxValue a, OnnxValue b, string path)
    {
        if (!a.Shape.SequenceEqual(b.Shape))
            throw new NotSupportedException($"ONNX export of '{path}': cannot add values of shapes [{string.Join(", ", a.Shape)}] and [{string.Join(", ", b.Shape)}].");
        return new(Graph.Node("Add", [a.Name, b.Name], outputHint: path), a.Shape);
    }

    /// <summary>max(x, 0).</summary>
    public OnnxValue Relu(OnnxValue x, string path) => new(Graph.Node("Relu", [x.Name], outputHint: path), x.Shape);

    /// <summary>Views each row as <paramref name="shape"/> (without the batch dimension); the size must not change.</summary>
    public OnnxValue Reshape(OnnxValue x, string path, params long[] shape)
    {
        long size = shape.Aggregate(1L, (p, d) => p * d);
        if (size != x.Size) throw new NotSupportedException($"ONNX export of '{path}': cannot view {x.Size} values per row as [{string.Join(", ", shape)}].");
        return new(Graph.Node("Reshape", [x.Name, Graph.Int64s($"{path}.shape", [-1, .. shape])], outputHint: path), shape);
    }

    /// <summary>Adds a node with one output of the given shape.</summary>
    public OnnxValue Node(string op, string[] inputs, long[] outputShape, string path, params AttributeProto[] attributes) =>
        new(Graph.Node(op, inputs, outputHint: path, attributes: attributes), outputShape);

    /// <summary>A float initializer holding <paramref name="tensor"/>'s values with its shape.</summary>
    public string Weights(string name, Tensor tensor) => Graph.Floats(name, Values(tensor), tensor.shape);

    /// <summary>A float initializer from values.</summary>
    public string Weights(string name, float[] values, params long[] dims) => Graph.Floats(name, values, dims);

    /// <summary>A tensor's values as a managed array (detached, on the CPU).</summary>
    public static float[] Values(Tensor tensor)
    {
        using var scope = NewDisposeScope(); // detach/cpu/contiguous may each create a tensor
        return tensor.detach().cpu().contiguous().to_type(ScalarType.Float32).data<float>().ToArray();
    }

    /// <summary>The error for a layer that cannot be exported, naming its path and type.</summary>
    public static NotSupportedException Unsupported(string path, nn.Module module, string reason) =>
        new($"ONNX export does not support layer '{path}' ({module.GetType().Name}): {reason}.");

    internal static AttributeProto IntAttribute(string name, long value) => Int(name, value);
}
