using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Data.Images;
using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Image feature columns: MLImage and encoded bytes, grey and RGB, odd sizes, the sample store.</summary>
[TestClass]
public sealed class ImageInputTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    private static float[] Scores(DualHeadDistillTransformer model, IDataView data) =>
        model.Transform(data).GetColumn<float[]>("Score").SelectMany(s => s).ToArray();

    [TestMethod]
    public void DecodedImagesAndEncodedBytesTrainTheSameStudentAndScore()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 24, 48);
        var decoded = ImageFixtures.Load(s_ml, dir.Path, rows);
        var encoded = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        using var a = s_ml.MulticlassClassification.Trainers.DualHeadDistill(ImageFixtures.Options()).Fit(decoded);
        using var b = s_ml.MulticlassClassification.Trainers.DualHeadDistill(ImageFixtures.Options()).Fit(encoded);
        CollectionAssert.AreEqual(SyntheticData.Weights(a), SyntheticData.Weights(b), "the same files as MLImage and as bytes must give the same weights");
        Assert.IsNotNull(a.Spec.Images);
        Assert.AreEqual(19, a.Spec.Images!.StorageSize, "default storage: 8/7 of 16, rounded up");
        Assert.AreEqual(ImageAugmentation.Default, a.Spec.Images.Augmentation);

        // Scoring reads either form, whatever the model was trained on.
        var fromDecoded = Scores(a, decoded);
        CollectionAssert.AreEqual(fromDecoded, Scores(a, encoded));
        CollectionAssert.AreEqual(fromDecoded, Scores(b, decoded));
        Assert.AreEqual(72 * 3, fromDecoded.Length);
        Assert.IsTrue(fromDecoded.All(float.IsFinite));

        // The images are learnable (colour): a few epochs beat chance on the labeled rows.
        var metrics = s_ml.MulticlassClassification.Evaluate(a.Transform(decoded.Filter(s_ml, 24)));
        Assert.IsTrue(metrics.MicroAccuracy > 0.5, $"accuracy {metrics.MicroAccuracy}");
    }

    [TestMethod]
    public void AnExportedOrSavedImageStudentScoresTheCenterCropsAsTheModelDoes()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 12, 12);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(ImageFixtures.Options(epochs: 1)).Fit(data);
        string path = Path.Combine(dir.Path, "student.onnx");
        model.ExportToOnnx(path);
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(path);
        var meta = Export.StudentOnnxMetadata.Read(session.ModelMetadata.CustomMetadataMap, path);
        Assert.AreEqual(19, meta.ImageStorageSize);
        Assert.AreEqual("3,16,16", session.ModelMetadata.CustomMetadataMap[Export.StudentOnnxMetadata.ImageCropKey]);
        Assert.AreEqual(768, meta.FeatureSize);

        // The graph's input is the center crop in [0, 1] (FeatureInput's pixels): its Score equals the model's.
        var crops = TrainingSet.ReadLabeledOnly(data, TrainingColumns.ForScoring(LabelInfo.FromSchema(data.Schema, "Label"), model.Input), Training.FitCancellation.None);
        using var input = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(crops.Features, [crops.Rows, 768]);
        using var outputs = session.Run(new Microsoft.ML.OnnxRuntime.RunOptions(), new Dictionary<string, Microsoft.ML.OnnxRuntime.OrtValue> { ["Image"] = input }, ["Score"]);
        var onnx = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        var scores = Scores(model, data);
        Assert.AreEqual(scores.Length, onnx.Length);
        for (int i = 0; i < onnx.Length; i++) Assert.AreEqual(scores[i], onnx[i], 1e-5f, $"value {i}");

        // ML.NET's own Model.Save cannot hold the image preparation: refused, naming DualHeadModel.Save.
        string refused = Path.Combine(dir.Path, "refused.zip");
        var e = Assert.ThrowsExactly<NotSupportedException>(() => s_ml.Model.Save(model, data.Schema, refused));
        StringAssert.Contains(e.Message, "DualHeadModel.Save");
        StringAssert.Contains(e.Message, "'Image'");

        // DualHeadModel.Save keeps it with its image preparation; DualHeadModel.Load scores encoded bytes as the model does.
        string zip = Path.Combine(dir.Path, "model.zip");
        DualHeadModel.Save(s_ml, model, data.Schema, zip);
        var loaded = DualHeadModel.Load(s_ml, zip, out var inputSchema);
        Assert.AreEqual(1, inputSchema.Count);
        Assert.AreEqual("Image", inputSchema[0].Name);
        var bytesRows = rows.Select(r => new EncodedRow { Image = File.ReadAllBytes(Path.Combine(dir.Path, r.Path)) }).ToArray();
        var loadedScores = loaded.Transform(s_ml.Data.LoadFromEnumerable(bytesRows)).GetColumn<float[]>("Score").SelectMany(v => v).ToArray();
        Assert.AreEqual(scores.Length, loadedScores.Length);
        for (int i = 0; i < scores.Length; i++) Assert.AreEqual(scores[i], loadedScores[i], 1e-5f, $"value {i}");
        using (var engine = s_ml.Model.CreatePredictionEngine<EncodedRow, ScoreRow>(loaded))
            for (int i = 0; i < bytesRows.Length; i++)
                CollectionAssert.AreEqual(loadedScores.Skip(3 * i).Take(3).ToArray(), engine.Predict(bytesRows[i]).Score, $"PredictionEngine, image {i}");
        // Saving the loaded model writes the same file; a pipeline that holds an image model is refused by ML.NET's Save.
        string again = Path.Combine(dir.Path, "again.zip");
        DualHeadModel.Save(s_ml, loaded, inputSchema, again);
        CollectionAssert.AreEqual(File.ReadAllBytes(zip), File.ReadAllBytes(again));
        (loaded as IDisposable)?.Dispose();
        // Plain mlContext.Model.Load gives the vector form: the center crop in [0, 1].
        var vector = s_ml.Model.Load(zip, out var vectorSchema);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 768), vectorSchema["Image"].Type);
        (vector as IDisposable)?.Dispose();
        // A non-image file given as the image: a clear error naming the column.
        var bad = new[] { new EncodedRow { Image = [1, 2, 3, 4] } };
        var badError = Assert.Throws<Exception>(() => loaded.Transform(s_ml.Data.LoadFromEnumerable(bad)).GetColumn<float[]>("Score").ToArray());
        var messages = new List<string>();
        for (Exception? x = badError; x is not null; x = x.InnerException) messages.Add(x.Message);
        Assert.IsTrue(messages.Any(m => m.Contains("Image column 'Image'") && m.Contains("not an image")), string.Join(" | ", messages));
    }

    [TestMethod]
    public void ATeacherReadsEncodedImageBytesAsItReadsDecodedImages()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 9, 9);
        var decoded = ImageFixtures.Load(s_ml, dir.Path, rows);
        var encoded = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        var (onnx, _) = DualHeadML.Samples.Onnx.TinyOnnxModels.ConvClassifier(3, 16, 16, 3, seed: 4);
        string model = Path.Combine(dir.Path, "teacher.onnx");
        File.WriteAllBytes(model, onnx);
        var prep = new Teachers.TeacherPreprocessing { ResizeShorterSide = 16, CropHeight = 16, CropWidth = 16 };
        float[] Logits(IDataView data, string? cache = null)
        {
            using var teacher = s_ml.Transforms.TeacherSoftLabels(new Teachers.TeacherSoftLabelsOptions { InputColumnName = "Image", ModelPath = model, Preprocessing = prep, CacheDirectory = cache }).Fit(data);
            return teacher.Transform(data).GetColumn<float[]>("TeacherLogits").SelectMany(v => v).ToArray();
        }
        var fromImages = Logits(decoded);
        Assert.AreEqual(18 * 3, fromImages.Length);
        CollectionAssert.AreEqual(fromImages, Logits(encoded), "the same files decoded by LoadImages and from their bytes");
        string cache = Path.Combine(dir.Path, "cache");
        Directory.CreateDirectory(cache);
        CollectionAssert.AreEqual(fromImages, Logits(encoded, cache));
        CollectionAssert.AreEqual(fromImages, Logits(encoded, cache), "read back from the cache (keyed by the file's bytes)");

        using var student = s_ml.MulticlassClassification.Trainers.DualHeadDistill(ImageFixtures.Options(epochs: 1)).Fit(encoded);
        File.WriteAllText(Path.Combine(dir.Path, rows[4].Path), "not an image");
        var bad = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        var e = Assert.Throws<Exception>(() => Logits(bad));
        var messages = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException) messages.Add(x.Message);
        Assert.IsTrue(messages.Any(m => m.Contains("Row 4 of teacher input column 'Image'") && m.Contains("not an image")), string.Join(" | ", messages));

        // The student's batched scoring names the same row (not the first row of its batch).
        var scoring = Assert.Throws<Exception>(() => student.Transform(bad).GetColumn<float[]>("Score").ToArray());
        messages.Clear();
        for (Exception? x = scoring; x is not null; x = x.InnerException) messages.Add(x.Message);
        Assert.IsTrue(messages.Any(m => m.Contains("Row 4 of image column 'Image'")), string.Join(" | ", messages));
    }

    public sealed class EncodedRow
    {
        public byte[] Image { get; set; } = [];
    }

    public sealed class ScoreRow
    {
        public float[] Score { get; set; } = [];
    }

    [TestMethod]
    public void GreyImagesGiveThreeEqualChannelsAndOneChannelIsLuma()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 3, 0, grey: true).Concat(ImageFixtures.Write(dir.Path, 0, 0)).ToList();
        var data = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        var rgb = ImageColumn.Create(data.Schema, "Image", 3, "FeatureColumnName");
        var grey = ImageColumn.Create(data.Schema, "Image", 1, "FeatureColumnName");
        using var cursor = data.GetRowCursor(data.Schema);
        var readRgb = rgb.Bind(cursor);
        var readGrey = grey.Bind(cursor);
        byte[] p3 = [], p1 = [];
        long row = 0;
        while (cursor.MoveNext())
        {
            var (h, w) = readRgb.Read(row, ref p3);
            var (h1, w1) = readGrey.Read(row, ref p1);
            Assert.AreEqual((h, w), (h1, w1));
            int plane = h * w;
            for (int i = 0; i < plane; i++)
            {
                Assert.AreEqual(p3[i], p3[plane + i], $"row {row} pixel {i}: a grey PNG must give R = G");
                Assert.AreEqual(p3[i], p3[2 * plane + i], $"row {row} pixel {i}: a grey PNG must give R = B");
                Assert.AreEqual(p3[i], p1[i], "one channel of a grey image is its value");
            }
            row++;
        }
        Assert.AreEqual(3, row);
        Assert.AreEqual(ImageColumn.Luma(200, 100, 50), (byte)Math.Round(0.299 * 200 + 0.587 * 100 + 0.114 * 50));
    }

    [TestMethod]
    public void WithoutAugmentationTrainingSeesExactlyTheInferencePixels()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 9, 9);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows);
        var spec = new ImageInputSpec(new InputImageShape(3, 16, 16), 19, ImageAugmentation.None);
        var input = FeatureInput.Image("Image", spec);
        var label = LabelInfo.FromSchema(data.Schema, "Label");
        var columns = TrainingColumns.ForScoring(label, input);
        var image = ImageColumn.Create(data.Schema, "Image", 3, "FeatureColumnName");
        var builder = new SampleStoreBuilder(columns, image, 19, TeacherOutputKind.Logits, Training.FitCancellation.None, _ => { }, _ => { });
        using var store = builder.Build(data, null);
        var set = TrainingSet.FromStore(store, input.Size, 3, Training.FitCancellation.None);
        var sampler = new Training.Augmentation.ImageSampler(ImageAugmentation.None, 3, 19, spec.Crop, seed: 1);
        var reader = new Training.Batches.TrainingRows(set, sampler).CreateReader();
        var inference = TrainingSet.ReadLabeledOnly(data, columns, Training.FitCancellation.None);
        var sample = new float[input.Size];
        for (int r = 0; r < 18; r++)
        {
            reader.Write(r, epoch: 1 + r % 3, sample, []);
            CollectionAssert.AreEqual(inference.Features.AsSpan(r * input.Size, input.Size).ToArray(), sample, $"row {r}");
        }
        string folder = Path.GetDirectoryName(store.Path)!;
        store.Dispose();
        Assert.IsFalse(Directory.Exists(folder), "a temporary store's folder goes with it");
    }

    [TestMethod]
    public void AStoreFolderIsReusedByFingerprintAndADamagedStoreIsRebuilt()
    {
        using var dir = new TempDir();
        using var storeDir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 12, 24);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        var log = new List<string>();
        var ml = new MLContext(seed: 1);
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var o = ImageFixtures.Options(epochs: 1);
        o.ImageStoreFolder = storeDir.Path;
        using var first = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        var stores = Directory.GetFiles(storeDir.Path);
        Assert.AreEqual(1, stores.Length, string.Join(", ", stores));
        Assert.IsTrue(log.Any(m => m.Contains("wrote sample store")));

        log.Clear();
        using var second = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        Assert.IsTrue(log.Any(m => m.Contains("reusing sample store")), "the same rows and settings reuse the store");
        CollectionAssert.AreEqual(SyntheticData.Weights(first), SyntheticData.Weights(second));

        // Another storage size is another store (settings are in the fingerprint).
        var bigger = ImageFixtures.Options(epochs: 1);
        bigger.ImageStoreFolder = storeDir.Path;
        bigger.ImageStorageSize = 24;
        using (ml.MulticlassClassification.Trainers.DualHeadDistill(bigger).Fit(data)) { }
        Assert.AreEqual(2, Directory.GetFiles(storeDir.Path).Length);

        // One flipped byte in a record: refused, rebuilt with one warning, same weights.
        using (var f = File.Open(stores[0], FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = SampleStore.HeaderSize + 100;
            int b = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(b ^ 0x10));
        }
        log.Clear();
        using var third = ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        Assert.AreEqual(1, log.Count(m => m.Contains("is not usable") && m.Contains("damaged")), string.Join("\n", log.Where(m => m.Contains("store"))));
        Assert.IsTrue(log.Any(m => m.Contains("wrote sample store")));
        CollectionAssert.AreEqual(SyntheticData.Weights(first), SyntheticData.Weights(third));

        // A truncated file too.
        using (var f = File.Open(stores[0], FileMode.Open, FileAccess.ReadWrite)) f.SetLength(f.Length - 7);
        log.Clear();
        using (ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data)) { }
        Assert.AreEqual(1, log.Count(m => m.Contains("is not usable") && m.Contains("truncated")));
        Assert.AreEqual(0, Directory.GetFiles(storeDir.Path, "*.partial").Length);
    }

    [TestMethod]
    public void AFullDiskIsAClearErrorAndLeavesNothingBehind()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 12, 24);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows);
        string mount = Path.Combine(Path.GetTempPath(), "dualhead-tiny-disk-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(mount);
        // A 64 KiB disk: the store needs 36 rows x (3*64*64 + 16) bytes = 443 KB.
        var mounted = Process.Start("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mount])!;
        mounted.WaitForExit();
        Assert.AreEqual(0, mounted.ExitCode, "this test mounts a 64 KiB tmpfs as a full disk: it needs root (CI runs as root)");
        try
        {
            var o = ImageFixtures.Options(epochs: 1);
            o.ImageShape = [3, 64, 64];
            o.ImageStorageSize = 64;
            o.ImageStoreFolder = mount;
            var e = Assert.ThrowsExactly<IOException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data));
            StringAssert.Contains(e.Message, "disk is full");
            StringAssert.Contains(e.Message, mount);
            StringAssert.Contains(e.Message, "Nothing was left behind");
            Assert.AreEqual(0, Directory.GetFileSystemEntries(mount).Length, string.Join(", ", Directory.GetFileSystemEntries(mount)));
        }
        finally
        {
            Process.Start("umount", [mount])!.WaitForExit();
            Directory.Delete(mount);
        }
    }

    /// <summary>A row that runs a callback whenever its image path is read (i.e. when a pass reads its image).</summary>
    public sealed class TriggerRow
    {
        internal Action? OnRead;
        private string _path = "";
        public string Label { get; set; } = "";
        public string Path { get { OnRead?.Invoke(); return _path; } set => _path = value; }
        [VectorType(ImageFixtures.K)] public float[] TeacherLogits { get; set; } = [];
    }

    [TestMethod]
    public void CancellingWhileTheStoreIsWrittenLeavesNothingBehind()
    {
        using var dir = new TempDir();
        using var storeDir = new TempDir();
        int reads = 0;
        using var cts = new CancellationTokenSource();
        int cancelAt = int.MaxValue;
        var rows = ImageFixtures.Write(dir.Path, 12, 24).Select(r => new TriggerRow { Label = r.Label, Path = r.Path, TeacherLogits = r.TeacherLogits }).ToList();
        foreach (var r in rows) r.OnRead = () => { if (Interlocked.Increment(ref reads) == cancelAt) cts.Cancel(); };
        var data = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        string[] Temporary() => Directory.GetDirectories(Path.GetTempPath(), "dualhead-store-*");
        var before = Temporary();

        // Default (temporary) store: cancelled at the 10th image of the store pass.
        var o = ImageFixtures.Options(epochs: 1);
        o.CancellationToken = cts.Token;
        cancelAt = 10;
        Assert.ThrowsExactly<OperationCanceledException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data));
        CollectionAssert.AreEquivalent(before, Temporary(), "the temporary store folder must go");

        // A store folder: past the fingerprint pass (36 images), cancelled at the 10th image of the store pass.
        using var cts2 = new CancellationTokenSource();
        var o2 = ImageFixtures.Options(epochs: 1);
        o2.ImageStoreFolder = storeDir.Path;
        o2.CancellationToken = cts2.Token;
        reads = 0;
        cancelAt = int.MaxValue;
        foreach (var r in rows) r.OnRead = () => { if (Interlocked.Increment(ref reads) == 36 + 10) cts2.Cancel(); };
        Assert.ThrowsExactly<OperationCanceledException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(o2).Fit(data));
        Assert.IsTrue(reads >= 46, $"{reads} reads: the store pass had begun");
        Assert.AreEqual(0, Directory.GetFileSystemEntries(storeDir.Path).Length, string.Join(", ", Directory.GetFileSystemEntries(storeDir.Path)));
    }

    [TestMethod]
    public void BadImageInputIsAClearError()
    {
        using var dir = new TempDir();
        var rows = ImageFixtures.Write(dir.Path, 6, 6);
        File.WriteAllBytes(Path.Combine(dir.Path, rows[4].Path), [1, 2, 3, 4, 5]);
        var data = ImageFixtures.Load(s_ml, dir.Path, rows, encoded: true);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(ImageFixtures.Options(epochs: 1)).Fit(data));
        StringAssert.Contains(e.Message, "Row 4 of image column 'Image'");

        var noShape = ImageFixtures.Options();
        noShape.ImageShape = null;
        var e2 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(noShape).Fit(data));
        Assert.AreEqual("ImageShape", e2.ParamName);

        var small = ImageFixtures.Options();
        small.ImageStorageSize = 12;
        var e3 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(small).Fit(data));
        Assert.AreEqual("ImageStorageSize", e3.ParamName);

        var badCrop = ImageFixtures.Options();
        badCrop.Augmentation = ImageAugmentation.Default with { MinScale = 0 };
        var e4 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(badCrop));
        Assert.AreEqual("Augmentation", e4.ParamName);
    }
}

internal static class DataViewTestExtensions
{
    /// <summary>The first <paramref name="rows"/> rows.</summary>
    public static IDataView Filter(this IDataView data, MLContext ml, int rows) => ml.Data.TakeRows(data, rows);
}
