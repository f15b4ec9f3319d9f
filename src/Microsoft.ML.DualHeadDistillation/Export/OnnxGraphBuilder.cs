using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>
/// Appends nodes, initializers, inputs and outputs to an ONNX <see cref="GraphProto"/> (OnnxSharp's
/// protobuf classes) and hands out unique value names, so exporters describe a network one layer at a time.
/// </summary>
public sealed class OnnxGraphBuilder
{
    public const string BatchDimension = "N";
    public const string MlDomain = "ai.onnx.ml";

    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public OnnxGraphBuilder(string name) => Graph = new GraphProto { Name = name };

    public GraphProto Graph { get; }

    /// <summary>A value name not used yet, based on <paramref name="hint"/>.</summary>
    public string Unique(string hint)
    {
        string name = hint;
        for (int i = 1; !_names.Add(name); i++) name = $"{hint}_{i}";
        return name;
    }

    /// <summary>Reserves an exact name (graph inputs and outputs); fails if it is taken.</summary>
    public string Reserve(string name)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"ONNX value name '{name}' is used twice.");
        return name;
    }

    public string Floats(string hint, ReadOnlySpan<float> values, params long[] dims)
    {
        var tensor = new TensorProto { Name = Unique(hint), DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.AddRange(dims);
        tensor.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values));
        Graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    public string Int64s(string hint, params long[] values)
    {
        var tensor = new TensorProto { Name = Unique(hint), DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.Add(values.Length);
        tensor.Int64Data.AddRange(values);
        Graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    public string Strings(string hint, IReadOnlyList<string> values, params long[] dims)
    {
        var tensor = new TensorProto { Name = Unique(hint), DataType = (int)TensorProto.Types.DataType.String };
        tensor.Dims.AddRange(dims);
        tensor.StringData.AddRange(values.Select(ByteString.CopyFromUtf8));
        Graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>Adds a node with one output; returns the output's name (<paramref name="output"/> if given, else a fresh one).</summary>
    public string Node(string op, string[] inputs, string? output = null, string outputHint = "", string domain = "", params AttributeProto[] attributes)
    {
        output ??= Unique(string.IsNullOrEmpty(outputHint) ? op.ToLowerInvariant() : outputHint);
        var node = new NodeProto { OpType = op, Name = Unique($"{op}_{output}"), Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return output;
    }

    public void Input(string name, TensorProto.Types.DataType type, params long[] dims) => Graph.Input.Add(Value(Reserve(name), type, dims));

    public void Output(string name, TensorProto.Types.DataType type, params long[] dims) => Graph.Output.Add(Value(name, type, dims));

    /// <summary>A typed tensor value; a dimension of -1 is the dynamic batch dimension "N".</summary>
    public static ValueInfoProto Value(string name, TensorProto.Types.DataType type, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims)
            shape.Dim.Add(d < 0 ? new TensorShapeProto.Types.Dimension { DimParam = BatchDimension } : new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    public static AttributeProto Strings(string name, IEnumerable<string> values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Strings };
        attribute.Strings.AddRange(values.Select(ByteString.CopyFromUtf8));
        return attribute;
    }
}
