using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Export.Quantization;

/// <summary>What graph rewrites need: initializers by name, each value's producer and consumers, fresh names, typed initializers.</summary>
internal sealed class GraphEdit
{
    private readonly HashSet<string> _names;

    public GraphEdit(GraphProto graph)
    {
        Graph = graph;
        Initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        _names = new HashSet<string>(graph.Node.SelectMany(n => n.Input.Concat(n.Output)).Concat(graph.Input.Select(i => i.Name)).Concat(Initializers.Keys), StringComparer.Ordinal);
        _names.UnionWith(graph.Node.Select(n => n.Name));
    }

    public GraphProto Graph { get; }
    public Dictionary<string, TensorProto> Initializers { get; }

    public NodeProto? Producer(string value) => Graph.Node.FirstOrDefault(n => n.Output.Contains(value));
    public List<NodeProto> Consumers(string value) => Graph.Node.Where(n => n.Input.Contains(value)).ToList();
    public bool IsGraphOutput(string value) => Graph.Output.Any(o => o.Name == value);

    public string Unique(string hint)
    {
        string name = hint;
        for (int i = 1; !_names.Add(name); i++) name = $"{hint}_{i}";
        return name;
    }

    public static float[] Floats(TensorProto t)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float) throw new InvalidDataException($"Initializer '{t.Name}' is {(TensorProto.Types.DataType)t.DataType}; a float tensor was expected.");
        return t.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray() : [.. t.FloatData];
    }

    public static void SetFloats(TensorProto t, float[] values)
    {
        t.FloatData.Clear();
        t.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    public string AddInitializer<T>(string hint, TensorProto.Types.DataType type, T[] values, params long[] dims) where T : unmanaged
    {
        var tensor = new TensorProto { Name = Unique(hint), DataType = (int)type, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        tensor.Dims.AddRange(dims);
        Graph.Initializer.Add(tensor);
        Initializers[tensor.Name] = tensor;
        return tensor.Name;
    }

    public void Remove(TensorProto initializer)
    {
        Graph.Initializer.Remove(initializer);
        Initializers.Remove(initializer.Name);
    }

    /// <summary>A node inserted just before <paramref name="before"/> (or at the end), keeping the topological order.</summary>
    public NodeProto Insert(NodeProto? before, string op, IEnumerable<string> inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Unique($"{op}_{output}") };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        int at = before is null ? Graph.Node.Count : Graph.Node.IndexOf(before);
        Graph.Node.Insert(at, node);
        return node;
    }

    public static long IntAttribute(NodeProto node, string name, long fallback) => node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : fallback;
    public static float FloatAttribute(NodeProto node, string name, float fallback) => node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : fallback;
}
