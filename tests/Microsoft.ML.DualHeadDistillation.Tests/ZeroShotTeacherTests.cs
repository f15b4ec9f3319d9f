using Microsoft.ML.Transforms.Image;
using DualHeadML.Samples.Onnx;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

[TestClass]
public sealed class ZeroShotTeacherTests
{
    private static readonly MLContext s_ml = new(seed: 1);
    private const int E = 4, C = 1, H = 3, W = 3, D = C * H * W;
    private static readonly string[] s_classes = ["cat", "dog", "bird"];
    private static readonly string[] s_words = ["photo", "of", "the", "cat", "dog", "bird", "art", "small"];

    private static double[] Unit(double[] v) { double n = Math.Sqrt(v.Sum(x => x * x)); return v.Select(x => x / n).ToArray(); }

    private static double[] ImageEmbedding(float[,] projection, float[] pixels) =>
        Enumerable.Range(0, E).Select(e => Enumerable.Range(0, D).Sum(j => (double)pixels[j] * projection[j, e])).ToArray();

    private static (IDataView Data, float[][] Rows) Images(int n)
    {
        var rows = TeacherFixtures.RandomRows(n, D, 8);
        return (TeacherFixtures.Vectors(s_ml, rows), rows);
    }

    private static ZeroShotTeacherOptions Options(string imageEncoder) => new()
    {
        InputColumnName = "Pixels",
        ImageEncoderPath = imageEncoder,
        ClassNames = s_classes,
        Preprocessing = new TeacherPreprocessing { SourceShape = [C, H, W], Scale = 1f },
        BatchSize = 4,
    };

    [TestMethod]
    public void LogitsAreScaledCosinesWithGivenClassEmbeddings()
    {
        using var dir = new TempDir();
        var projection = TeacherFixtures.RandomMatrix(D, E, 3);
        var encoder = dir.File("image.onnx", TinyOnnxModels.ClipImageEncoder(projection, C, H, W));
        var classes = TeacherFixtures.RandomMatrix(3, E, 4);
        var (data, rows) = Images(7);
        var options = Options(encoder);
        options.ClassEmbeddings = classes;
        using var teacher = s_ml.Transforms.ZeroShotTeacher(options).Fit(data);
        var logits = teacher.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray();
        for (int i = 0; i < rows.Length; i++)
        {
            var image = Unit(ImageEmbedding(projection, rows[i]));
            for (int k = 0; k < 3; k++)
            {
                var text = Unit(Enumerable.Range(0, E).Select(e => (double)classes[k, e]).ToArray());
                Assert.AreEqual(100 * image.Zip(text).Sum(p => p.First * p.Second), logits[i][k], 1e-3);
            }
        }
        VBuffer<ReadOnlyMemory<char>> slots = default;
        teacher.Transform(data).Schema["TeacherLogits"].GetSlotNames(ref slots);
        CollectionAssert.AreEqual(s_classes, slots.DenseValues().Select(s => s.ToString()).ToArray());

        // The same matrix from a file, and another logit scale from the encoder's metadata.
        var file = Path.Combine(dir.Path, "classes.txt");
        File.WriteAllLines(file, Enumerable.Range(0, 3).Select(k => string.Join(",", Enumerable.Range(0, E).Select(e => classes[k, e].ToString("R", System.Globalization.CultureInfo.InvariantCulture)))));
        var scaled = dir.File("image50.onnx", TinyOnnxModels.ClipImageEncoder(projection, C, H, W, metadata: new Dictionary<string, string> { [TeacherMetadata.LogitScaleKey] = "50" }));
        var fromFile = Options(scaled);
        fromFile.ClassEmbeddingsPath = file;
        using var teacher2 = s_ml.Transforms.ZeroShotTeacher(fromFile).Fit(data);
        var half = teacher2.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray();
        for (int k = 0; k < 3; k++) Assert.AreEqual(logits[0][k] / 2, half[0][k], 1e-3);
    }

    [TestMethod]
    public void ClipTokenizerFramesAndMergesWords()
    {
        using var dir = new TempDir();
        var (vocab, merges, ids) = TeacherFixtures.ClipVocabulary(dir.Path, s_words);
        var tokenizer = ClipTokenizer.FromFiles(vocab, merges);
        var encoded = tokenizer.Encode("A  Photo of a CAT.", 77);
        int[] expected = [ids["<|startoftext|>"], ids["a</w>"], ids["photo</w>"], ids["of</w>"], ids["a</w>"], ids["cat</w>"], ids[".</w>"], ids["<|endoftext|>"]];
        CollectionAssert.AreEqual(expected, encoded);
        var truncated = tokenizer.Encode("a photo of a cat.", 4);
        CollectionAssert.AreEqual(new[] { ids["<|startoftext|>"], ids["a</w>"], ids["photo</w>"], ids["<|endoftext|>"] }, truncated);
    }

