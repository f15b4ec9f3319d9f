using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Fit, scoring and Dispose leave no native tensor alive.</summary>
[TestClass]
public sealed class NativeMemoryTests
{
    private static long LiveTensors() => DisposalTests.LiveTensors();

    [TestMethod]
    public void FitScoreAndDisposeLeaveNoLiveTensors()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 120));
        var validation = SyntheticData.Load(ml, SyntheticData.Rows(30, 0, seed: 4));
        // Warm up once so lazily created TorchSharp singletons do not count.
        ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data).Dispose();

        long before = LiveTensors();
        var options = SyntheticData.MlpOptions(epochs: 2);
        options.ValidationData = validation;
        var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data);
        long afterFit = LiveTensors();
        _ = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        var engine = ml.Model.CreatePredictionEngine<SyntheticData.Row, Scored>(model);
        engine.Predict(SyntheticData.Rows(1, 0)[0]);
        long afterScoring = LiveTensors();
        model.Dispose();
        long afterDispose = LiveTensors();

        Console.WriteLine($"live tensors: before {before}, after Fit {afterFit}, after scoring {afterScoring}, after Dispose {afterDispose}");
        Assert.AreEqual(afterFit, afterScoring, "scoring must dispose every tensor it creates");
        Assert.AreEqual(before, afterDispose, "Fit must not leave tensors behind once the model is disposed");
        Assert.IsTrue(afterFit > before, "the fitted model holds its parameters");
    }

    private sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }
}
