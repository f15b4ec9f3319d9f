using DualHeadML.Samples.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Runs each model of <see cref="TinyOnnxModels"/> in ONNX Runtime and compares it with a plain C# computation.
/// </summary>
[TestClass]
public sealed class TinyOnnxModelsTests
{
    private const double Tolerance = 1e-4;

    private static readonly Dictionary<string, string> Metadata = new()
    {
        ["teacher"] = "tiny",
        ["classes"] = "T-shirt,Trouser",
        ["note"] = "unicode ✓ and = ; signs",
    };

    [TestMethod]
    public void LinearComputesXTimesWTransposedPlusBias()
    {
        var random = new Random(1);
        const int n = 3, d = 4, k = 3;
        var w = Matrix(random, k, d);
        var b = Vector(random, k);
        var x = Vector(random, n * d);

        using var session = new InferenceSession(TinyOnnxModels.Linear(w, b, metadata: Metadata));
        AssertBatchIsDynamic(session, "input", "logits");
        var (y, shape) = Run(session, "logits", ("input", OrtValue.CreateTensorValueFromMemory(x, [n, d])));

        CollectionAssert.AreEqual(new long[] { n, k }, shape);
        for (int r = 0; r < n; r++)
            for (int o = 0; o < k; o++)
            {
                double expected = b[o];
                for (int i = 0; i < d; i++) expected += x[r * d + i] * w[o, i];
                Assert.AreEqual(expected, y[r * k + o], Tolerance, $"row {r}, output {o}");
            }
        AssertMetadata(session, Metadata);
    }

    [TestMethod]
    public void LinearHonoursCustomNamesAndOtherBatchSizes()
    {
        var w = new float[,] { { 1f, 2f }, { -1f, 0.5f } };
        using var session = new InferenceSession(TinyOnnxModels.Linear(w, [0.25f, -1f], inputName: "Features", outputName: "Score"));
        CollectionAssert.AreEqual(new[] { "Features" }, session.InputNames.ToArray());
        CollectionAssert.AreEqual(new[] { "Score" }, session.OutputNames.ToArray());
        Assert.IsEmpty(session.ModelMetadata.CustomMetadataMap);

        var (y, shape) = Run(session, "Score", ("Features", OrtValue.CreateTensorValueFromMemory(new[] { 3f, -2f }, [1, 2])));
        CollectionAssert.AreEqual(new long[] { 1, 2 }, shape);
        Assert.AreEqual(3f - 4f + 0.25f, y[0], Tolerance);
        Assert.AreEqual(-3f - 1f - 1f, y[1], Tolerance);
    }

    [TestMethod]
    public void ConvClassifierHasOverOneHundredThousandParametersForFashionMnist()
    {
        var (onnx, parameters) = TinyOnnxModels.ConvClassifier(1, 28, 28, 10, seed: 7);
        long expected = 32 * (1 * 9 + 1) + 64 * (32 * 9 + 1) + 64 * (64 * 7 * 7 + 1) + 10 * (64 + 1);
        Assert.AreEqual(expected, parameters);
        Assert.IsGreaterThan(100_000L, parameters);
        Assert.IsGreaterThan(parameters * sizeof(float), (long)onnx.Length, "the weights are stored in the model");
    }

    [TestMethod]
    public void ConvClassifierMatchesTheReferenceOnFashionMnistShapes()
    {
        var meta = new Dictionary<string, string> { ["architecture"] = "conv", ["seed"] = "11" };
        var (onnx, _) = TinyOnnxModels.ConvClassifier(1, 28, 28, 10, seed: 11, metadata: meta);
        CheckConv(onnx, batch: 3, channels: 1, height: 28, width: 28, classes: 10, seed: 11, hidden: 64);
        using var session = new InferenceSession(onnx);
        AssertMetadata(session, meta);
    }

    [TestMethod]
    public void ConvClassifierMatchesTheReferenceOnOddShapes()
    {
        // Odd sizes check that both poolings round down the same way in ONNX Runtime and the reference.
        var (onnx, parameters) = TinyOnnxModels.ConvClassifier(3, 9, 7, 4, seed: 5, hidden: 16, inputName: "image", outputName: "scores");
        Assert.AreEqual(32 * (3 * 9 + 1) + 64 * (32 * 9 + 1) + 16 * (64 * 2 * 1 + 1) + 4 * (16 + 1), parameters);
        CheckConv(onnx, batch: 3, channels: 3, height: 9, width: 7, classes: 4, seed: 5, hidden: 16, inputName: "image", outputName: "scores");
    }

