using System.Text.Json;
using DualHeadML.Samples;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.Transforms.Onnx;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// mlContext.Model.Save / Load of pipelines ending in the trainer's model: a fresh MLContext, a fresh
/// process without TorchSharp's native library, key values intact, and clear errors for broken files.
/// </summary>
[TestClass]
public sealed class SaveLoadTests
{
    private static (float[][] Score, uint[] Keys, string[] Names) Scores(MLContext ml, ITransformer model, IDataView data)
    {
        var scored = model.Transform(data);
        var named = ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel").Fit(scored).Transform(scored);
        return (named.GetColumn<float[]>("Score").ToArray(),
                named.GetColumn<uint>("PredictedLabel").ToArray(),
                named.GetColumn<ReadOnlyMemory<char>>("PredictedClass").Select(m => m.ToString()).ToArray());
    }

    private static string Save(TempDir dir, ITransformer model, DataViewSchema schema)
    {
        string path = Path.Combine(dir.Path, "model.zip");
        DeploymentFixture.Ml.Model.Save(model, schema, path);
        return path;
    }

    [TestMethod]
    [DataRow("Mlp")]
    [DataRow("SmallCnn")]
    [DataRow("ResNet18")]
    [DataRow("MobileNetV2")]
    [DataRow("MobileNetV3Small")]
    public void SavedPipelineLoadsInAFreshContextWithIdenticalScoresAndKeys(string backbone)
    {
        var (chain, student) = DeploymentFixture.Model(backbone);
        var test = DeploymentFixture.TestData;
        var before = Scores(DeploymentFixture.Ml, chain, test);
        using var dir = new TempDir();
        string path = Save(dir, chain, DeploymentFixture.TrainRows.Schema);

        var fresh = new MLContext(seed: 99);
        var loaded = fresh.Model.Load(path, out var inputSchema);
        Assert.IsNotNull(inputSchema.GetColumnOrNull("Features"));
        var after = Scores(fresh, loaded, test);

        Assert.AreEqual(before.Score.Length, after.Score.Length);
        for (int i = 0; i < before.Score.Length; i++)
            CollectionAssert.AreEqual(before.Score[i], after.Score[i], $"row {i}: Score differs after reload");
        CollectionAssert.AreEqual(before.Keys, after.Keys);
        CollectionAssert.AreEqual(before.Names, after.Names);
        Assert.IsTrue(after.Names.All(FashionMnist.ClassNames.Contains));

        // The schema a trainer gives: K-slot Score with class names, a scalar key PredictedLabel with key values.
        var schema = loaded.GetOutputSchema(inputSchema);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 10), schema["Score"].Type);
        Assert.AreEqual(new KeyDataViewType(typeof(uint), 10), schema["PredictedLabel"].Type);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        schema["Score"].GetSlotNames(ref slots);
        CollectionAssert.AreEqual(FashionMnist.ClassNames.ToArray(), slots.DenseValues().Select(s => s.ToString()).ToArray());
        foreach (var head in new[] { DualHeadColumns.CeHeadProbabilities, DualHeadColumns.KdHeadProbabilities })
            Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 10), schema[head].Type);
        Assert.AreEqual(1, schema.Count(c => !c.IsHidden && c.Name == "PredictedLabel"), "intermediate forms of PredictedLabel are hidden");

        // Evaluate agrees before and after, and the PredictionEngine agrees with Transform.
        var m1 = DeploymentFixture.Ml.MulticlassClassification.Evaluate(chain.Transform(test));
        var m2 = fresh.MulticlassClassification.Evaluate(loaded.Transform(test));
        Assert.AreEqual(m1.MicroAccuracy, m2.MicroAccuracy);
        Assert.AreEqual(m1.LogLoss, m2.LogLoss);
        var engine = fresh.Model.CreatePredictionEngine<ImageRow, ScoreRow>(loaded);
        var first = test.Preview(1);
        var row = DeploymentFixture.TestFeatures[0];
        CollectionAssert.AreEqual(before.Score[0], engine.Predict(new ImageRow { Label = "", Features = row }).Score);
        Console.WriteLine($"{backbone}: {before.Score.Length} rows identical after reload; accuracy {m2.MicroAccuracy:P2}; zip {new FileInfo(path).Length:N0} bytes; {student.TrainingReport.StudentParameters:N0} parameters, {student.TrainingReport.MeanStepMilliseconds:0} ms/step");
        _ = first;
    }

    public sealed class ScoreRow
    {
        public float[] Score { get; set; } = [];
        public uint PredictedLabel { get; set; }
    }

    [TestMethod]
    public void InProcessScoresDoNotDependOnTheBatchSize()
    {
        // What makes "identical after reload" possible: ML.NET's OnnxTransformer scores one row per call,
        // our Transform 256; ONNX Runtime's kernels give each row the same bits either way.
        var (_, student) = DeploymentFixture.Model(DualHeadBackbone.SmallCnn);
        var test = DeploymentFixture.TestData;
        var batched = student.Transform(DeploymentFixture.Ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(DeploymentFixture.Ml)).Fit(test).Transform(test))
            .GetColumn<float[]>("Score").ToArray();
        var engine = DeploymentFixture.Ml.Model.CreatePredictionEngine<ImageRow, ScoreRow>(student);
        for (int i = 0; i < 32; i++)
            CollectionAssert.AreEqual(batched[i], engine.Predict(new ImageRow { Label = "", Features = DeploymentFixture.TestFeatures[i] }).Score, $"row {i}");
    }

    [TestMethod]
    public void SavedModelIsMLNetsOwnOnnxTransformerHoldingTheExportedGraph()
    {
        var (_, student) = DeploymentFixture.Model(DualHeadBackbone.Mlp);
        using var dir = new TempDir();
        string path = Save(dir, student, DeploymentFixture.TrainRows.Schema);
        var fresh = new MLContext();
        DualHeadModel.Register(fresh);
        var loaded = fresh.Model.Load(path, out _);
        var transformers = Flatten(loaded).ToList();
        Assert.IsInstanceOfType<OnnxTransformer>(transformers[0]);
        Assert.IsFalse(transformers.Any(t => t is DualHeadDistillTransformer));
        using var zip = System.IO.Compression.ZipFile.OpenRead(path);
        Assert.IsTrue(zip.Entries.Any(e => e.FullName.EndsWith("OnnxModel", StringComparison.Ordinal)), string.Join(", ", zip.Entries.Select(e => e.FullName)));
    }

    private static IEnumerable<ITransformer> Flatten(ITransformer model) => model is IEnumerable<ITransformer> chain ? chain.SelectMany(Flatten) : [model];

    [TestMethod]
    public void SavedModelScoresIdenticallyInAFreshProcessWithoutTorchSharpsNativeLibrary()
    {
        var (chain, _) = DeploymentFixture.Model(DualHeadBackbone.SmallCnn);
        using var dir = new TempDir();
        string path = Save(dir, chain, DeploymentFixture.TrainRows.Schema);
        var features = DeploymentFixture.TestFeatures.Take(64).ToArray();
        var before = Scores(DeploymentFixture.Ml, chain, DeploymentFixture.Ml.Data.TakeRows(DeploymentFixture.TestData, 64));

        // No registration call: ML.NET stores the assembly name of the saved mapping and loads it itself.
        var (exit, output) = RunDeployed(path, features, "--no-register");
        Assert.AreEqual(0, exit, output.ToString());
        Assert.IsFalse(output.GetProperty("packageLoadedBeforeLoad").GetBoolean(), "the package was loaded before Model.Load");
        Assert.IsFalse(output.GetProperty("torchNativeLoaded").GetBoolean(), "the child process loaded libtorch / LibTorchSharp");
        Assert.IsTrue(output.GetProperty("onnxRuntimeLoaded").GetBoolean());
        var scores = output.GetProperty("scores").Deserialize<float[][]>()!;
        var engineScores = output.GetProperty("engineScores").Deserialize<float[][]>()!;
        var keys = output.GetProperty("keys").Deserialize<uint[]>()!;
        var names = output.GetProperty("names").Deserialize<string[]>()!;
        for (int i = 0; i < features.Length; i++)
        {
            CollectionAssert.AreEqual(before.Score[i], scores[i], $"row {i}: Transform in the child process");
            CollectionAssert.AreEqual(before.Score[i], engineScores[i], $"row {i}: PredictionEngine in the child process");
        }
        CollectionAssert.AreEqual(before.Keys, keys);
        CollectionAssert.AreEqual(before.Names, names);
        CollectionAssert.AreEqual(FashionMnist.ClassNames.ToArray(), output.GetProperty("slotNames").Deserialize<string[]>());
        Assert.AreEqual("Key<UInt32, 0-9>", output.GetProperty("predictedLabelType").GetString());
    }

    internal static (int Exit, JsonElement Output) RunDeployed(string modelPath, float[][] features, params string[] extra)
    {
        string runner = ChildProcess.BuiltProgram("DeployedModelRunner");
        string dir = Path.GetDirectoryName(modelPath)!;
        string input = Path.Combine(dir, "features.bin"), output = Path.Combine(dir, "output.json");
        using (var writer = new BinaryWriter(File.Create(input)))
        {
            writer.Write(features.Length);
            writer.Write(features[0].Length);
            foreach (var row in features) foreach (var v in row) writer.Write(v);
        }
        var (exit, _, stderr) = ChildProcess.Run(runner, new[] { modelPath, input, output }.Concat(extra), 120_000);
        Assert.IsTrue(File.Exists(output), $"the child process wrote no output (exit {exit}): {stderr}");
        return (exit, JsonDocument.Parse(File.ReadAllText(output)).RootElement.Clone());
    }

    [TestMethod]
    public void TruncatedOrCorruptedModelFilesGiveClearErrors()
    {
        var (_, student) = DeploymentFixture.Model(DualHeadBackbone.Mlp);
        using var dir = new TempDir();
        string path = Save(dir, student, DeploymentFixture.TrainRows.Schema);
        var bytes = File.ReadAllBytes(path);
        var ml = new MLContext();

        string truncated = Path.Combine(dir.Path, "truncated.zip");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadModel.Load(ml, truncated, out _));
        StringAssert.Contains(e.Message, truncated);
        StringAssert.Contains(e.Message, "truncated");

        string garbage = Path.Combine(dir.Path, "garbage.zip");
        File.WriteAllText(garbage, "this is not a model");
        e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadModel.Load(ml, garbage, out _));
        StringAssert.Contains(e.Message, garbage);

        // The ONNX graph inside the zip overwritten with zeros: the zip is intact, the model is not.
        string corrupt = Path.Combine(dir.Path, "corrupt.zip");
        File.Copy(path, corrupt);
        using (var zip = System.IO.Compression.ZipFile.Open(corrupt, System.IO.Compression.ZipArchiveMode.Update))
        {
            var entry = zip.Entries.First(x => x.FullName.EndsWith("OnnxModel", StringComparison.Ordinal));
            long length = entry.Length;
            string name = entry.FullName;
            entry.Delete();
            using var s = zip.CreateEntry(name).Open();
            var zeros = new byte[length];
            BitConverter.GetBytes((int)(length - 4)).CopyTo(zeros, 0);
            s.Write(zeros);
        }
        e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadModel.Load(ml, corrupt, out _));
        StringAssert.Contains(e.Message, corrupt);

        Assert.ThrowsExactly<FileNotFoundException>(() => DualHeadModel.Load(ml, Path.Combine(dir.Path, "missing.zip"), out _));
    }

    [TestMethod]
    public void TeacherTransformsAreLeftOutOfTheSavedModel()
    {
        // The mission's pipeline: teacher transform, then the trainer. The teacher is training-time only.
        var ml = DeploymentFixture.Ml;
        using var dir = new TempDir();
        var (_, student) = DeploymentFixture.Model(DualHeadBackbone.Mlp);
        string teacherPath = Path.Combine(dir.Path, "teacher.onnx");
        File.WriteAllBytes(teacherPath, DeploymentFixture.Teacher.Onnx);
        var teacher = ml.Transforms.TeacherSoftLabels(new Teachers.TeacherSoftLabelsOptions
        {
            InputColumnName = "Features",
            OutputColumnName = "TeacherLogits",
            ModelPath = teacherPath,
            ModelInputName = OnnxTeacher.InputName,
            ModelOutputName = OnnxTeacher.OutputName,
            ClassNames = FashionMnist.ClassNames,
        }).Fit(DeploymentFixture.TestData);
        var chain = new TransformerChain<ITransformer>(teacher, student);
        var before = chain.Transform(DeploymentFixture.TestData).GetColumn<float[]>("Score").ToArray();
        Assert.IsNotNull(chain.Transform(DeploymentFixture.TestData).Schema.GetColumnOrNull("TeacherLogits"));
        string path = Save(dir, chain, DeploymentFixture.TestData.Schema);

        var loaded = DualHeadModel.Load(new MLContext(), path, out _);
        var scored = loaded.Transform(DeploymentFixture.TestData);
        Assert.IsNull(scored.Schema.GetColumnOrNull("TeacherLogits"), "the teacher is not part of the deployed model");
        var after = scored.GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i]);
    }

    [TestMethod]
    [DataRow("SingleHeadKd")]
    [DataRow("SupervisedOnly")]
    public void SingleHeadModelsSaveAndLoadToo(string mode)
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(60, 120));
        var options = SyntheticData.MlpOptions(epochs: 1);
        options.Objective = mode;
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data);
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "model.zip");
        ml.Model.Save(model, data.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        var before = Scores(ml, model, data);
        var after = Scores(ml, loaded, data);
        for (int i = 0; i < before.Score.Length; i++) CollectionAssert.AreEqual(before.Score[i], after.Score[i]);
        CollectionAssert.AreEqual(before.Names, after.Names);
        Assert.IsTrue(before.Names.All(SyntheticData.ClassNames.Contains));
        // One head: Score and both head columns are that head's softmax.
        var ce = loaded.Transform(data).GetColumn<float[]>(DualHeadColumns.CeHeadProbabilities).ToArray();
        for (int i = 0; i < ce.Length; i++) CollectionAssert.AreEqual(ce[i], after.Score[i]);
    }

    [TestMethod]
    public void AModelWithOtherAlphaBetaScoresBesideAnOpenCursorAndLeavesItUnchanged()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(60, 600));
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data).WithAlphaBeta(0.5f, 0.5f);
        var expected = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        var scored = model.Transform(data);
        using var cursor = scored.GetRowCursor(scored.Schema);
        var getter = cursor.GetGetter<VBuffer<float>>(scored.Schema["Score"]);
        VBuffer<float> value = default;
        int row = 0;
        while (cursor.MoveNext())
        {
            getter(ref value);
            CollectionAssert.AreEqual(expected[row], value.DenseValues().ToArray(), $"row {row}");
            if (row % 100 == 0)
            {
                // Another model on the same student scores differently, then is disposed (releasing the shared student).
                using var other = model.WithAlphaBeta(row % 200 == 0 ? 0.2f : 0.8f, 2f);
                CollectionAssert.AreNotEqual(expected[0], other.Transform(data).GetColumn<float[]>("Score").First(), $"row {row}");
            }
            row++;
        }
        Assert.AreEqual(660, row);
        Assert.AreEqual(0.5f, model.Alpha);
        var again = model.Transform(data).GetColumn<float[]>("Score").First();
        CollectionAssert.AreEqual(expected[0], again);
    }

    [TestMethod]
    [DataRow("SmallCnn")]
    [DataRow("ResNet18")]
    [DataRow("MobileNetV3Small")]
    public void DeploySampleAgreesThreeWaysOnASavedAndExportedModel(string backboneName)
    {
        // samples/Deploy is the code docs/deploy.md quotes: Model.Load + Transform, a PredictionEngine, and plain
        // ONNX Runtime on the exported file. It exits non-zero when they disagree. The 3-channel students'
        // pipelines start with Concatenate(Features x 3); the sample replicates the grey image for plain ONNX Runtime.
        var (chain, student) = DeploymentFixture.Model(new DualHeadBackbone(backboneName));
        using var dir = new TempDir();
        string zip = Save(dir, chain, DeploymentFixture.TrainRows.Schema);
        string onnx = Path.Combine(dir.Path, "student.onnx");
        student.ExportToOnnx(onnx);
        var (exit, stdout, stderr) = ChildProcess.Run(ChildProcess.BuiltProgram("DeploySample"), [zip, onnx, "--rows", "300"]);
        Console.WriteLine(stdout);
        Assert.AreEqual(0, exit, stdout + stderr);
    }
}
