using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Issue 9, point 8: NaN or infinite features give a NaN Score and no class (the missing key), everywhere.</summary>
[TestClass]
public sealed class NonFiniteScoringTests
{
    [TestMethod]
    public void NonFiniteFeaturesPredictTheMissingKeyInProcessAfterReloadAndInOnnx()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var train = SyntheticData.Load(ml, SyntheticData.Rows(30, 60));
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(train);
        var rows = SyntheticData.Rows(6, 0, seed: 3);
        rows[1].Features[2] = float.NaN;
        rows[3].Features[0] = float.PositiveInfinity;
        rows[4].Features[5] = float.NegativeInfinity;
        var data = SyntheticData.Load(ml, rows);
        var bad = new[] { 1, 3, 4 };

        void Check(string where, float[][] scores, uint[] keys)
        {
            for (int i = 0; i < rows.Count; i++)
            {
                if (bad.Contains(i))
                {
                    Assert.IsTrue(scores[i].All(float.IsNaN), $"{where}, row {i}: Score [{string.Join(", ", scores[i])}]");
                    Assert.AreEqual(0u, keys[i], $"{where}, row {i}: a NaN Score must predict the missing key");
                }
                else
                {
                    Assert.IsTrue(scores[i].All(float.IsFinite), $"{where}, row {i}");
                    Assert.AreEqual(scores[i].ToList().IndexOf(scores[i].Max()) + 1, (int)keys[i], $"{where}, row {i}");
                }
            }
        }
        var scored = model.Transform(data);
        Check("Transform", scored.GetColumn<float[]>("Score").ToArray(), scored.GetColumn<uint>("PredictedLabel").ToArray());
        var engine = ml.Model.CreatePredictionEngine<SyntheticData.Row, DisposalTests.Scored>(model, new PredictionEngineOptions { OwnsTransformer = false });
        var one = rows.Select(engine.Predict).ToArray();
        Check("PredictionEngine", one.Select(p => p.Score).ToArray(), one.Select(p => p.PredictedLabel).ToArray());

        string zip = Path.Combine(dir.Path, "model.zip");
        DualHeadModel.Save(ml, model, train.Schema, zip);
        var reloaded = DualHeadModel.Load(new MLContext(), zip, out _).Transform(data);
        Check("reloaded", reloaded.GetColumn<float[]>("Score").ToArray(), reloaded.GetColumn<uint>("PredictedLabel").ToArray());
        var plain = new MLContext().Model.Load(zip, out _).Transform(data);
        Check("mlContext.Model.Load", plain.GetColumn<float[]>("Score").ToArray(), plain.GetColumn<uint>("PredictedLabel").ToArray());

        // The standalone ONNX graph: index -1 and an empty class name.
        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(stream.ToArray());
        var x = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(rows.SelectMany(r => r.Features).ToArray(), [rows.Count, SyntheticData.D]);
        using var results = session.Run([Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("Features", x)]);
        var index = results.Single(r => r.Name == "PredictedLabelIndex").AsEnumerable<long>().ToArray();
        var names = results.Single(r => r.Name == "PredictedClassName").AsEnumerable<string>().ToArray();
        foreach (int i in bad)
        {
            Assert.AreEqual(-1L, index[i]);
            Assert.AreEqual("", names[i]);
        }
        Assert.AreEqual(SyntheticData.ClassNames[index[0]], names[0]);
    }
}
