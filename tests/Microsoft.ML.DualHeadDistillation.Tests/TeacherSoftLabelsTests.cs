using Microsoft.ML.Transforms.Image;
using DualHeadML.Samples.Onnx;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

[TestClass]
public sealed class TeacherSoftLabelsTests
{
    private static readonly MLContext s_ml = new(seed: 1);
    private static readonly string[] s_names = ["cat", "dog", "bird"];

    private static float[][] Column(IDataView data, string name) => data.GetColumn<float[]>(name).ToArray();

    private static float[] DirectRun(byte[] model, string input, string output, float[][] rows, int[] rowShape)
    {
        using var session = new InferenceSession(model);
        var flat = rows.SelectMany(r => r).ToArray();
        using var value = OrtValue.CreateTensorValueFromMemory(flat, [rows.Length, .. rowShape.Select(d => (long)d)]);
        using var results = session.Run(new RunOptions(), [input], [value], [output]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    [TestMethod]
    public void LinearTeacherEqualsDirectOnnxRuntimeRunWithClassNamesFromMetadata()
    {
        using var dir = new TempDir();
        var w = TeacherFixtures.RandomMatrix(3, 6, 1);
        float[] b = [0.1f, -0.2f, 0.3f];
        var metadata = new Dictionary<string, string> { [TeacherMetadata.ClassNamesKey] = "[\"cat\",\"dog\",\"bird\"]" };
        var bytes = TinyOnnxModels.Linear(w, b, metadata: metadata);
        var path = dir.File("linear.onnx", bytes);
        var rows = TeacherFixtures.RandomRows(10, 6, 2);
        var data = TeacherFixtures.Vectors(s_ml, rows);

        using var teacher = s_ml.Transforms.TeacherSoftLabels("TeacherLogits", "Pixels", path, batchSize: 4).Fit(data);
        var output = teacher.Transform(data);
        var logits = Column(output, "TeacherLogits");
        var direct = DirectRun(bytes, "input", "logits", rows, [6]);
        for (int i = 0; i < rows.Length; i++)
            for (int k = 0; k < 3; k++)
            {
                Assert.AreEqual(direct[i * 3 + k], logits[i][k], 1e-6);
                double hand = b[k] + Enumerable.Range(0, 6).Sum(j => (double)w[k, j] * rows[i][j]);
                Assert.AreEqual(hand, logits[i][k], 1e-5);
            }
        VBuffer<ReadOnlyMemory<char>> slots = default;
        output.Schema["TeacherLogits"].GetSlotNames(ref slots);
        CollectionAssert.AreEqual(s_names, slots.DenseValues().Select(s => s.ToString()).ToArray());
        Assert.AreEqual(3, teacher.Statistics.Batches); // 10 rows in batches of 4
        Assert.AreEqual(10, teacher.Statistics.RowsComputed);
    }

    [TestMethod]
    public void BatchingGivesTheSameNumbersAsBatchOne()
    {
        using var dir = new TempDir();
        var (bytes, parameters) = TinyOnnxModels.ConvClassifier(1, 28, 28, 10, seed: 5);
        Assert.IsTrue(parameters > 100_000);
        var path = dir.File("conv.onnx", bytes);
        var rows = TeacherFixtures.RandomRows(37, 784, 3);
        var data = TeacherFixtures.Vectors(s_ml, rows);
        var options = new TeacherSoftLabelsOptions { InputColumnName = "Pixels", ModelPath = path, BatchSize = 16 };
        using var batched = s_ml.Transforms.TeacherSoftLabels(options).Fit(data);
        options.BatchSize = 1;
        using var single = s_ml.Transforms.TeacherSoftLabels(options).Fit(data);
        var a = Column(batched.Transform(data), "TeacherLogits");
        var c = Column(single.Transform(data), "TeacherLogits");
        var reference = TinyOnnxModels.ConvClassifierReference(rows.SelectMany(r => r).ToArray(), 37, 1, 28, 28, 10, seed: 5);
        for (int i = 0; i < 37; i++)
            for (int k = 0; k < 10; k++)
            {
                Assert.AreEqual(c[i][k], a[i][k], 1e-5, $"row {i} class {k}");
                Assert.AreEqual(reference[i * 10 + k], a[i][k], 1e-4);
            }
        Assert.AreEqual(3, batched.Statistics.Batches);
        Assert.AreEqual(37, single.Statistics.Batches);
    }

    [TestMethod]
    public void ShuffledAndPartialReadsStayAligned()
    {
        using var dir = new TempDir();
        var w = TeacherFixtures.RandomMatrix(3, 6, 1);
        var path = dir.File("linear.onnx", TinyOnnxModels.Linear(w, [0, 0, 0]));
        var rows = TeacherFixtures.RandomRows(50, 6, 9);
        var data = TeacherFixtures.Vectors(s_ml, rows);
        using var teacher = s_ml.Transforms.TeacherSoftLabels("T", "Pixels", path, batchSize: 8).Fit(data);
        var output = teacher.Transform(data);
        // Shuffled cursor: rows are scored one by one and must still match their own inputs.
        using var cursor = output.GetRowCursor(output.Schema, new Random(3));
        var pixels = cursor.GetGetter<VBuffer<float>>(output.Schema["Pixels"]);
        var logits = cursor.GetGetter<VBuffer<float>>(output.Schema["T"]);
        VBuffer<float> x = default, t = default;
        int seen = 0;
        while (cursor.MoveNext())
        {
            if (++seen % 3 == 0) continue; // skip some rows without reading them
            pixels(ref x);
            logits(ref t);
            var xs = x.DenseValues().ToArray();
            for (int k = 0; k < 3; k++) Assert.AreEqual(Enumerable.Range(0, 6).Sum(j => (double)w[k, j] * xs[j]), t.GetItemOrDefault(k), 1e-5);
        }
        // Unshuffled with skipped rows: the look-ahead cursor must skip the same rows.
        using var plain = output.GetRowCursor(output.Schema);
        var plainLogits = plain.GetGetter<VBuffer<float>>(output.Schema["T"]);
        int row = 0;
        while (plain.MoveNext())
        {
            if (row % 7 == 3 || row % 11 == 0)
            {
                plainLogits(ref t);
                for (int k = 0; k < 3; k++) Assert.AreEqual(Enumerable.Range(0, 6).Sum(j => (double)w[k, j] * rows[row][j]), t.GetItemOrDefault(k), 1e-5, $"row {row}");
            }
            row++;
        }
    }

    [TestMethod]
    public void ImageColumnIsPreprocessedWithScaleMeanStdAndChannelOrder()
    {
        using var dir = new TempDir();
        // A 4x4 BGRA image; the teacher is linear over its preprocessed [3, 4, 4] tensor.
        var r = new Random(4);
        var bgra = new byte[4 * 4 * 4];
        r.NextBytes(bgra);
        var w = TeacherFixtures.RandomMatrix(2, 48, 6);
        var path = dir.File("linear48.onnx", TinyOnnxModels.Linear(w, [0, 0]));
        var data = s_ml.Data.LoadFromEnumerable(new[] { new ImageRow { Image = MLImage.CreateFromPixels(4, 4, MLPixelFormat.Bgra32, bgra) } });
        foreach (var order in new[] { ChannelOrder.Rgb, ChannelOrder.Bgr })
        {
            var prep = new TeacherPreprocessing { Scale = 1 / 255f, Mean = [0.5f, 0.4f, 0.3f], Std = [0.2f, 0.25f, 0.3f], ChannelOrder = order };
            using var teacher = s_ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions { InputColumnName = "Image", ModelPath = path, Preprocessing = prep, ModelInputName = "input" }).Fit(data);
            var logits = Column(teacher.Transform(data), "TeacherLogits")[0];
            var x = new float[48];
            for (int c = 0; c < 3; c++)
            {
                int rgb = order == ChannelOrder.Rgb ? c : 2 - c; // output channel c holds source channel rgb
                int byteIndex = 2 - rgb;                         // BGRA: R at 2, G at 1, B at 0
                for (int p = 0; p < 16; p++) x[c * 16 + p] = (bgra[p * 4 + byteIndex] / 255f - prep.Mean[rgb]) / prep.Std[rgb];
            }
            for (int k = 0; k < 2; k++) Assert.AreEqual(Enumerable.Range(0, 48).Sum(j => (double)w[k, j] * x[j]), logits[k], 1e-4, order.ToString());
        }
    }

    public sealed class ImageRow
    {
        [ImageType(4, 4)] public MLImage? Image { get; set; }
    }

    [TestMethod]
    public void ResizeAndCenterCropFollowTheGeometry()
    {
        // Constant images stay constant through both filters; a crop takes the centre.
        foreach (var interp in new[] { ResizeInterpolation.Bilinear, ResizeInterpolation.Bicubic })
        {
            var constant = Enumerable.Repeat(7f, 2 * 10 * 16).ToArray();
            var prep = new TeacherPreprocessing { ResizeShorterSide = 5, CropHeight = 4, CropWidth = 4, Interpolation = interp, Scale = 1 };
            var output = new float[2 * 4 * 4];
            Assert.AreEqual((2, 4, 4), prep.Apply(constant, 2, 10, 16, output));
            Assert.IsTrue(output.All(v => Math.Abs(v - 7) < 1e-4), interp.ToString());
            Assert.AreEqual((2, 5, 8), prep.OutputShape(2, 10, 16) is var s && prep.CropHeight is null ? s : (2, 5, 8));
        }
        var ramp = Enumerable.Range(0, 6 * 6).Select(i => (float)i).ToArray(); // value = 6*y + x
        var crop = new TeacherPreprocessing { CropHeight = 2, CropWidth = 4, Scale = 1 };
        var c2 = new float[8];
        crop.Apply(ramp, 1, 6, 6, c2);
        CollectionAssert.AreEqual(new float[] { 13, 14, 15, 16, 19, 20, 21, 22 }, c2);
        // Halving with the bilinear (triangle) filter averages with weights 1/8, 3/8, 3/8, 1/8 — PIL's antialiased result.
        var row = new float[] { 0, 8, 16, 24, 32, 40, 48, 56 };
        var half = new TeacherPreprocessing { ResizeShorterSide = 1, Scale = 1, Interpolation = ResizeInterpolation.Bilinear };
        var coeffs = ImageResampler.Coefficients(8, 4, ResizeInterpolation.Bilinear);
        CollectionAssert.AreEqual(new[] { 1.0 / 8, 3.0 / 8, 3.0 / 8, 1.0 / 8 }, coeffs.Weights[1].Select(v => Math.Round(v, 12)).ToArray());
        Assert.AreEqual(1, coeffs.Start[1]);
        var resized = ImageResampler.Resize(row, 1, 1, 8, 1, 4, ResizeInterpolation.Bilinear);
        Assert.AreEqual(8 / 8.0 + 3 * 16 / 8.0 + 3 * 24 / 8.0 + 32 / 8.0, resized[1], 1e-4);
        _ = half;
    }

    [TestMethod]
    public void SoftLabelsAreComputedOnceWithinAFit()
    {
        using var dir = new TempDir();
        var path = dir.File("linear.onnx", TinyOnnxModels.Linear(TeacherFixtures.RandomMatrix(3, SyntheticData.D, 2), [0, 0, 0]));
        var rows = SyntheticData.Rows(30, 90);
        var data = s_ml.Data.LoadFromEnumerable(rows);
        var pipeline = s_ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(s_ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions { InputColumnName = "Features", OutputColumnName = "Soft", ModelPath = path, BatchSize = 32 }))
            .Append(s_ml.MulticlassClassification.Trainers.DualHeadDistill(new DualHeadDistillOptions { TeacherColumnName = "Soft", Backbone = DualHeadBackbone.Mlp, NumberOfEpochs = 2, Seed = 1 }));
        var model = pipeline.Fit(data);
        var teacher = (TeacherSoftLabelsTransformer)model.ElementAt(1);
        Assert.AreEqual(120, teacher.Statistics.RowsComputed, teacher.Statistics.ToString());
        // Scoring through the whole model reads only what the evaluator asks for: the teacher stays idle.
        var metrics = s_ml.MulticlassClassification.Evaluate(model.Transform(data));
        Assert.IsTrue(metrics.MicroAccuracy > 0.5, $"accuracy {metrics.MicroAccuracy}");
        Assert.AreEqual(120, teacher.Statistics.RowsComputed);
        model.LastTransformer.Dispose();
        teacher.Dispose();
    }

