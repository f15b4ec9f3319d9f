using Microsoft.ML.DualHeadDistillation.Training;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The report's per-step curve: bounded, every step counted once, bucket means exact, continued on resume.</summary>
[TestClass]
public sealed class StepCurveTests
{
    [TestMethod]
    public void ALongRunKeepsAtMost512PointsWhoseMeansAreTheStepsMeans()
    {
        var curve = new StepCurve();
        for (int s = 1; s <= 5000; s++) curve.Add(s, ce: s, kd: 2 * s, total: 3 * s, learningRate: 1e-3);
        var points = curve.Points;
        Assert.IsTrue(points.Count <= StepCurve.MaxPoints && points.Count > StepCurve.MaxPoints / 4, $"{points.Count} points");
        Assert.AreEqual(5000, points.Sum(p => p.Steps), "every step once");
        Assert.AreEqual(5000, points[^1].Step);
        int first = 1;
        foreach (var p in points)
        {
            Assert.AreEqual((first + p.Step) / 2.0, p.CeLoss, 1e-9, "the mean of steps first..last");
            Assert.AreEqual(2 * p.CeLoss, p.KdLoss, 1e-9);
            Assert.AreEqual(1e-3, p.LearningRate, 1e-12);
            first = p.Step + 1;
        }
    }

    [TestMethod]
    public void AShortRunHasOnePointPerStepAndAResumedOneContinuesTheCurve()
    {
        var curve = new StepCurve();
        for (int s = 1; s <= 30; s++) curve.Add(s, 1, double.NaN, 1, 0.5);
        Assert.AreEqual(30, curve.Points.Count);
        Assert.IsTrue(double.IsNaN(curve.Points[0].KdLoss), "no KD term stays NaN");
        var resumed = new StepCurve(curve.Points);
        resumed.Add(31, 2, double.NaN, 2, 0.25);
        Assert.AreEqual(31, resumed.Points.Count);
        Assert.AreEqual((31, 2.0), (resumed.Points[^1].Step, resumed.Points[^1].CeLoss));
    }
}
