using Google.Protobuf;
using Onnx;

namespace DualHeadML.Samples.Onnx;

/// <summary>
/// Small ONNX models built in memory with OnnxSharp (the ONNX protobuf classes) for tests and benchmarks:
/// a linear classifier, a small convolutional classifier, and stand-ins for the two towers of a CLIP model.
/// </summary>
/// <remarks>
/// Every model uses IR version 8 and the default (ai.onnx) opset 13, float32 tensors, and a dynamic batch
/// dimension named <c>"N"</c> on every input and output. Each builder takes optional metadata, written to
/// <c>ModelProto.metadata_props</c> (ONNX Runtime shows it as <c>ModelMetadata.CustomMetadataMap</c>).
/// The returned bytes are the serialised <c>ModelProto</c>, ready for an ONNX Runtime session or a file.
/// </remarks>
public static class TinyOnnxModels
{
    /// <summary>IR version written to every model.</summary>
    public const long IrVersion = 8;

    /// <summary>Version of the default (ai.onnx) operator set imported by every model.</summary>
    public const long OpsetVersion = 13;

    /// <summary>Name of the dynamic batch dimension on every input and output.</summary>
    public const string BatchDimension = "N";

    /// <summary>Name of the dynamic sequence dimension of the text encoder's inputs.</summary>
    public const string SequenceDimension = "L";

    private const int FloatType = (int)TensorProto.Types.DataType.Float;
    private const int Int64Type = (int)TensorProto.Types.DataType.Int64;

    /// <summary>
    /// A linear layer: input float <c>[N, D]</c>, output float <c>[N, K]</c> = <c>x · Wᵀ + b</c>
    /// (one Gemm node with <c>transB = 1</c>).
    /// </summary>
    /// <param name="weights">The K x D weight matrix (one row per output).</param>
    /// <param name="bias">The K biases.</param>
    /// <param name="inputName">Name of the graph input.</param>
    /// <param name="outputName">Name of the graph output.</param>
    /// <param name="metadata">Optional key/value pairs written to the model's metadata_props.</param>
    /// <returns>The serialised ONNX model.</returns>
    public static byte[] Linear(float[,] weights, float[] bias, string inputName = "input", string outputName = "logits",
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(bias);
        int k = weights.GetLength(0), d = weights.GetLength(1);
        if (k == 0 || d == 0) throw new ArgumentException("The weight matrix must not be empty.", nameof(weights));
        if (bias.Length != k) throw new ArgumentException($"Expected {k} biases (one per weight row), got {bias.Length}.", nameof(bias));
        CheckNames(inputName, outputName);

        var graph = new GraphProto { Name = "linear" };
        graph.Input.Add(Value(inputName, FloatType, Batch(), Fixed(d)));
        graph.Output.Add(Value(outputName, FloatType, Batch(), Fixed(k)));
        graph.Initializer.Add(Floats("W", Flatten(weights), k, d));
        graph.Initializer.Add(Floats("B", bias, k));
        graph.Node.Add(Node("Gemm", [inputName, "W", "B"], [outputName], Int("transB", 1)));
        return Serialize(graph, "Linear classifier: logits = x W^T + b.", metadata);
    }

