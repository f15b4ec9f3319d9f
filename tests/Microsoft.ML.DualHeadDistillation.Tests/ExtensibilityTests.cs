using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training.Batches;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>A backbone defined outside the library: Linear, BatchNorm1d, a residual block, with a width setting.</summary>
public sealed class ResidualMlpBackbone : StudentBackbone
{
    private readonly nn.Module<Tensor, Tensor> layers;

    public ResidualMlpBackbone(BackboneSpec spec) : base(spec)
    {
        int width = spec.Settings.GetInt("width", 24);
        layers = nn.Sequential(
            ("stem", nn.Linear(spec.InputSize, width)),
            ("bn", nn.BatchNorm1d(width)),
            ("relu", nn.ReLU()),
            ("block", new Residual(nn.Sequential(("fc", nn.Linear(width, width)), ("bn", nn.BatchNorm1d(width)), ("relu", nn.ReLU()), ("fc2", nn.Linear(width, width))))),
            ("relu2", nn.ReLU()),
            ("embed", nn.Linear(width, spec.EmbeddingSize)),
            ("relu3", nn.ReLU()));
        RegisterComponents();
    }

    public override string Description => "residual MLP with batch norm (test)";
    public override Tensor forward(Tensor input) => layers.forward(input);
    public override OnnxValue ExportOnnx(OnnxExportContext context, OnnxValue input) => context.Export(layers, "backbone", input);

    protected override void Dispose(bool disposing)
    {
        if (disposing) layers.Dispose();
        base.Dispose(disposing);
    }
}

public sealed class ResidualMlpDefinition : BackboneDefinition
{
    public override string Name => "TestResidualMlp";
    public override string Summary => "A residual MLP with batch norm, registered by the tests.";
    public override StudentBackbone Create(BackboneSpec spec) => new ResidualMlpBackbone(spec);
}

/// <summary>An objective defined outside the library: one head trained on the teacher alone (KD on every row).</summary>
public sealed class KdOnlyObjective : TrainingObjective
{
    public override string Name => "TestKdOnly";
    public override string Summary => "One head, KD on every row, no labels.";
    public override int Heads => 1;
    public override string Describe(ObjectiveSpec spec) => $"L = KD(h, all rows), {DhoLoss.DescribeKd(spec.Temperature)}";
    public override ObjectiveLoss Compute(ObjectiveInputs inputs, ObjectiveSpec spec)
    {
        var kd = DhoLoss.Distillation(inputs.KdLogits, inputs.RequireTeacher(Name), spec.Temperature);
        return new ObjectiveLoss(kd, null, kd);
    }
}

/// <summary>A batch source defined outside the library: the labeled rows only, in fixed order, one batch per epoch.</summary>
public sealed class WholeLabeledSetSource : BatchSourceDefinition
{
    public override string Name => "TestWholeLabeledSet";
    public override string Summary => "Every labeled row in one batch per epoch.";
    public override BatchSource Create(BatchSourceContext context) => new Source(context);

    private sealed class Source(BatchSourceContext c) : BatchSource
    {
        public int Epochs { get; private set; }
        public override int StepsPerEpoch => 1;
        public override IEnumerable<TrainingBatch> NextEpoch()
        {
            var rows = c.Rows;
            int d = rows.FeatureSize, k = rows.ClassCount, n = rows.LabeledRows;
            var x = new float[n * d];
            var t = c.WithTeacher ? new float[n * k] : [];
            var y = new long[n];
            for (int i = 0; i < n; i++)
            {
                int r = rows.LabeledIndices[i];
                rows.Features(r).CopyTo(x.AsSpan(i * d, d));
                if (c.WithTeacher) rows.Teacher(r).CopyTo(t.AsSpan(i * k, k));
                y[i] = rows.Label(r);
            }
            Epochs++;
            yield return new TrainingBatch(x, t, y, n);
        }
    }
}