    [TestMethod]
    public void ConvClassifierWeightsDependOnTheSeed()
    {
        var a = TinyOnnxModels.ConvClassifier(1, 8, 8, 3, seed: 1, hidden: 8).Onnx;
        var b = TinyOnnxModels.ConvClassifier(1, 8, 8, 3, seed: 1, hidden: 8).Onnx;
        var c = TinyOnnxModels.ConvClassifier(1, 8, 8, 3, seed: 2, hidden: 8).Onnx;
        CollectionAssert.AreEqual(a, b);
        CollectionAssert.AreNotEqual(a, c);
    }

    [TestMethod]
    public void ClipImageEncoderFlattensThenProjectsWithoutNormalising()
    {
        var random = new Random(3);
        const int n = 3, c = 2, h = 3, w = 4, e = 5, f = c * h * w;
        var projection = Matrix(random, f, e);
        var x = Vector(random, n * f);

        using var session = new InferenceSession(TinyOnnxModels.ClipImageEncoder(projection, c, h, w, metadata: Metadata));
        AssertBatchIsDynamic(session, "pixel_values", "image_embeds");
        var (y, shape) = Run(session, "image_embeds", ("pixel_values", OrtValue.CreateTensorValueFromMemory(x, [n, c, h, w])));

        CollectionAssert.AreEqual(new long[] { n, e }, shape);
        for (int r = 0; r < n; r++)
        {
            double norm = 0;
            for (int o = 0; o < e; o++)
            {
                double expected = 0;
                for (int i = 0; i < f; i++) expected += x[r * f + i] * projection[i, o];
                Assert.AreEqual(expected, y[r * e + o], Tolerance, $"row {r}, dim {o}");
                norm += y[r * e + o] * y[r * e + o];
            }
            Assert.AreNotEqual(1.0, Math.Sqrt(norm), 1e-3, "output must not be L2-normalised");
        }
        AssertMetadata(session, Metadata);
    }

    [TestMethod]
    public void ClipTextEncoderAveragesTheMaskedTokenEmbeddings()
    {
        var random = new Random(4);
        const int n = 3, l = 5, v = 7, e = 4;
        var table = Matrix(random, v, e);
        long[] ids = [1, 4, 6, 0, 2, /**/ 3, 3, 5, 0, 0, /**/ 2, 6, 1, 4, 5];
        long[] mask = [1, 1, 1, 1, 1, /**/ 1, 1, 1, 0, 0, /**/ 1, 0, 1, 0, 0];

        using var session = new InferenceSession(TinyOnnxModels.ClipTextEncoder(table, metadata: Metadata));
        CollectionAssert.AreEqual(new[] { "input_ids", "attention_mask" }, session.InputNames.ToArray());
        foreach (var input in new[] { "input_ids", "attention_mask" })
        {
            var meta = session.InputMetadata[input];
            Assert.AreEqual(typeof(long), meta.ElementType);
            CollectionAssert.AreEqual(new[] { "N", "L" }, meta.SymbolicDimensions);
        }
        AssertBatchIsDynamic(session, "input_ids", "text_embeds");

        var (y, shape) = Run(session, "text_embeds",
            ("input_ids", OrtValue.CreateTensorValueFromMemory(ids, [n, l])),
            ("attention_mask", OrtValue.CreateTensorValueFromMemory(mask, [n, l])));

        CollectionAssert.AreEqual(new long[] { n, e }, shape);
        for (int r = 0; r < n; r++)
        {
            double count = 0;
            for (int t = 0; t < l; t++) count += mask[r * l + t];
            for (int o = 0; o < e; o++)
            {
                double sum = 0;
                for (int t = 0; t < l; t++) sum += table[ids[r * l + t], o] * mask[r * l + t];
                Assert.AreEqual(sum / count, y[r * e + o], Tolerance, $"row {r}, dim {o}");
            }
        }
        AssertMetadata(session, Metadata);
    }

    [TestMethod]
    public void ClipTextEncoderWithoutMaskTakesThePlainMeanForAnyLength()
    {
        var random = new Random(5);
        const int n = 3, v = 6, e = 3;
        var table = Matrix(random, v, e);
        using var session = new InferenceSession(TinyOnnxModels.ClipTextEncoder(table, withAttentionMask: false, idsName: "ids", outputName: "emb", metadata: Metadata));
        CollectionAssert.AreEqual(new[] { "ids" }, session.InputNames.ToArray());
        AssertBatchIsDynamic(session, "ids", "emb");

        foreach (int l in new[] { 5, 2 })
        {
            var ids = new long[n * l];
            for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(v);
            var (y, shape) = Run(session, "emb", ("ids", OrtValue.CreateTensorValueFromMemory(ids, [n, l])));
            CollectionAssert.AreEqual(new long[] { n, e }, shape);
            for (int r = 0; r < n; r++)
                for (int o = 0; o < e; o++)
                {
                    double sum = 0;
                    for (int t = 0; t < l; t++) sum += table[ids[r * l + t], o];
                    Assert.AreEqual(sum / l, y[r * e + o], Tolerance, $"L={l}, row {r}, dim {o}");
                }
        }
        AssertMetadata(session, Metadata);
    }