    [TestMethod]
    public void DiskCacheHitsForTheSameTeacherAndRowsAndMissesOtherwise()
    {
        using var dir = new TempDir();
        string cache = Path.Combine(dir.Path, "cache");
        var w = TeacherFixtures.RandomMatrix(3, 6, 1);
        var path = dir.File("a.onnx", TinyOnnxModels.Linear(w, [0, 0, 0]));
        var otherPath = dir.File("b.onnx", TinyOnnxModels.Linear(TeacherFixtures.RandomMatrix(3, 6, 99), [0, 0, 0]));
        var rows = TeacherFixtures.RandomRows(20, 6, 2);
        var data = TeacherFixtures.Vectors(s_ml, rows);
        TeacherSoftLabelsOptions Options(string model) => new() { InputColumnName = "Pixels", ModelPath = model, CacheDirectory = cache, BatchSize = 8 };

        float[][] first;
        using (var teacher = s_ml.Transforms.TeacherSoftLabels(Options(path)).Fit(data))
        {
            first = Column(teacher.Transform(data), "TeacherLogits");
            Assert.AreEqual(20, teacher.Statistics.RowsComputed);
            Assert.AreEqual(0, teacher.Statistics.CacheHits);
            Assert.IsTrue(File.Exists(teacher.CacheFile));
        }
        // A second Fit (a new session, as in another process) reads everything from the cache.
        using (var again = s_ml.Transforms.TeacherSoftLabels(Options(path)).Fit(data))
        {
            var second = Column(again.Transform(data), "TeacherLogits");
            Assert.AreEqual(0, again.Statistics.RowsComputed);
            Assert.AreEqual(20, again.Statistics.CacheHits);
            for (int i = 0; i < 20; i++) CollectionAssert.AreEqual(first[i], second[i]);
            // New rows miss, known rows hit.
            var mixed = rows.Take(5).Concat(TeacherFixtures.RandomRows(3, 6, 77)).ToArray();
            again.Statistics.Reset();
            var mixedLogits = Column(again.Transform(TeacherFixtures.Vectors(s_ml, mixed)), "TeacherLogits");
            Assert.AreEqual(5, again.Statistics.CacheHits);
            Assert.AreEqual(3, again.Statistics.RowsComputed);
            for (int k = 0; k < 3; k++) Assert.AreEqual(Enumerable.Range(0, 6).Sum(j => (double)w[k, j] * mixed[6][j]), mixedLogits[6][k], 1e-5);
        }
        // Another teacher never sees the first teacher's entries.
        using (var other = s_ml.Transforms.TeacherSoftLabels(Options(otherPath)).Fit(data))
        {
            var logits = Column(other.Transform(data), "TeacherLogits");
            Assert.AreEqual(20, other.Statistics.RowsComputed);
            Assert.AreEqual(0, other.Statistics.CacheHits);
            CollectionAssert.AreNotEqual(first[0], logits[0]);
        }
        // Other preprocessing is another teacher too.
        var scaled = Options(path);
        scaled.Preprocessing = new TeacherPreprocessing { SourceShape = [1, 2, 3], Scale = 2f };
        using (var withPrep = s_ml.Transforms.TeacherSoftLabels(scaled).Fit(data))
        {
            Column(withPrep.Transform(data), "TeacherLogits");
            Assert.AreEqual(0, withPrep.Statistics.CacheHits);
        }
    }