    [TestMethod]
    public void TextEncoderPromptEnsembleIsNormalisedAveragedAndRenormalised()
    {
        using var dir = new TempDir();
        var (vocab, merges, ids) = TeacherFixtures.ClipVocabulary(dir.Path, s_words);
        var tokenEmbeddings = TeacherFixtures.RandomMatrix(ids.Count, E, 5);
        var projection = TeacherFixtures.RandomMatrix(D, E, 3);
        string[] templates = ["a photo of the {}.", "art of the small {}."];
        var (data, rows) = Images(5);

        // Hugging Face naming (input_ids + attention_mask -> text_embeds) and open_clip-style single input/output.
        foreach (bool huggingFace in new[] { true, false })
        {
            var text = huggingFace
                ? dir.File("text-hf.onnx", TinyOnnxModels.ClipTextEncoder(tokenEmbeddings))
                : dir.File("text-oc.onnx", TinyOnnxModels.ClipTextEncoder(tokenEmbeddings, withAttentionMask: false, idsName: "text", outputName: "output"));
            var image = huggingFace
                ? dir.File("image-hf.onnx", TinyOnnxModels.ClipImageEncoder(projection, C, H, W))
                : dir.File("image-oc.onnx", TinyOnnxModels.ClipImageEncoder(projection, C, H, W, inputName: "image", outputName: "output"));
            var options = Options(image);
            options.TextEncoderPath = text;
            options.VocabPath = vocab;
            options.MergesPath = merges;
            options.PromptTemplates = templates;
            options.ContextLength = 12;
            using var teacher = s_ml.Transforms.ZeroShotTeacher(options).Fit(data);
            var logits = teacher.Transform(data).GetColumn<float[]>("TeacherLogits").ToArray();

            var tokenizer = ClipTokenizer.FromFiles(vocab, merges);
            for (int k = 0; k < 3; k++)
            {
                var mean = new double[E];
                foreach (var t in templates)
                {
                    var tokens = tokenizer.Encode(t.Replace("{}", s_classes[k]), 12);
                    // HF-style: masked mean over real tokens; open_clip-style: mean over all 12 positions (padding id 0).
                    var positions = huggingFace ? tokens : tokens.Concat(Enumerable.Repeat(0, 12 - tokens.Length)).ToArray();
                    var prompt = Enumerable.Range(0, E).Select(e => positions.Average(id => (double)tokenEmbeddings[id, e])).ToArray();
                    var unit = Unit(prompt);
                    for (int e = 0; e < E; e++) mean[e] += unit[e] / templates.Length;
                }
                var classEmbedding = Unit(mean);
                for (int i = 0; i < rows.Length; i++)
                {
                    var img = Unit(ImageEmbedding(projection, rows[i]));
                    Assert.AreEqual(100 * img.Zip(classEmbedding).Sum(p => p.First * p.Second), logits[i][k], 2e-3, $"hf={huggingFace} row {i} class {k}");
                }
            }
        }
    }

    [TestMethod]
    public void ZeroShotBadInputsGiveClearErrors()
    {
        using var dir = new TempDir();
        var image = dir.File("image.onnx", TinyOnnxModels.ClipImageEncoder(TeacherFixtures.RandomMatrix(D, E, 3), C, H, W));
        var (data, _) = Images(2);

        var none = Options(image);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => s_ml.Transforms.ZeroShotTeacher(none)).Message, "exactly one way");

        var noNames = Options(image);
        noNames.ClassNames = null;
        noNames.ClassEmbeddings = new float[3, E];
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => s_ml.Transforms.ZeroShotTeacher(noNames)).Message, "ClassNames is required");

        var wrongRows = Options(image);
        wrongRows.ClassEmbeddings = new float[2, E];
        Assert.AreEqual("ClassEmbeddings", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.ZeroShotTeacher(wrongRows)).ParamName);

        var wrongWidth = Options(image);
        wrongWidth.ClassEmbeddings = new float[3, E + 1];
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.ZeroShotTeacher(wrongWidth).Fit(data)).Message, "to match the class text embeddings");

        var noVocab = Options(image);
        noVocab.TextEncoderPath = image;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => s_ml.Transforms.ZeroShotTeacher(noVocab)).Message, "VocabPath and MergesPath");

        var missingVocab = Options(image);
        missingVocab.TextEncoderPath = image;
        missingVocab.VocabPath = Path.Combine(dir.Path, "vocab.json");
        missingVocab.MergesPath = Path.Combine(dir.Path, "merges.txt");
        StringAssert.Contains(Assert.ThrowsExactly<FileNotFoundException>(() => s_ml.Transforms.ZeroShotTeacher(missingVocab).Fit(data)).Message, "vocab.json");

        var badFile = Options(image);
        var file = Path.Combine(dir.Path, "bad.txt");
        File.WriteAllLines(file, ["1,2,3,4", "x,y,z,w", "1,2,3,4"]);
        badFile.ClassEmbeddingsPath = file;
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => s_ml.Transforms.ZeroShotTeacher(badFile).Fit(data)).Message, "line 2");
    }
}