    [TestMethod]
    public void ClipTextEncoderGivesZerosForAnAllPaddingRow()
    {
        var table = new float[,] { { 1f, 2f }, { 3f, 4f } };
        using var session = new InferenceSession(TinyOnnxModels.ClipTextEncoder(table));
        var (y, _) = Run(session, "text_embeds",
            ("input_ids", OrtValue.CreateTensorValueFromMemory(new long[] { 0, 1, 1, 1 }, [2, 2])),
            ("attention_mask", OrtValue.CreateTensorValueFromMemory(new long[] { 0, 0, 1, 1 }, [2, 2])));
        CollectionAssert.AreEqual(new[] { 0f, 0f, 3f, 4f }, y);
    }

    [TestMethod]
    public void BuildersRejectMismatchedShapes()
    {
        Assert.ThrowsExactly<ArgumentException>(() => TinyOnnxModels.Linear(new float[2, 3], new float[3]));
        Assert.ThrowsExactly<ArgumentException>(() => TinyOnnxModels.ClipImageEncoder(new float[10, 2], 1, 3, 3));
        Assert.ThrowsExactly<ArgumentException>(() => TinyOnnxModels.ClipTextEncoder(new float[0, 2]));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyOnnxModels.ConvClassifier(1, 3, 28, 10, seed: 0));
    }

    private static void CheckConv(byte[] onnx, int batch, int channels, int height, int width, int classes, int seed, int hidden,
        string inputName = "input", string outputName = "logits")
    {
        var random = new Random(seed + 100);
        var x = new float[batch * channels * height * width];
        for (int i = 0; i < x.Length; i++) x[i] = (float)random.NextDouble();

        using var session = new InferenceSession(onnx);
        AssertBatchIsDynamic(session, inputName, outputName);
        var (y, shape) = Run(session, outputName, (inputName, OrtValue.CreateTensorValueFromMemory(x, [batch, channels, height, width])));
        CollectionAssert.AreEqual(new long[] { batch, classes }, shape);

        var expected = TinyOnnxModels.ConvClassifierReference(x, batch, channels, height, width, classes, seed, hidden);
        Assert.HasCount(expected.Length, y);
        for (int i = 0; i < y.Length; i++) Assert.AreEqual(expected[i], y[i], Tolerance, $"logit {i}");
        Assert.IsGreaterThan(1, y.Distinct().Count(), "the logits should not be constant");
    }

    private static (float[] Values, long[] Shape) Run(InferenceSession session, string outputName, params (string Name, OrtValue Value)[] inputs)
    {
        try
        {
            using var options = new RunOptions();
            using var results = session.Run(options, inputs.Select(i => i.Name).ToArray(), inputs.Select(i => i.Value).ToArray(), [outputName]);
            var output = results[0];
            return (output.GetTensorDataAsSpan<float>().ToArray(), output.GetTensorTypeAndShape().Shape);
        }
        finally
        {
            foreach (var (_, value) in inputs) value.Dispose();
        }
    }

    private static void AssertBatchIsDynamic(InferenceSession session, string input, string output)
    {
        foreach (var meta in new[] { session.InputMetadata[input], session.OutputMetadata[output] })
        {
            Assert.AreEqual(-1, meta.Dimensions[0]);
            Assert.AreEqual("N", meta.SymbolicDimensions[0]);
        }
    }

    private static void AssertMetadata(InferenceSession session, IReadOnlyDictionary<string, string> expected)
    {
        var actual = session.ModelMetadata.CustomMetadataMap;
        Assert.HasCount(expected.Count, actual);
        foreach (var (key, value) in expected) Assert.AreEqual(value, actual[key], key);
    }

    private static float[,] Matrix(Random random, int rows, int cols)
    {
        var m = new float[rows, cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                m[i, j] = (float)(2 * random.NextDouble() - 1);
        return m;
    }

    private static float[] Vector(Random random, int length)
    {
        var v = new float[length];
        for (int i = 0; i < length; i++) v[i] = (float)(2 * random.NextDouble() - 1);
        return v;
    }
}