    [TestMethod]
    public void BadTeacherInputsGiveClearErrors()
    {
        using var dir = new TempDir();
        var data = TeacherFixtures.Vectors(s_ml, TeacherFixtures.RandomRows(4, 6, 1));
        var linear = dir.File("linear.onnx", TinyOnnxModels.Linear(TeacherFixtures.RandomMatrix(3, 6, 1), [0, 0, 0]));

        var missing = Path.Combine(dir.Path, "nope.onnx");
        var e1 = Assert.ThrowsExactly<FileNotFoundException>(() => s_ml.Transforms.TeacherSoftLabels("T", "Pixels", missing).Fit(data));
        StringAssert.Contains(e1.Message, missing);

        var corrupt = dir.File("corrupt.onnx", [1, 2, 3, 4, 5, 6, 7, 8]);
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => s_ml.Transforms.TeacherSoftLabels("T", "Pixels", corrupt).Fit(data));
        StringAssert.Contains(e2.Message, "corrupt.onnx");
        StringAssert.Contains(e2.Message, "not a valid ONNX model");

        var wide = TeacherFixtures.Vectors(s_ml, TeacherFixtures.RandomRows(4, 7, 1));
        var e3 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.TeacherSoftLabels("T", "Pixels", linear).Fit(wide));
        StringAssert.Contains(e3.Message, "has 7 values per row but teacher model");
        StringAssert.Contains(e3.Message, "[6]");

        var textModel = dir.File("text.onnx", TinyOnnxModels.ClipTextEncoder(TeacherFixtures.RandomMatrix(5, 4, 1), withAttentionMask: false));
        var e4 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.TeacherSoftLabels("T", "Pixels", textModel).Fit(data));
        StringAssert.Contains(e4.Message, "Int64");
        StringAssert.Contains(e4.Message, "expected a tensor of Float");

        var e5 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.TeacherSoftLabels("T", "Pixels", linear, classNames: ["a", "b"]).Fit(data));
        StringAssert.Contains(e5.Message, "gives 3 values per row but 2 class names");

        var e6 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.TeacherSoftLabels("T", "Image", linear).Fit(data));
        StringAssert.Contains(e6.Message, "Teacher input column 'Image' was not found");

        var strings = s_ml.Data.LoadFromEnumerable(new[] { new { Pixels = "x" } });
        var e7 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.TeacherSoftLabels("T", "Pixels", linear).Fit(strings));
        StringAssert.Contains(e7.Message, "expected an image (MLImage), encoded image bytes (a vector of Byte) or a known-size vector of Single");

        var e8 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions { InputColumnName = "Pixels", ModelPath = linear, ModelOutputName = "probs" }).Fit(data));
        StringAssert.Contains(e8.Message, "has no output named 'probs'");

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.TeacherSoftLabels("T", "Pixels", linear, batchSize: 0));
    }
}