    /// <summary>
    /// A small convolutional classifier. Input float <c>[N, C, H, W]</c>, output float <c>[N, classes]</c>:
    /// Conv3x3(C→32, pad 1) → Relu → MaxPool 2x2 → Conv3x3(32→64, pad 1) → Relu → MaxPool 2x2 → Flatten →
    /// Gemm(→hidden) → Relu → Gemm(→classes). Pooling rounds down, so the flattened size is
    /// <c>64 · ⌊⌊H/2⌋/2⌋ · ⌊⌊W/2⌋/2⌋</c>.
    /// </summary>
    /// <remarks>
    /// Weights come from <c>new System.Random(seed)</c>, each value <c>(2·NextDouble() − 1) / sqrt(fan_in)</c>,
    /// drawn in this order, each tensor in row-major order: conv1 weight <c>[32, C, 3, 3]</c>, conv1 bias <c>[32]</c>,
    /// conv2 weight <c>[64, 32, 3, 3]</c>, conv2 bias <c>[64]</c>, fc1 weight <c>[hidden, F]</c>, fc1 bias <c>[hidden]</c>,
    /// fc2 weight <c>[classes, hidden]</c>, fc2 bias <c>[classes]</c>; fan_in is <c>in_channels · 9</c> for a
    /// convolution and the number of input features for a Gemm (biases use their layer's fan_in).
    /// The weights are not returned: <see cref="ConvClassifierReference"/> redraws them from the same seed and
    /// computes the same network in plain C#, so a test can check the ONNX model against it.
    /// </remarks>
    /// <param name="channels">Input channels C.</param>
    /// <param name="height">Input height H (at least 4).</param>
    /// <param name="width">Input width W (at least 4).</param>
    /// <param name="classes">Number of outputs.</param>
    /// <param name="seed">Seed of the weight generator.</param>
    /// <param name="hidden">Width of the hidden fully-connected layer.</param>
    /// <param name="inputName">Name of the graph input.</param>
    /// <param name="outputName">Name of the graph output.</param>
    /// <param name="metadata">Optional key/value pairs written to the model's metadata_props.</param>
    /// <returns>The serialised ONNX model and its number of trainable parameters (weights plus biases).</returns>
    public static (byte[] Onnx, long Parameters) ConvClassifier(int channels, int height, int width, int classes, int seed, int hidden = 64,
        string inputName = "input", string outputName = "logits", IReadOnlyDictionary<string, string>? metadata = null)
    {
        CheckNames(inputName, outputName);
        var p = ConvWeights.Create(channels, height, width, classes, seed, hidden);

        var graph = new GraphProto { Name = "conv_classifier" };
        graph.Input.Add(Value(inputName, FloatType, Batch(), Fixed(channels), Fixed(height), Fixed(width)));
        graph.Output.Add(Value(outputName, FloatType, Batch(), Fixed(classes)));
        graph.Initializer.Add(Floats("conv1.weight", p.Conv1W, ConvWeights.C1, channels, 3, 3));
        graph.Initializer.Add(Floats("conv1.bias", p.Conv1B, ConvWeights.C1));
        graph.Initializer.Add(Floats("conv2.weight", p.Conv2W, ConvWeights.C2, ConvWeights.C1, 3, 3));
        graph.Initializer.Add(Floats("conv2.bias", p.Conv2B, ConvWeights.C2));
        graph.Initializer.Add(Floats("fc1.weight", p.Fc1W, hidden, p.Features));
        graph.Initializer.Add(Floats("fc1.bias", p.Fc1B, hidden));
        graph.Initializer.Add(Floats("fc2.weight", p.Fc2W, classes, hidden));
        graph.Initializer.Add(Floats("fc2.bias", p.Fc2B, classes));

        AttributeProto[] Conv() => [Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1), Ints("strides", 1, 1)];
        AttributeProto[] Pool() => [Ints("kernel_shape", 2, 2), Ints("strides", 2, 2)];
        graph.Node.Add(Node("Conv", [inputName, "conv1.weight", "conv1.bias"], ["conv1"], Conv()));
        graph.Node.Add(Node("Relu", ["conv1"], ["relu1"]));
        graph.Node.Add(Node("MaxPool", ["relu1"], ["pool1"], Pool()));
        graph.Node.Add(Node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], Conv()));
        graph.Node.Add(Node("Relu", ["conv2"], ["relu2"]));
        graph.Node.Add(Node("MaxPool", ["relu2"], ["pool2"], Pool()));
        graph.Node.Add(Node("Flatten", ["pool2"], ["flat"], Int("axis", 1)));
        graph.Node.Add(Node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["fc1"], Int("transB", 1)));
        graph.Node.Add(Node("Relu", ["fc1"], ["relu3"]));
        graph.Node.Add(Node("Gemm", ["relu3", "fc2.weight", "fc2.bias"], [outputName], Int("transB", 1)));
        return (Serialize(graph, "Small convolutional classifier (2 conv blocks, 2 dense layers).", metadata), p.Count);
    }

    /// <summary>
    /// A dense classifier on images: input float <c>[N, C, H, W]</c>, Flatten, then <paramref name="hidden"/>.Length layers of
    /// Gemm + Relu, then a Gemm to <c>[N, K]</c> logits. Its cost is matrix products, as a vision transformer's mostly is
    /// (2 · Σ fan-in · fan-out FLOP per image). Weights uniform in ±1/√fan-in from <paramref name="seed"/>.
    /// </summary>
    public static (byte[] Onnx, long Parameters) DenseClassifier(int channels, int height, int width, int[] hidden, int classes, int seed,
        string inputName = "input", string outputName = "logits", IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        CheckNames(inputName, outputName);
        var random = new Random(seed);
        var graph = new GraphProto { Name = "dense_classifier" };
        graph.Input.Add(Value(inputName, FloatType, Batch(), Fixed(channels), Fixed(height), Fixed(width)));
        graph.Output.Add(Value(outputName, FloatType, Batch(), Fixed(classes)));
        graph.Node.Add(Node("Flatten", [inputName], ["h0"], Int("axis", 1)));
        int fanIn = channels * height * width;
        long parameters = 0;
        var widths = hidden.Append(classes).ToArray();
        for (int layer = 0; layer < widths.Length; layer++)
        {
            int fanOut = widths[layer];
            double bound = 1.0 / Math.Sqrt(fanIn);
            var w = new float[fanOut * fanIn];
            var b = new float[fanOut];
            for (int i = 0; i < w.Length; i++) w[i] = (float)((2 * random.NextDouble() - 1) * bound);
            for (int i = 0; i < b.Length; i++) b[i] = (float)((2 * random.NextDouble() - 1) * bound);
            graph.Initializer.Add(Floats($"fc{layer}.weight", w, fanOut, fanIn));
            graph.Initializer.Add(Floats($"fc{layer}.bias", b, fanOut));
            bool last = layer == widths.Length - 1;
            graph.Node.Add(Node("Gemm", [$"h{layer}", $"fc{layer}.weight", $"fc{layer}.bias"], [last ? outputName : $"g{layer}"], Int("transB", 1)));
            if (!last) graph.Node.Add(Node("Relu", [$"g{layer}"], [$"h{layer + 1}"]));
            parameters += w.Length + b.Length;
            fanIn = fanOut;
        }
        return (Serialize(graph, "Dense classifier (Flatten, Gemm + Relu layers, Gemm).", metadata), parameters);
    }

    /// <summary>
    /// A "teacher" whose logits are its input image, flattened: [N, C, H, W] in, [N, C*H*W] out. It shows exactly
    /// what a teacher was given (tests of the trainer running a teacher on the student's crops).
    /// </summary>
    public static byte[] Echo(int channels, int height, int width, string inputName = "input", string outputName = "logits")
    {
        CheckNames(inputName, outputName);
        var graph = new GraphProto { Name = "echo" };
        graph.Input.Add(Value(inputName, FloatType, Batch(), Fixed(channels), Fixed(height), Fixed(width)));
        graph.Output.Add(Value(outputName, FloatType, Batch(), Fixed(channels * height * width)));
        graph.Node.Add(Node("Flatten", [inputName], [outputName], Int("axis", 1)));
        return Serialize(graph, "Echo: the logits are the input image, flattened.", null);
    }

    /// <summary>
    /// Plain C# forward pass of the network that <see cref="ConvClassifier"/> builds with the same arguments
    /// (the weights are redrawn from <paramref name="seed"/>), for checking the ONNX model's output.
    /// </summary>
    /// <param name="input">The batch in NCHW order, row-major: <c>batch · C · H · W</c> values.</param>
    /// <param name="batch">Number of rows N.</param>
    /// <param name="channels">Input channels C.</param>
    /// <param name="height">Input height H (at least 4).</param>
    /// <param name="width">Input width W (at least 4).</param>
    /// <param name="classes">Number of outputs.</param>
    /// <param name="seed">Seed given to <see cref="ConvClassifier"/>.</param>
    /// <param name="hidden">Width of the hidden fully-connected layer given to <see cref="ConvClassifier"/>.</param>
    /// <returns>The logits, <c>batch · classes</c> values, row-major.</returns>
    public static float[] ConvClassifierReference(float[] input, int batch, int channels, int height, int width, int classes, int seed, int hidden = 64)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        var p = ConvWeights.Create(channels, height, width, classes, seed, hidden);
        int image = channels * height * width;
        if (input.Length != batch * image)
            throw new ArgumentException($"Expected {batch} x {channels} x {height} x {width} = {batch * image} values, got {input.Length}.", nameof(input));

        var output = new float[batch * classes];
        for (int n = 0; n < batch; n++)
        {
            var x = input.AsSpan(n * image, image).ToArray();
            var a = MaxPool(Relu(Conv3x3(x, channels, height, width, p.Conv1W, p.Conv1B, ConvWeights.C1)), ConvWeights.C1, height, width);
            int h1 = height / 2, w1 = width / 2;
            var b = MaxPool(Relu(Conv3x3(a, ConvWeights.C1, h1, w1, p.Conv2W, p.Conv2B, ConvWeights.C2)), ConvWeights.C2, h1, w1);
            var f = Relu(Dense(b, p.Fc1W, p.Fc1B, hidden));
            Dense(f, p.Fc2W, p.Fc2B, classes).CopyTo(output, n * classes);
        }
        return output;
    }

    /// <summary>
    /// Stand-in for a CLIP image tower: input float <c>[N, C, H, W]</c>, Flatten then MatMul by
    /// <paramref name="projection"/>, output float <c>[N, E]</c>. The embeddings are NOT normalised.
    /// </summary>
    /// <param name="projection">The (C·H·W) x E projection; its rows follow the NCHW flattening order.</param>
    /// <param name="channels">Input channels C.</param>
    /// <param name="height">Input height H.</param>
    /// <param name="width">Input width W.</param>
    /// <param name="inputName">Name of the graph input.</param>
    /// <param name="outputName">Name of the graph output.</param>
    /// <param name="metadata">Optional key/value pairs written to the model's metadata_props.</param>
    /// <returns>The serialised ONNX model.</returns>
    public static byte[] ClipImageEncoder(float[,] projection, int channels, int height, int width,
        string inputName = "pixel_values", string outputName = "image_embeds", IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(projection);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        int features = channels * height * width, e = projection.GetLength(1);
        if (projection.GetLength(0) != features)
            throw new ArgumentException($"The projection must have C*H*W = {features} rows, got {projection.GetLength(0)}.", nameof(projection));
        if (e == 0) throw new ArgumentException("The projection must have at least one column.", nameof(projection));
        CheckNames(inputName, outputName);

        var graph = new GraphProto { Name = "clip_image_encoder" };
        graph.Input.Add(Value(inputName, FloatType, Batch(), Fixed(channels), Fixed(height), Fixed(width)));
        graph.Output.Add(Value(outputName, FloatType, Batch(), Fixed(e)));
        graph.Initializer.Add(Floats("projection", Flatten(projection), features, e));
        graph.Node.Add(Node("Flatten", [inputName], ["flat"], Int("axis", 1)));
        graph.Node.Add(Node("MatMul", ["flat", "projection"], [outputName]));
        return Serialize(graph, "CLIP-like image encoder stand-in: flatten then linear projection (not normalised).", metadata);
    }

    /// <summary>
    /// Stand-in for a CLIP text tower: input int64 <c>input_ids [N, L]</c> (and int64 <c>attention_mask [N, L]</c>
    /// when <paramref name="withAttentionMask"/>), output float <c>[N, E]</c>, the mean of the token embeddings.
    /// With the mask: <c>out[n] = Σ_l emb[ids[n,l]] · mask[n,l] / Σ_l mask[n,l]</c> (Gather, Cast, Unsqueeze, Mul,
    /// ReduceSum, Div); a row whose mask sums to 0 gives a zero vector (the denominator is clamped to at least 1).
    /// Without the mask: the plain mean over l (Gather, ReduceMean). Both N and L are dynamic ("N", "L").
    /// The embeddings are NOT normalised; ids outside <c>[0, V)</c> make ONNX Runtime fail.
    /// </summary>
    /// <param name="tokenEmbeddings">The V x E embedding table (one row per token id).</param>
    /// <param name="withAttentionMask">Whether the model has the attention-mask input.</param>
    /// <param name="idsName">Name of the token-id input.</param>
    /// <param name="maskName">Name of the attention-mask input (unused without the mask).</param>
    /// <param name="outputName">Name of the graph output.</param>
    /// <param name="metadata">Optional key/value pairs written to the model's metadata_props.</param>
    /// <returns>The serialised ONNX model.</returns>
    public static byte[] ClipTextEncoder(float[,] tokenEmbeddings, bool withAttentionMask = true,
        string idsName = "input_ids", string maskName = "attention_mask", string outputName = "text_embeds",
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tokenEmbeddings);
        int v = tokenEmbeddings.GetLength(0), e = tokenEmbeddings.GetLength(1);
        if (v == 0 || e == 0) throw new ArgumentException("The embedding table must not be empty.", nameof(tokenEmbeddings));
        if (withAttentionMask) CheckNames(idsName, maskName, outputName); else CheckNames(idsName, outputName);

        var graph = new GraphProto { Name = "clip_text_encoder" };
        graph.Input.Add(Value(idsName, Int64Type, Batch(), Dynamic(SequenceDimension)));
        if (withAttentionMask) graph.Input.Add(Value(maskName, Int64Type, Batch(), Dynamic(SequenceDimension)));
        graph.Output.Add(Value(outputName, FloatType, Batch(), Fixed(e)));
        graph.Initializer.Add(Floats("token_embedding", Flatten(tokenEmbeddings), v, e));
        graph.Node.Add(Node("Gather", ["token_embedding", idsName], ["embedded"], Int("axis", 0))); // [N, L, E]

        if (withAttentionMask)
        {
            // Opset 13: Unsqueeze and ReduceSum take their axes as an input tensor.
            graph.Initializer.Add(Int64s("axis_1", 1));
            graph.Initializer.Add(Int64s("axis_2", 2));
            graph.Initializer.Add(Scalar("one", 1f));
            graph.Node.Add(Node("Cast", [maskName], ["mask_f"], Int("to", FloatType)));                  // [N, L]
            graph.Node.Add(Node("Unsqueeze", ["mask_f", "axis_2"], ["mask_3d"]));                         // [N, L, 1]
            graph.Node.Add(Node("Mul", ["embedded", "mask_3d"], ["masked"]));                             // [N, L, E]
            graph.Node.Add(Node("ReduceSum", ["masked", "axis_1"], ["summed"], Int("keepdims", 0)));      // [N, E]
            graph.Node.Add(Node("ReduceSum", ["mask_f", "axis_1"], ["count"], Int("keepdims", 1)));       // [N, 1]
            graph.Node.Add(Node("Max", ["count", "one"], ["count_1"]));                                   // [N, 1]
            graph.Node.Add(Node("Div", ["summed", "count_1"], [outputName]));                             // [N, E]
        }
        else
        {
            // Opset 13: ReduceMean still takes its axes as an attribute.
            graph.Node.Add(Node("ReduceMean", ["embedded"], [outputName], Ints("axes", 1), Int("keepdims", 0)));
        }
        return Serialize(graph, withAttentionMask
            ? "CLIP-like text encoder stand-in: attention-masked mean of token embeddings (not normalised)."
            : "CLIP-like text encoder stand-in: mean of token embeddings (not normalised).", metadata);
    }

    // ---- ConvClassifier weights and plain C# forward pass ----

    private sealed class ConvWeights
    {
        public const int C1 = 32, C2 = 64;
        public required float[] Conv1W, Conv1B, Conv2W, Conv2B, Fc1W, Fc1B, Fc2W, Fc2B;
        public required int Features;
        public long Count => (long)Conv1W.Length + Conv1B.Length + Conv2W.Length + Conv2B.Length + Fc1W.Length + Fc1B.Length + Fc2W.Length + Fc2B.Length;

        public static ConvWeights Create(int channels, int height, int width, int classes, int seed, int hidden)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
            ArgumentOutOfRangeException.ThrowIfLessThan(height, 4);
            ArgumentOutOfRangeException.ThrowIfLessThan(width, 4);
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hidden);
            int features = C2 * (height / 2 / 2) * (width / 2 / 2);
            var random = new Random(seed);
            float[] Draw(int count, int fanIn)
            {
                double bound = 1.0 / Math.Sqrt(fanIn);
                var values = new float[count];
                for (int i = 0; i < count; i++) values[i] = (float)((2.0 * random.NextDouble() - 1.0) * bound);
                return values;
            }
            // Draw order matters: it is part of the documented contract.
            var conv1W = Draw(C1 * channels * 9, channels * 9);
            var conv1B = Draw(C1, channels * 9);
            var conv2W = Draw(C2 * C1 * 9, C1 * 9);
            var conv2B = Draw(C2, C1 * 9);
            var fc1W = Draw(hidden * features, features);
            var fc1B = Draw(hidden, features);
            var fc2W = Draw(classes * hidden, hidden);
            var fc2B = Draw(classes, hidden);
            return new ConvWeights
            {
                Conv1W = conv1W, Conv1B = conv1B, Conv2W = conv2W, Conv2B = conv2B,
                Fc1W = fc1W, Fc1B = fc1B, Fc2W = fc2W, Fc2B = fc2B, Features = features,
            };
        }
    }

    // 3x3 convolution, stride 1, zero padding 1, one image in CHW order; weight [outC, inC, 3, 3].
    private static float[] Conv3x3(float[] x, int inC, int h, int w, float[] weight, float[] bias, int outC)
    {
        var y = new float[outC * h * w];
        for (int o = 0; o < outC; o++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    double sum = bias[o];
                    for (int c = 0; c < inC; c++)
                        for (int di = 0; di < 3; di++)
                        {
                            int ii = i + di - 1;
                            if (ii < 0 || ii >= h) continue;
                            for (int dj = 0; dj < 3; dj++)
                            {
                                int jj = j + dj - 1;
                                if (jj < 0 || jj >= w) continue;
                                sum += weight[((o * inC + c) * 3 + di) * 3 + dj] * x[(c * h + ii) * w + jj];
                            }
                        }
                    y[(o * h + i) * w + j] = (float)sum;
                }
        return y;
    }

    // 2x2 max pooling, stride 2, rounding down, one image in CHW order.
    private static float[] MaxPool(float[] x, int c, int h, int w)
    {
        int ho = h / 2, wo = w / 2;
        var y = new float[c * ho * wo];
        for (int k = 0; k < c; k++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++)
                {
                    int at = (k * h + 2 * i) * w + 2 * j;
                    y[(k * ho + i) * wo + j] = Math.Max(Math.Max(x[at], x[at + 1]), Math.Max(x[at + w], x[at + w + 1]));
                }
        return y;
    }

    private static float[] Relu(float[] x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = Math.Max(x[i], 0f);
        return x;
    }

    // y = W x + b with W [outputs, x.Length].
    private static float[] Dense(float[] x, float[] weight, float[] bias, int outputs)
    {
        var y = new float[outputs];
        for (int o = 0; o < outputs; o++)
        {
            double sum = bias[o];
            for (int i = 0; i < x.Length; i++) sum += weight[o * x.Length + i] * x[i];
            y[o] = (float)sum;
        }
        return y;
    }

    // ---- protobuf helpers ----

    private static byte[] Serialize(GraphProto graph, string doc, IReadOnlyDictionary<string, string>? metadata)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "DualHeadML.Samples.TinyOnnxModels",
            ProducerVersion = "1",
            DocString = doc,
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OpsetVersion });
        if (metadata is not null)
            foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
                model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value ?? "" });
        return model.ToByteArray();
    }

    private static void CheckNames(params string[] names)
    {
        foreach (var name in names) ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Length)
            throw new ArgumentException($"Input and output names must differ: {string.Join(", ", names)}.");
    }

    private static TensorShapeProto.Types.Dimension Batch() => Dynamic(BatchDimension);
    private static TensorShapeProto.Types.Dimension Dynamic(string name) => new() { DimParam = name };
    private static TensorShapeProto.Types.Dimension Fixed(long size) => new() { DimValue = size };

    private static ValueInfoProto Value(string name, int elemType, params TensorShapeProto.Types.Dimension[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims);
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape } },
        };
    }

    private static TensorProto Floats(string name, float[] values, params long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = FloatType };
        tensor.Dims.AddRange(dims);
        tensor.FloatData.AddRange(values);
        return tensor;
    }

    private static TensorProto Scalar(string name, float value)
    {
        var tensor = new TensorProto { Name = name, DataType = FloatType };
        tensor.FloatData.Add(value);
        return tensor;
    }

    private static TensorProto Int64s(string name, params long[] values)
    {
        var tensor = new TensorProto { Name = name, DataType = Int64Type };
        tensor.Dims.Add(values.Length);
        tensor.Int64Data.AddRange(values);
        return tensor;
    }

    private static NodeProto Node(string op, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = $"{op}_{outputs[0]}" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    private static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private static float[] Flatten(float[,] matrix)
    {
        int rows = matrix.GetLength(0), cols = matrix.GetLength(1);
        var values = new float[rows * cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                values[i * cols + j] = matrix[i, j];
        return values;
    }
}