[TestClass]
public sealed class TeacherReviewTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    [TestMethod]
    public void ZeroShotTakesPreprocessingFromTheEncoderMetadataOrClipAtTheEncoderSize()
    {
        using var dir = new TempDir();
        var projection = TeacherFixtures.RandomMatrix(3 * 4 * 4, 2, 3);
        var data = s_ml.Data.LoadFromEnumerable(new[] { new TeacherSoftLabelsTests.ImageRow { Image = MLImage.CreateFromPixels(4, 4, MLPixelFormat.Bgra32, new byte[64]) } });
        var options = new ZeroShotTeacherOptions { InputColumnName = "Image", ClassNames = ["a", "b"], ClassEmbeddings = new float[,] { { 1, 0 }, { 0, 1 } } };

        options.ImageEncoderPath = dir.File("plain.onnx", TinyOnnxModels.ClipImageEncoder(projection, 3, 4, 4));
        using (var clip = s_ml.Transforms.ZeroShotTeacher(options).Fit(data))
        {
            CollectionAssert.AreEqual(TeacherPreprocessing.ClipMean, clip.Preprocessing!.Mean);
            Assert.AreEqual(4, clip.Preprocessing.CropHeight);
        }
        var metadata = new Dictionary<string, string> { [TeacherMetadata.InputSizeKey] = "4", [TeacherMetadata.MeanKey] = "0.5,0.5,0.5", [TeacherMetadata.StdKey] = "0.25,0.25,0.25", [TeacherMetadata.InterpolationKey] = "bilinear" };
        options.ImageEncoderPath = dir.File("meta.onnx", TinyOnnxModels.ClipImageEncoder(projection, 3, 4, 4, metadata: metadata));
        using (var fromMetadata = s_ml.Transforms.ZeroShotTeacher(options).Fit(data))
        {
            CollectionAssert.AreEqual(new[] { 0.5f, 0.5f, 0.5f }, fromMetadata.Preprocessing!.Mean);
            Assert.AreEqual(ResizeInterpolation.Bilinear, fromMetadata.Preprocessing.Interpolation);
        }
        var badOrder = new Dictionary<string, string> { [TeacherMetadata.ChannelOrderKey] = "grb" };
        options.ImageEncoderPath = dir.File("bad.onnx", TinyOnnxModels.ClipImageEncoder(projection, 3, 4, 4, metadata: badOrder));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => s_ml.Transforms.ZeroShotTeacher(options).Fit(data)).Message, "dualhead.channel_order");
    }

    [TestMethod]
    public void CropThatDoesNotFitAFixedModelInputFailsAtFit()
    {
        using var dir = new TempDir();
        var encoder = dir.File("enc.onnx", TinyOnnxModels.ClipImageEncoder(TeacherFixtures.RandomMatrix(3 * 4 * 4, 2, 3), 3, 4, 4));
        var fixedInput = new ZeroShotTeacherOptions
        {
            InputColumnName = "Image", ImageEncoderPath = encoder, ClassNames = ["a", "b"], ClassEmbeddings = new float[,] { { 1, 0 }, { 0, 1 } },
            Preprocessing = new TeacherPreprocessing { ResizeShorterSide = 5, CropHeight = 5, CropWidth = 5 },
        };
        var data = s_ml.Data.LoadFromEnumerable(new[] { new TeacherSoftLabelsTests.ImageRow { Image = MLImage.CreateFromPixels(4, 4, MLPixelFormat.Bgra32, new byte[64]) } });
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.Transforms.ZeroShotTeacher(fixedInput).Fit(data));
        StringAssert.Contains(e.Message, "produces [3, 5, 5] but teacher model");
    }

    [TestMethod]
    public void LaterChangesToTheOptionsDoNotReachABuiltEstimator()
    {
        using var dir = new TempDir();
        var path = dir.File("linear.onnx", TinyOnnxModels.Linear(TeacherFixtures.RandomMatrix(3, 6, 1), [0, 0, 0]));
        var options = new TeacherSoftLabelsOptions { InputColumnName = "Pixels", ModelPath = path, ClassNames = ["a", "b", "c"], Runtime = new TeacherRuntimeOptions { IntraOpThreads = 1 } };
        var estimator = s_ml.Transforms.TeacherSoftLabels(options);
        options.ClassNames = ["x"];
        options.Runtime.IntraOpThreads = -5;
        using var teacher = estimator.Fit(TeacherFixtures.Vectors(s_ml, TeacherFixtures.RandomRows(2, 6, 1)));
        CollectionAssert.AreEqual(new[] { "a", "b", "c" }, teacher.ClassNames!.ToArray());
    }
}
