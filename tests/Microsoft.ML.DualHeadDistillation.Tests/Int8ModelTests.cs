using Microsoft.ML.Data;
using DualHeadML.Samples;
using Microsoft.ML.DualHeadDistillation.Export.Quantization;
using System.Text.Json;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary><c>model.Quantize(calibration, validation)</c>: an ML.NET transformer on the int8 graph that saves and loads like any other, and scores without libtorch.</summary>
[TestClass]
public sealed class Int8ModelTests
{
    private static IDataView Validation()
    {
        var ml = DeploymentFixture.Ml;
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml)).Fit(DeploymentFixture.TestData).Transform(DeploymentFixture.TestData);
    }

    private static (float[][] Score, uint[] Keys) Scores(ITransformer model, IDataView data)
    {
        var scored = model.Transform(data);
        return (scored.GetColumn<float[]>("Score").ToArray(), scored.GetColumn<uint>("PredictedLabel").ToArray());
    }

    [TestMethod]
    public void TheQuantizedModelScoresWithTheInt8GraphAndSavesAndLoadsWithoutLibtorch()
    {
        var fp32 = DeploymentFixture.Model("SmallCnn").Student;
        using var int8 = fp32.Quantize(DeploymentFixture.TrainRows, Validation());
        Console.WriteLine($"check: fp32 {int8.Check.Fp32Accuracy:P2}, int8 {int8.Check.Int8Accuracy:P2}, agreement {int8.Check.Agreement:P1}");
        Assert.AreEqual(DeploymentFixture.TestRows, int8.Check.ValidationRows);
        Assert.IsTrue(int8.Check.AccuracyDrop <= 0.01 && int8.Check.Agreement >= 0.98, $"drop {int8.Check.AccuracyDrop}, agreement {int8.Check.Agreement}");

        // The same columns as the fp32 model; the classes agree on >= 98 % of the rows, the scores are not fp32's.
        var a = Scores(fp32, DeploymentFixture.TestData);
        var b = Scores(int8, DeploymentFixture.TestData);
        Assert.AreEqual(a.Keys.Length, b.Keys.Length);
        double agree = a.Keys.Zip(b.Keys).Count(p => p.First == p.Second) / (double)a.Keys.Length;
        Assert.IsTrue(agree >= 0.98, $"agreement in Transform {agree:P1}");
        Assert.IsTrue(a.Score.Zip(b.Score).Any(p => !p.First.SequenceEqual(p.Second)), "the int8 model gave fp32's scores exactly: it is not scoring the int8 graph");
        for (int i = 0; i < b.Score.Length; i++) Assert.AreEqual(1.0, b.Score[i].Sum(), 1e-4, $"row {i}: int8 Score is not a distribution");

        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "model.int8.zip");
        DualHeadModel.Save(DeploymentFixture.Ml, int8, DeploymentFixture.TrainRows.Schema, path);
        var info = DualHeadModel.Describe(path);
        Assert.AreEqual("int8", info.Precision);
        StringAssert.Contains(info.Int8Check, "agreement");
        StringAssert.Contains(info.Quantization, "per channel");
        string fp32Path = Path.Combine(dir.Path, "model.zip");
        DualHeadModel.Save(DeploymentFixture.Ml, fp32, DeploymentFixture.TrainRows.Schema, fp32Path);
        Assert.AreEqual("fp32", DualHeadModel.Describe(fp32Path).Precision);
        Assert.IsNull(DualHeadModel.Describe(fp32Path).Int8Check);
        Assert.IsTrue(new FileInfo(path).Length < 0.4 * new FileInfo(fp32Path).Length, $"int8 zip {new FileInfo(path).Length} bytes, fp32 {new FileInfo(fp32Path).Length}");

        // Loaded in this process and in a fresh one without TorchSharp's native library: the same scores as before saving.
        var loaded = DualHeadModel.Load(new MLContext(), path, out _);
        var c = Scores(loaded, DeploymentFixture.TestData);
        for (int i = 0; i < b.Score.Length; i++) CollectionAssert.AreEqual(b.Score[i], c.Score[i], $"row {i} after DualHeadModel.Load");
        var features = DeploymentFixture.TestFeatures.Take(64).ToArray();
        var (exit, output) = SaveLoadTests.RunDeployed(path, features, "--no-register");
        Assert.AreEqual(0, exit, output.ToString());
        Assert.IsFalse(output.GetProperty("torchNativeLoaded").GetBoolean(), "the child process loaded libtorch / LibTorchSharp");
        var child = output.GetProperty("scores").Deserialize<float[][]>()!;
        for (int i = 0; i < features.Length; i++) CollectionAssert.AreEqual(b.Score[i], child[i], $"row {i} in the child process");
    }

    [TestMethod]
    public void QuantizeRefusesASabotagedCalibrationAndNeedsInt8()
    {
        var model = DeploymentFixture.Model("SmallCnn").Student;
        var ml = DeploymentFixture.Ml;
        var blank = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 64).Select(_ => new BlankRow()));
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => model.Quantize(blank, Validation()));
        StringAssert.Contains(e.Message, "MaxAccuracyDrop");
        var none = Assert.ThrowsExactly<ArgumentException>(() => model.Quantize(new StudentExportOptions { CalibrationData = DeploymentFixture.TrainRows }));
        StringAssert.Contains(none.Message, "DualHeadQuantization.Int8");
    }

    private sealed class BlankRow
    {
        [Microsoft.ML.Data.VectorType(784)] public float[] Features { get; set; } = new float[784];
    }
}
