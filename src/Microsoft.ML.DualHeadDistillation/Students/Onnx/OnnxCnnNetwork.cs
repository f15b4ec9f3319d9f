using System.Runtime.InteropServices;
using Microsoft.ML.DualHeadDistillation.Export;
using Onnx;
using TorchSharp;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students.Onnx;

/// <summary>
/// A trainable TorchSharp network imported from an ONNX CNN graph of Conv, BatchNormalization, Relu, Add, MaxPool,
/// AveragePool, GlobalAveragePool and Flatten nodes (ResNet-style feature extractors, as CNTK, PyTorch and Keras
/// export them). Conv and BatchNormalization become <c>nn.Conv2d</c> / <c>nn.BatchNorm2d</c> holding the graph's
/// weights (trainable; BatchNorm with PyTorch's momentum 0.1 when it trains); the other nodes run as TorchSharp
/// functions, in the graph's order. Asymmetric ONNX pads (CNTK's "same" padding, [top, left, bottom, right] =
/// [3, 3, 2, 2]) are an explicit <c>pad</c> before the layer (zeros for Conv, -inf for MaxPool). An AveragePool
/// whose window covers its whole input at the graph's declared size is the global average it stands for, so the
/// network accepts other input sizes. Exports itself back to ONNX with its current weights. Anything else in the
/// graph is a <see cref="NotSupportedException"/> naming the node.
/// </summary>
internal sealed class OnnxCnnNetwork : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    private enum Op { Conv, BatchNorm, Relu, Add, MaxPool, AveragePool, GlobalAveragePool, Flatten }

    private sealed record Step(Op Op, string Name, string[] Inputs, string Output, long[] Kernel, long[] Strides, long[] Pads, bool CountIncludePad);

    private readonly TorchSharp.Modules.ModuleDict<nn.Module<Tensor, Tensor>> layers;
    private readonly Step[] _steps;
    private readonly string _input, _output;

    /// <summary>[C, H, W] of the graph's declared input (the batch dimension dropped).</summary>
    public long[] DeclaredInputShape { get; }
    /// <summary>Channels of the output (its values per row, when the output is [C, 1, 1] or [C]).</summary>
    public long OutputSize { get; }
    /// <summary>How many nodes of each kind the graph had ("22 Conv, 22 BatchNormalization, ...").</summary>
    public string Summary { get; }
    /// <summary>True when the features are pooled globally (GlobalAveragePool, no fixed-size AveragePool): the network then reads images of any size.</summary>
    public bool AcceptsOtherImageSizes => _steps.Any(s => s.Op == Op.GlobalAveragePool) && !_steps.Any(s => s.Op == Op.AveragePool);

    private OnnxCnnNetwork(Step[] steps, Dictionary<string, nn.Module<Tensor, Tensor>> modules, string input, string output, long[] inputShape, long outputSize, string summary)
        : base(Native.TorchSharpNative.Ensured(nameof(OnnxCnnNetwork)))
    {
        _steps = steps;
        _input = input;
        _output = output;
        DeclaredInputShape = inputShape;
        OutputSize = outputSize;
        Summary = summary;
        layers = nn.ModuleDict(modules.Select(p => (p.Key, p.Value)).ToArray());
        _boundaries = Boundaries(steps, input, output);
        RegisterComponents();
    }

    private readonly int[] _boundaries;

    /// <summary>
    /// The steps after which the graph is one tensor: nothing later reads an earlier value but that step's output (after a
    /// ResNet's stem and after each residual block), the last of each run of such steps. Cutting there splits the network into stages.
    /// </summary>
    private static int[] Boundaries(Step[] steps, string input, string output)
    {
        int last = Array.FindIndex(steps, s => s.Output == output);
        var boundaries = new List<int>();
        for (int i = 0; i < last; i++)
        {
            var produced = new HashSet<string>(steps.Take(i + 1).Select(s => s.Output), StringComparer.Ordinal) { input };
            var live = steps.Skip(i + 1).Take(last - i).SelectMany(s => s.Inputs).Where(produced.Contains).ToHashSet(StringComparer.Ordinal);
            if (live.Count == 1 && live.Contains(steps[i].Output)) boundaries.Add(i);
        }
        // A run of such steps (conv, BatchNorm, ReLU, pool of a stem; a block's Add and ReLU) ends one stage: its last step.
        return boundaries.Where(b => !boundaries.Contains(b + 1)).ToArray();
    }

    /// <summary>The stages that can be frozen, named by the ONNX value that ends each ("Pooling255_Output_0": the stem).</summary>
    public IReadOnlyList<string> StageNames => _boundaries.Select(i => _steps[i].Output).ToArray();

    /// <summary>The output of the first <paramref name="stages"/> stages ([N, C, h, w], not flattened).</summary>
    public Tensor ForwardPrefix(Tensor images, int stages)
    {
        CheckStages(stages);
        using var scope = NewDisposeScope();
        var step = _steps[_boundaries[stages - 1]];
        return Run(new Dictionary<string, Tensor>(StringComparer.Ordinal) { [_input] = images }, 0, _boundaries[stages - 1])[step.Output].MoveToOuterDisposeScope();
    }

    /// <summary>The network's output, flattened, from the output of its first <paramref name="stages"/> stages.</summary>
    public Tensor ForwardSuffix(Tensor prefix, int stages)
    {
        CheckStages(stages);
        using var scope = NewDisposeScope();
        int from = _boundaries[stages - 1];
        return Run(new Dictionary<string, Tensor>(StringComparer.Ordinal) { [_steps[from].Output] = prefix }, from + 1, _steps.Length - 1)[_output].flatten(1).MoveToOuterDisposeScope();
    }

    /// <summary>The layers (convolutions, BatchNorm) of the first <paramref name="stages"/> stages.</summary>
    public IReadOnlyList<nn.Module> StageModules(int stages)
    {
        if (stages == 0) return [];
        CheckStages(stages);
        return _steps.Take(_boundaries[stages - 1] + 1).Where(s => s.Op is Op.Conv or Op.BatchNorm).Select(s => (nn.Module)layers[s.Name]).ToArray();
    }

    private void CheckStages(int stages)
    {
        if (stages < 1 || stages > _boundaries.Length)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.FrozenStages), stages, $"The imported network has {_boundaries.Length} stages; FrozenStages must be in 0..{_boundaries.Length}.");
    }

    /// <summary>
    /// Reads <paramref name="path"/> (one float input [N, C, H, W]; <paramref name="outputName"/> or its only output)
    /// into a network. With <paramref name="swapInputChannels"/> the first convolutions' input channels are reversed,
    /// so a graph that reads BGR reads RGB (exactly: the weights are permuted, not the images).
    /// </summary>
    public static OnnxCnnNetwork Import(string path, string? outputName = null, bool swapInputChannels = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model '{path}' does not exist.", path);
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        }
        catch (Exception e) when (e is Google.Protobuf.InvalidProtocolBufferException)
        {
            throw new InvalidDataException($"ONNX model '{path}' could not be parsed: {e.Message}", e);
        }
        var g = model.Graph ?? throw new InvalidDataException($"ONNX model '{path}' has no graph.");
        var initializers = g.Initializer.ToDictionary(t => t.Name, t => t);
        var inputs = g.Input.Where(i => !initializers.ContainsKey(i.Name)).ToList();
        if (inputs.Count != 1) throw new NotSupportedException($"ONNX model '{path}' has {inputs.Count} inputs ({string.Join(", ", inputs.Select(i => i.Name))}); an imported CNN reads one image tensor.");
        var dims = inputs[0].Type?.TensorType?.Shape?.Dim.Select(d => d.DimValue).ToArray() ?? [];
        if (dims.Length != 4 || dims[1] < 1 || dims[2] < 1 || dims[3] < 1)
            throw new NotSupportedException($"ONNX model '{path}': input '{inputs[0].Name}' has shape [{string.Join(", ", dims)}]; expected [N, C, H, W] with fixed C, H, W.");
        string output = outputName ?? (g.Output.Count == 1 ? g.Output[0].Name : throw new ArgumentException($"ONNX model '{path}' has {g.Output.Count} outputs ({string.Join(", ", g.Output.Select(o => o.Name))}); name the one to use.", nameof(outputName)));

        var shapes = new Dictionary<string, long[]> { [inputs[0].Name] = dims[1..] };
        var steps = new List<Step>();
        var modules = new Dictionary<string, nn.Module<Tensor, Tensor>>();
        var swap = swapInputChannels ? new HashSet<string> { inputs[0].Name } : [];
        string Key(NodeProto node, int index)
        {
            string key = Sanitize(string.IsNullOrEmpty(node.Name) ? $"{node.OpType}_{index}" : node.Name);
            return modules.ContainsKey(key) || steps.Any(st => st.Name == key) ? $"{key}_{index}" : key; // node names need not be unique
        }
        long[] Shape(NodeProto node, string value) => shapes.TryGetValue(value, out var s) ? s
            : throw new NotSupportedException($"ONNX model '{path}': node '{node.Name}' ({node.OpType}) reads '{value}', which no supported node before it produces.");
        try
        {
            for (int index = 0; index < g.Node.Count; index++)
            {
                var node = g.Node[index];
                string name = Key(node, index);
                var x = node.Input.Count > 0 ? Shape(node, node.Input[0]) : [];
                long[] Ints(string attribute, long[] fallback) => node.Attribute.FirstOrDefault(a => a.Name == attribute) is { } a ? [.. a.Ints] : fallback;
                long Int(string attribute, long fallback) => node.Attribute.FirstOrDefault(a => a.Name == attribute) is { } a ? a.I : fallback;
                string AutoPad() => node.Attribute.FirstOrDefault(a => a.Name == "auto_pad") is { } a ? a.S.ToStringUtf8() : "NOTSET";
                if (AutoPad() is not ("NOTSET" or "" or "VALID"))
                    throw new NotSupportedException($"node '{node.Name}' ({node.OpType}) uses auto_pad {AutoPad()}; re-export it with explicit pads");
                long[] outShape;
                switch (node.OpType)
                {
                    case "Conv":
                        {
                            var w = Floats(initializers, node.Input[1], node.Name);
                            long outC = w.Dims[0], inPerGroup = w.Dims[1], group = Int("group", 1);
                            long[] k = Ints("kernel_shape", [w.Dims[2], w.Dims[3]]), s = Ints("strides", [1, 1]), d = Ints("dilations", [1, 1]), p = Ints("pads", [0, 0, 0, 0]);
                            if (d.Any(v => v != 1)) throw new NotSupportedException($"node '{node.Name}' (Conv) has dilations [{string.Join(", ", d)}]; only 1 is imported");
                            if (inPerGroup * group != x[0]) throw new InvalidDataException($"node '{node.Name}' (Conv) has weights for {inPerGroup * group} input channels but reads {x[0]}");
                            bool hasBias = node.Input.Count > 2 && !string.IsNullOrEmpty(node.Input[2]);
                            if (w.Dims.Length != 4 || k.Length != 2 || k[0] != w.Dims[2] || k[1] != w.Dims[3] || s.Length != 2 || p.Length != 4)
                                throw new InvalidDataException($"node '{node.Name}' (Conv) has weights [{string.Join(", ", w.Dims)}], kernel_shape [{string.Join(", ", k)}], strides [{string.Join(", ", s)}], pads [{string.Join(", ", p)}]; a 2-D convolution is expected");
                            if (swap.Contains(node.Input[0]) && group != 1)
                                throw new NotSupportedException($"node '{node.Name}' (Conv) reads the input in {group} groups; swapping input channels is exact only for group 1");
                            var conv = nn.Conv2d(x[0], outC, (k[0], k[1]), stride: (s[0], s[1]), groups: group, bias: hasBias);
                            modules[name] = conv; // disposed with the others if anything below fails
                            using (no_grad())
                            {
                                using var weight = tensor(w.Values, w.Dims);
                                using var permuted = swap.Contains(node.Input[0]) ? weight.flip(1) : weight.alias();
                                conv.weight!.copy_(permuted);
                                if (hasBias)
                                {
                                    using var bias = tensor(Floats(initializers, node.Input[2], node.Name).Values);
                                    conv.bias!.copy_(bias);
                                }
                            }
                            steps.Add(new Step(Op.Conv, name, [node.Input[0]], node.Output[0], k, s, p, false));
                            outShape = WindowOutput(outC, x, k, s, p);
                            break;
                        }
                    case "BatchNormalization":
                        {
                            var scale = Floats(initializers, node.Input[1], node.Name).Values;
                            if (scale.Length != x[0]) throw new InvalidDataException($"node '{node.Name}' (BatchNormalization) normalises {scale.Length} channels but reads {x[0]}");
                            float eps = node.Attribute.FirstOrDefault(a => a.Name == "epsilon") is { } e ? e.F : 1e-5f;
                            var bn = nn.BatchNorm2d(x[0], eps: eps, momentum: 0.1);
                            modules[name] = bn;
                            using (no_grad())
                            {
                                foreach (var (target, input) in new[] { (bn.weight!, 1), (bn.bias!, 2), (bn.running_mean!, 3), (bn.running_var!, 4) })
                                {
                                    var values = Floats(initializers, node.Input[input], node.Name).Values;
                                    if (values.Length != x[0]) throw new InvalidDataException($"node '{node.Name}' (BatchNormalization) input {input} ('{node.Input[input]}') holds {values.Length} values for {x[0]} channels");
                                    using var t = tensor(values);
                                    target.copy_(t);
                                }
                            }
                            steps.Add(new Step(Op.BatchNorm, name, [node.Input[0]], node.Output[0], [], [], [], false));
                            outShape = x;
                            break;
                        }
                    case "Relu":
                        steps.Add(new Step(Op.Relu, name, [node.Input[0]], node.Output[0], [], [], [], false));
                        outShape = x;
                        break;
                    case "Add":
                        {
                            var y = Shape(node, node.Input[1]);
                            if (!x.SequenceEqual(y)) throw new NotSupportedException($"node '{node.Name}' (Add) adds [{string.Join(", ", x)}] and [{string.Join(", ", y)}]; only same-shape residual adds are imported");
                            steps.Add(new Step(Op.Add, name, [node.Input[0], node.Input[1]], node.Output[0], [], [], [], false));
                            outShape = x;
                            break;
                        }
                    case "MaxPool" or "AveragePool":
                        {
                            long[] k = Ints("kernel_shape", []), s = Ints("strides", [1, 1]), p = Ints("pads", [0, 0, 0, 0]);
                            if (k.Length != 2) throw new NotSupportedException($"node '{node.Name}' ({node.OpType}) has kernel_shape [{string.Join(", ", k)}]; a 2-D pool is expected");
                            if (Int("ceil_mode", 0) != 0) throw new NotSupportedException($"node '{node.Name}' ({node.OpType}) uses ceil_mode");
                            if (node.OpType == "AveragePool" && k[0] == x[1] && k[1] == x[2] && p.All(v => v == 0))
                            {
                                steps.Add(new Step(Op.GlobalAveragePool, name, [node.Input[0]], node.Output[0], [], [], [], false));
                                outShape = [x[0], 1, 1];
                                break;
                            }
                            bool include = Int("count_include_pad", 0) != 0;
                            if (node.OpType == "AveragePool" && (p[0] != p[2] || p[1] != p[3]))
                                throw new NotSupportedException($"node '{node.Name}' (AveragePool) has asymmetric pads [{string.Join(", ", p)}]");
                            steps.Add(new Step(node.OpType == "MaxPool" ? Op.MaxPool : Op.AveragePool, name, [node.Input[0]], node.Output[0], k, s, p, include));
                            outShape = WindowOutput(x[0], x, k, s, p);
                            break;
                        }
                    case "GlobalAveragePool":
                        steps.Add(new Step(Op.GlobalAveragePool, name, [node.Input[0]], node.Output[0], [], [], [], false));
                        outShape = [x[0], 1, 1];
                        break;
                    case "Flatten":
                        if (Int("axis", 1) != 1) throw new NotSupportedException($"node '{node.Name}' (Flatten) has axis {Int("axis", 1)}; only 1 is imported");
                        steps.Add(new Step(Op.Flatten, name, [node.Input[0]], node.Output[0], [], [], [], false));
                        outShape = [x.Aggregate(1L, (a, b) => a * b)];
                        break;
                    default:
                        throw new NotSupportedException($"node '{node.Name}' is a {node.OpType}; the importer takes Conv, BatchNormalization, Relu, Add, MaxPool, AveragePool, GlobalAveragePool and Flatten");
                }
                if (outShape.Any(v => v < 1)) throw new NotSupportedException($"node '{node.Name}' ({node.OpType}) gives shape [{string.Join(", ", outShape)}] at the declared input size");
                shapes[node.Output[0]] = outShape;
                if (swapInputChannels && node.OpType != "Conv" && node.Input.Contains(inputs[0].Name))
                    throw new NotSupportedException($"node '{node.Name}' ({node.OpType}) reads the input directly; swapping input channels is exact only when convolutions read it");
                if (node.Output[0] == output) break;
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            foreach (var m in modules.Values) m.Dispose();
            if (e.Message.Contains(path, StringComparison.Ordinal)) throw;
            throw e is NotSupportedException ? new NotSupportedException($"ONNX model '{path}': {e.Message}.", e) : new InvalidDataException($"ONNX model '{path}': {e.Message}.", e);
        }
        if (!shapes.TryGetValue(output, out var outputShape))
        {
            foreach (var m in modules.Values) m.Dispose();
            throw new ArgumentException($"ONNX model '{path}' has no value '{output}' produced by its nodes.", nameof(outputName));
        }
        if (outputShape.Length == 3 && (outputShape[1] != 1 || outputShape[2] != 1))
        {
            foreach (var m in modules.Values) m.Dispose();
            throw new NotSupportedException($"ONNX model '{path}': output '{output}' is [{string.Join(", ", outputShape)}] per image; an imported backbone ends in a global pool ([C, 1, 1]) or a flat vector.");
        }
        string summary = string.Join(", ", g.Node.GroupBy(n => n.OpType).Select(grp => $"{grp.Count()} {grp.Key}"));
        return new OnnxCnnNetwork([.. steps], modules, inputs[0].Name, output, dims[1..], outputShape[0], summary);
    }

    /// <summary>
    /// The output shape for images of <paramref name="chw"/> ([C, H, W]); throws <see cref="ArgumentOutOfRangeException"/>
    /// (naming ImageShape) when a convolution or pool window does not fit its padded input at that size.
    /// </summary>
    public long[] OutputShapeAt(long[] chw)
    {
        if (chw.Length != 3 || chw[0] != DeclaredInputShape[0])
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"The imported network reads [{string.Join(", ", DeclaredInputShape)}]-like images ({DeclaredInputShape[0]} channels); got [{string.Join(", ", chw)}].");
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal) { [_input] = chw };
        foreach (var step in _steps)
        {
            var x = shapes[step.Inputs[0]];
            long[] Window(long channels)
            {
                long[] k = step.Kernel, p = step.Pads, st = step.Strides;
                if (x[1] + p[0] + p[2] < k[0] || x[2] + p[1] + p[3] < k[1])
                    throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape),
                        $"Images of [{string.Join(", ", chw)}] are too small for the imported network: node '{step.Name}' has a {k[0]}x{k[1]} window on a {x[1]}x{x[2]} map (pads [{string.Join(", ", p)}]). Use larger images.");
                return WindowOutput(channels, x, k, st, p);
            }
            shapes[step.Output] = step.Op switch
            {
                Op.Conv => Window(((TorchSharp.Modules.Conv2d)layers[step.Name]).out_channels),
                Op.MaxPool or Op.AveragePool => Window(x[0]),
                Op.GlobalAveragePool => [x[0], 1, 1],
                Op.Flatten => [x.Aggregate(1L, (a, b) => a * b)],
                _ => x,
            };
            if (step.Output == _output) break;
        }
        return shapes[_output];
    }

    /// <summary>Runs the graph on [N, C, H, W] images; returns its output flattened to [N, OutputSize].</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        return Run(new Dictionary<string, Tensor>(StringComparer.Ordinal) { [_input] = images }, 0, _steps.Length - 1)[_output].flatten(1).MoveToOuterDisposeScope();
    }

    /// <summary>Runs steps <paramref name="from"/>..<paramref name="to"/> (or up to the output step) over <paramref name="values"/>, which it fills.</summary>
    private Dictionary<string, Tensor> Run(Dictionary<string, Tensor> values, int from, int to)
    {
        for (int i = from; i <= to; i++)
        {
            var step = _steps[i];
            var x = values[step.Inputs[0]];
            values[step.Output] = step.Op switch
            {
                Op.Conv => Conv((TorchSharp.Modules.Conv2d)layers[step.Name], x, step),
                Op.BatchNorm => ((nn.Module<Tensor, Tensor>)layers[step.Name]).call(x),
                Op.Relu => nn.functional.relu(x),
                Op.Add => x + values[step.Inputs[1]],
                Op.MaxPool => SymmetricPadding(x, step) is { } same
                    ? nn.functional.max_pool2d(x, step.Kernel, step.Strides, same)
                    : nn.functional.max_pool2d(Pad(x, step.Pads, double.NegativeInfinity), step.Kernel, step.Strides),
                Op.AveragePool => nn.functional.avg_pool2d(x, step.Kernel, step.Strides, [step.Pads[0], step.Pads[1]], count_include_pad: step.CountIncludePad),
                Op.GlobalAveragePool => nn.functional.adaptive_avg_pool2d(x, [1, 1]),
                Op.Flatten => x.flatten(1),
                _ => throw new InvalidOperationException(step.Op.ToString()),
            };
            if (step.Output == _output) break;
        }
        return values;
    }

    /// <summary>
    /// A convolution with ONNX pads [top, left, bottom, right]. Where the top/left pads are at least the bottom/right ones
    /// and give the same output size when used on both sides (CNTK's [3, 3, 2, 2] on even sizes), the extra bottom/right
    /// zeros are never read: the layer's own symmetric padding gives the same values without copying x into a padded
    /// tensor (which also loses a channels-last layout). Otherwise x is padded explicitly first.
    /// </summary>
    private static Tensor Conv(TorchSharp.Modules.Conv2d conv, Tensor x, Step step)
    {
        if (step.Pads.All(p => p == 0)) return conv.call(x);
        if (SymmetricPadding(x, step) is { } same)
            return nn.functional.conv2d(x, conv.weight!, conv.bias, step.Strides, same, groups: conv.groups);
        return conv.call(Pad(x, step.Pads, 0));
    }

    /// <summary>[top, left] when padding both sides by them gives the window positions ONNX's [top, left, bottom, right] give; else null.</summary>
    private static long[]? SymmetricPadding(Tensor x, Step step)
    {
        long[] p = step.Pads, k = step.Kernel, s = step.Strides;
        if (p[0] < p[2] || p[1] < p[3]) return null;
        long h = x.shape[2], w = x.shape[3];
        bool Same(long size, long before, long after, long kernel, long stride) => (size + before + after - kernel) / stride == (size + 2 * before - kernel) / stride;
        return Same(h, p[0], p[2], k[0], s[0]) && Same(w, p[1], p[3], k[1], s[1]) ? [p[0], p[1]] : null;
    }

    /// <summary>x padded by ONNX pads [top, left, bottom, right] (none: x itself).</summary>
    private static Tensor Pad(Tensor x, long[] pads, double value) =>
        pads.All(p => p == 0) ? x : nn.functional.pad(x, [pads[1], pads[3], pads[0], pads[2]], PaddingModes.Constant, value);

    /// <summary>The graph again, with this network's current weights (BatchNorm in inference form), reading [C, H, W].</summary>
    public OnnxValue ExportOnnx(OnnxExportContext context, string path, OnnxValue input)
    {
        var values = new Dictionary<string, OnnxValue>(StringComparer.Ordinal) { [_input] = input };
        foreach (var step in _steps)
        {
            var x = values[step.Inputs[0]];
            string at = $"{path}.{step.Name}";
            values[step.Output] = step.Op switch
            {
                Op.Conv => ExportConv(context, (TorchSharp.Modules.Conv2d)layers[step.Name], step, x, at),
                Op.BatchNorm => context.Export(layers[step.Name], at, x),
                Op.Relu => context.Relu(x, at),
                Op.Add => context.Add(x, values[step.Inputs[1]], at),
                Op.MaxPool => context.Node("MaxPool", [x.Name], WindowOutput(x.Shape[0], x.Shape, step.Kernel, step.Strides, step.Pads), at,
                    OnnxGraphBuilder.Ints("kernel_shape", step.Kernel), OnnxGraphBuilder.Ints("strides", step.Strides), OnnxGraphBuilder.Ints("pads", step.Pads)),
                Op.AveragePool => context.Node("AveragePool", [x.Name], WindowOutput(x.Shape[0], x.Shape, step.Kernel, step.Strides, step.Pads), at,
                    OnnxGraphBuilder.Ints("kernel_shape", step.Kernel), OnnxGraphBuilder.Ints("strides", step.Strides), OnnxGraphBuilder.Ints("pads", step.Pads), Int("count_include_pad", step.CountIncludePad ? 1 : 0)),
                Op.GlobalAveragePool => context.Node("GlobalAveragePool", [x.Name], [x.Shape[0], 1, 1], at),
                Op.Flatten => context.Node("Flatten", [x.Name], [x.Size], at, Int("axis", 1)),
                _ => throw new InvalidOperationException(step.Op.ToString()),
            };
            if (step.Output == _output) break;
        }
        var result = values[_output];
        return result.Shape.Length == 1 ? result : context.Node("Flatten", [result.Name], [result.Size], $"{path}.flatten", Int("axis", 1));
    }

    private static OnnxValue ExportConv(OnnxExportContext c, TorchSharp.Modules.Conv2d conv, Step step, OnnxValue x, string path)
    {
        var inputs = new List<string> { x.Name, c.Weights($"{path}.weight", conv.weight!) };
        if (conv.bias is not null) inputs.Add(c.Weights($"{path}.bias", conv.bias));
        long[] k = step.Kernel, s = step.Strides, p = step.Pads;
        return c.Node("Conv", [.. inputs], WindowOutput(conv.out_channels, x.Shape, k, s, p), path,
            OnnxGraphBuilder.Ints("kernel_shape", k), OnnxGraphBuilder.Ints("strides", s), OnnxGraphBuilder.Ints("pads", p), Int("group", conv.groups));
    }

    /// <summary>[C, h, w] after a window of <paramref name="k"/> with strides <paramref name="s"/> on [_, H, W] padded by ONNX pads [top, left, bottom, right].</summary>
    private static long[] WindowOutput(long channels, long[] x, long[] k, long[] s, long[] p) =>
        [channels, (x[1] + p[0] + p[2] - k[0]) / s[0] + 1, (x[2] + p[1] + p[3] - k[1]) / s[1] + 1];

    private static (float[] Values, long[] Dims) Floats(Dictionary<string, TensorProto> initializers, string name, string node)
    {
        if (!initializers.TryGetValue(name, out var t)) throw new NotSupportedException($"node '{node}' reads '{name}' as weights, but it is not an initializer");
        if (t.DataType != (int)TensorProto.Types.DataType.Float) throw new NotSupportedException($"weights '{name}' of node '{node}' are of ONNX type {t.DataType}; float is expected");
        long count = t.Dims.Aggregate(1L, (a, b) => a * b);
        float[] values = t.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray() : [.. t.FloatData];
        if (values.Length != count) throw new InvalidDataException($"weights '{name}' of node '{node}' hold {values.Length} values for shape [{string.Join(", ", t.Dims)}]");
        if (values.Any(v => !float.IsFinite(v))) throw new InvalidDataException($"weights '{name}' of node '{node}' hold NaN or infinite values");
        return (values, [.. t.Dims]);
    }

    private static string Sanitize(string name) => new(name.Select(ch => char.IsLetterOrDigit(ch) || ch == '_' ? ch : '_').ToArray());

    protected override void Dispose(bool disposing)
    {
        if (disposing) layers.Dispose();
        base.Dispose(disposing);
    }
}