[TestClass]
public sealed class TeacherRuntimeTests
{
    [TestMethod]
    public void CudaRequestFallsBackToCpuOrFailsClearly()
    {
        var ml = new MLContext(seed: 1);
        using var dir = new TempDir();
        var path = dir.File("linear.onnx", DualHeadML.Samples.Onnx.TinyOnnxModels.Linear(TeacherFixtures.RandomMatrix(3, 6, 1), [0, 0, 0]));
        var data = TeacherFixtures.Vectors(ml, TeacherFixtures.RandomRows(3, 6, 1));
        var options = new TeacherSoftLabelsOptions { InputColumnName = "Pixels", ModelPath = path, Runtime = new TeacherRuntimeOptions { UseCuda = true, FallbackToCpu = true, IntraOpThreads = 1 } };
        using var teacher = ml.Transforms.TeacherSoftLabels(options).Fit(data);
        bool cuda = teacher.ExecutionProvider == "CUDA";
        Assert.AreEqual(3, teacher.Transform(data).GetColumn<float[]>("TeacherLogits").Count());
        if (cuda) return; // a GPU machine with the CUDA provider: nothing to fall back from
        Assert.AreEqual("CPU", teacher.ExecutionProvider);
        options.Runtime.FallbackToCpu = false;
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transforms.TeacherSoftLabels(options).Fit(data));
        StringAssert.Contains(e.Message, "CUDA provider could not be created");
    }
}