[TestClass]
public sealed class ExtensibilityTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    [ClassInitialize]
    public static void Register(TestContext _)
    {
        DualHeadRegistry.Backbones.Register(new ResidualMlpDefinition());
        DualHeadRegistry.Objectives.Register(new KdOnlyObjective());
        DualHeadRegistry.BatchSources.Register(new WholeLabeledSetSource());
    }

    private static DualHeadDistillOptions ResidualOptions(int epochs = 6)
    {
        var o = SyntheticData.MlpOptions(epochs);
        o.LearningRate = 3e-3f;
        o.Backbone = "TestResidualMlp";
        o.BackboneSettings = new() { ["width"] = "20" };
        return o;
    }

    [TestMethod]
    public void RegistriesListTheBuiltInComponentsAndRejectUnknownNames()
    {
        CollectionAssert.IsSubsetOf(new[] { "Mlp", "SmallCnn" }, DualHeadRegistry.Backbones.Names.ToArray());
        CollectionAssert.IsSubsetOf(new[] { "DualHead", "SingleHeadKd", "SupervisedOnly" }, DualHeadRegistry.Objectives.Names.ToArray());
        CollectionAssert.Contains(DualHeadRegistry.BatchSources.Names.ToArray(), "Paired");
        Assert.IsTrue(DualHeadRegistry.Backbones.All.All(b => b.Summary.Length > 10));

        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 30));
        var o = SyntheticData.MlpOptions();
        o.Backbone = "NoSuchNet";
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data));
        Assert.AreEqual("Backbone", e.ParamName);
        StringAssert.Contains(e.Message, "No backbone named 'NoSuchNet'");
        StringAssert.Contains(e.Message, "SmallCnn");
        o = SyntheticData.MlpOptions();
        o.Objective = "NoSuchObjective";
        Assert.AreEqual("Objective", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data)).ParamName);

        // The same definition type again is a no-op; another type under a taken name is an error.
        DualHeadRegistry.Backbones.Register(new ResidualMlpDefinition());
        var taken = Assert.ThrowsExactly<ArgumentException>(() => DualHeadRegistry.Backbones.Register(new RenamedMlp()));
        StringAssert.Contains(taken.Message, "'mlp' is already registered (Microsoft.ML.DualHeadDistillation.Students.MlpBackboneDefinition)");
    }

    private sealed class RenamedMlp : BackboneDefinition
    {
        public override string Name => "mlp"; // names are case-insensitive
        public override string Summary => "clash";
        public override StudentBackbone Create(BackboneSpec spec) => throw new NotSupportedException();
    }

    [TestMethod]
    public void AUserBackboneTrainsSavesLoadsResumesAndExports()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(60, 120));
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(ResidualOptions()).Fit(data);
        Assert.AreEqual("TestResidualMlp", model.Spec.Student.Backbone.Name);
        Assert.AreEqual("20", model.Spec.Student.Backbone.Settings["width"]);
        StringAssert.Contains(model.TrainingReport.Student, "residual MLP with batch norm");
        double accuracy = s_ml.MulticlassClassification.Evaluate(model.Transform(data)).MicroAccuracy;
        Assert.IsTrue(accuracy > 0.8, $"accuracy {accuracy}");

        // ML.NET save/load: the loaded model needs neither the backbone class nor TorchSharp, and scores the same.
        using var dir = new TempDir();
        string zip = Path.Combine(dir.Path, "model.zip");
        DualHeadModel.Save(s_ml, model, data.Schema, zip);
        var loaded = DualHeadModel.Load(new MLContext(), zip, out _);
        var before = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        var after = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i]);

        // Plain ONNX Runtime on the exported file equals TorchSharp's forward pass (batch norm in eval mode, residual Add).
        string onnx = Path.Combine(dir.Path, "student.onnx");
        model.ExportToOnnx(onnx);
        AssertOnnxMatchesTorchSharp(model, onnx, data);

        // The model's own checkpoint holds the spec, and turns back into the same model.
        string ckpt = Path.Combine(dir.Path, "run.ckpt");
        model.SaveCheckpoint(ckpt);
        Assert.AreEqual(model.Spec, DualHeadCheckpoint.Load(ckpt).Spec);
        using (var restored = DualHeadCheckpoint.Load(ckpt).ToModel())
            CollectionAssert.AreEqual(before[0], restored.Transform(data).GetColumn<float[]>("Score").First());

        // A run interrupted after epoch 3 of 6 and resumed ends with the uninterrupted run's weights and batch-norm statistics.
        var straightOptions = ResidualOptions();
        string perEpoch = Path.Combine(dir.Path, "per-epoch.ckpt"), afterThree = Path.Combine(dir.Path, "after-3.ckpt");
        straightOptions.CheckpointPath = perEpoch;
        straightOptions.Progress = new SyncProgress(r => { if (r.Epoch == 4) File.Copy(perEpoch, afterThree); }); // the file still holds epoch 3
        using var straight = s_ml.MulticlassClassification.Trainers.DualHeadDistill(straightOptions).Fit(data);
        var checkpoint = DualHeadCheckpoint.Load(afterThree);
        Assert.AreEqual(3, checkpoint.CompletedEpochs);
        using var resumed = s_ml.MulticlassClassification.Trainers.DualHeadDistill(ResidualOptions()).Fit(data, checkpoint);
        CollectionAssert.AreEqual(SyntheticData.Weights(straight), SyntheticData.Weights(resumed));
        CollectionAssert.AreEqual(Buffers(straight), Buffers(resumed), "batch norm running statistics resume too");
        CollectionAssert.AreEqual(SyntheticData.Weights(model), SyntheticData.Weights(straight), "checkpointing does not change training");
    }

    private sealed class SyncProgress(Action<DualHeadEpochReport> action) : IProgress<DualHeadEpochReport>
    {
        public void Report(DualHeadEpochReport value) => action(value);
    }

    private static float[] Buffers(DualHeadDistillTransformer m) =>
        m.Student.named_buffers().Where(b => b.buffer.dtype == ScalarType.Float32).SelectMany(b => b.buffer.data<float>().ToArray()).ToArray();

    internal static void AssertOnnxMatchesTorchSharp(DualHeadDistillTransformer model, string onnxPath, IDataView data, float tolerance = 1e-5f)
    {
        var features = data.GetColumn<float[]>(model.FeatureColumnName).ToArray();
        int n = features.Length, d = features[0].Length, k = model.ClassNames.Count;
        var x = features.SelectMany(f => f).ToArray();
        using var session = new InferenceSession(onnxPath);
        using var input = OrtValue.CreateTensorValueFromMemory(x, [n, d]);
        using var outputs = session.Run(new RunOptions(), [model.FeatureColumnName], [input], [DualHeadColumns.CeHeadProbabilities, DualHeadColumns.KdHeadProbabilities]);
        var onnxCe = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        var onnxKd = outputs[1].GetTensorDataAsSpan<float>().ToArray();
        var (ce, kd) = model.Scorer.ScoreAll(x, n, 64);
        var p = new float[k];
        for (int i = 0; i < n; i++)
        {
            Inference.HeadCombiner.Softmax(ce.AsSpan(i * k, k), 1, p);
            for (int j = 0; j < k; j++) Assert.AreEqual(p[j], onnxCe[i * k + j], tolerance, $"CE row {i} class {j}");
            Inference.HeadCombiner.Softmax(kd.AsSpan(i * k, k), model.Beta, p);
            for (int j = 0; j < k; j++) Assert.AreEqual(p[j], onnxKd[i * k + j], tolerance, $"KD row {i} class {j}");
        }
    }

    [TestMethod]
    public void AUserObjectiveTrains()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 150));
        var o = SyntheticData.MlpOptions(epochs: 8);
        o.LearningRate = 3e-3f;
        o.Objective = "TestKdOnly";
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        Assert.AreEqual("TestKdOnly", model.Objective.Name);
        Assert.IsFalse(model.Student.HasTwoHeads);
        StringAssert.StartsWith(model.TrainingReport.Objective, "L = KD(h, all rows), KD = batchmean KL");
        var epochs = model.TrainingReport.Epochs;
        Assert.IsTrue(epochs.All(e => double.IsNaN(e.CeLoss) && e.KdLoss > 0), "no CE term, a KD term");
        Assert.IsTrue(epochs[^1].KdLoss < epochs[0].KdLoss, $"KD fell: {epochs[0].KdLoss} -> {epochs[^1].KdLoss}");
        // The teacher points at the right class, so a student of the teacher alone learns the classes.
        double accuracy = s_ml.MulticlassClassification.Evaluate(model.Transform(data)).MicroAccuracy;
        Assert.IsTrue(accuracy > 0.8, $"accuracy {accuracy}");
    }

    [TestMethod]
    public void AUserBatchSourceFeedsTheLoop()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 150));
        var o = SyntheticData.MlpOptions(epochs: 4);
        o.BatchSource = "TestWholeLabeledSet";
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data);
        Assert.AreEqual(4, model.TrainingReport.TotalSteps);
        Assert.IsTrue(model.TrainingReport.Epochs.All(e => e.Steps == 1));
        Assert.AreEqual("TestWholeLabeledSet", model.Spec.Batches.Source);
    }

    [TestMethod]
    public void ResumeRefusesADifferentSpecAndNamesTheField()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(30, 60));
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        var checkpoint = model.ToCheckpoint();
        void Refused(Action<DualHeadDistillOptions> change, string option, string field)
        {
            var o = SyntheticData.MlpOptions(epochs: 2);
            change(o);
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(o).Fit(data, checkpoint), field);
            Assert.AreEqual(option, e.ParamName, e.Message);
            StringAssert.Contains(e.Message, $"trained with {field} = ");
        }
        Refused(o => o.EmbeddingSize = 20, "EmbeddingSize", "Student.Backbone.EmbeddingSize");
        Refused(o => o.MlpHiddenLayers = [32, 8], "BackboneSettings", "Student.Backbone.Settings.hidden_layers");
        Refused(o => o.Objective = DualHeadTrainingMode.SingleHeadKd, "Objective", "Student.Heads");
        Refused(o => o.InputNormalization = DualHeadInputNormalization.None, "InputNormalization", "Student.InputNormalization");
        Refused(o => o.Lambda = 0.25f, "Lambda", "Objective.Lambda");
        Refused(o => o.LabeledBatchSize = 4, "LabeledBatchSize", "Batches.LabeledBatchSize");
        Refused(o => o.LearningRate = 2e-3f, "LearningRate", "Optimizer.LearningRate");
        // More epochs alone is fine.
        using var resumed = s_ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 2)).Fit(data, checkpoint);
        Assert.AreEqual(2, resumed.TrainingReport.Epochs.Count);
    }

    [TestMethod]
    public void SpecsAreValuesAndTheFirstDifferenceIsNamed()
    {
        var a = RunSpecs.Resolve(SyntheticData.MlpOptions(), SyntheticData.D, SyntheticData.K).Spec;
        var b = RunSpecs.Resolve(SyntheticData.MlpOptions(epochs: 9, seed: 99), SyntheticData.D, SyntheticData.K).Spec;
        Assert.AreEqual(a, b, "epochs and seed are not part of the spec");
        Assert.AreEqual(a.GetHashCode(), b.GetHashCode());
        Assert.IsNull(a.FirstDifference(b));
        var o = SyntheticData.MlpOptions();
        o.Temperature = 3;
        var diff = a.FirstDifference(RunSpecs.Resolve(o, SyntheticData.D, SyntheticData.K).Spec)!;
        Assert.AreEqual("Objective.Temperature", diff.Field);
        Assert.AreEqual("Temperature", diff.Option);
        Assert.AreEqual("2", diff.Left);
        Assert.AreEqual("3", diff.Right);
        // The spec round-trips through the checkpoint's JSON.
        var json = System.Text.Json.JsonSerializer.Serialize(a);
        Assert.AreEqual(a, System.Text.Json.JsonSerializer.Deserialize<TrainingSpec>(json));
    }
}
