using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

[TestClass]
public sealed class HeadCombinerTests
{
    [TestMethod]
    public void CombinesSoftmaxOfCeWithTemperedSoftmaxOfKd()
    {
        float[] ce = [1f, 2f, 0f], kd = [0.5f, -1f, 2f];
        var pCe = new float[3]; var pKd = new float[3]; var p = new float[3];
        int pred = HeadCombiner.Combine(ce, kd, 0.3f, 0.5f, pCe, pKd, p);

        double[] Soft(float[] z, double t) { var e = z.Select(v => Math.Exp(v / t)).ToArray(); return e.Select(v => v / e.Sum()).ToArray(); }
        var hCe = Soft(ce, 1); var hKd = Soft(kd, 0.5);
        for (int k = 0; k < 3; k++)
        {
            Assert.AreEqual(hCe[k], pCe[k], 1e-6);
            Assert.AreEqual(hKd[k], pKd[k], 1e-6);
            Assert.AreEqual(0.3 * hCe[k] + 0.7 * hKd[k], p[k], 1e-6);
        }
        Assert.AreEqual(Array.IndexOf(p, p.Max()), pred);
        Assert.AreEqual(1.0, p.Sum(), 1e-6);
    }

    [TestMethod]
    public void AlphaOneIsTheCeHeadAndAlphaZeroTheKdHead()
    {
        float[] ce = [3f, 0f], kd = [0f, 3f];
        var a = new float[2]; var b = new float[2]; var p = new float[2];
        Assert.AreEqual(0, HeadCombiner.Combine(ce, kd, 1f, 1f, a, b, p));
        CollectionAssert.AreEqual(a, p);
        Assert.AreEqual(1, HeadCombiner.Combine(ce, kd, 0f, 1f, a, b, p));
        CollectionAssert.AreEqual(b, p);
    }

    [TestMethod]
    public void SoftmaxIsStableForLargeLogits()
    {
        var p = new float[2];
        HeadCombiner.Softmax([1000f, 999f], 1f, p);
        Assert.AreEqual(1 / (1 + Math.Exp(-1)), p[0], 1e-6);
    }

    [TestMethod]
    public void ScheduleWarmsUpLinearlyThenDecaysByCosine()
    {
        Assert.AreEqual(0.25, LearningRateSchedule.At(0, 100, 4, 1.0), 1e-12);
        Assert.AreEqual(1.0, LearningRateSchedule.At(3, 100, 4, 1.0), 1e-12);
        Assert.AreEqual(1.0, LearningRateSchedule.At(4, 100, 4, 1.0), 1e-12);
        Assert.AreEqual(0.5, LearningRateSchedule.At(52, 100, 4, 1.0), 1e-12);
        Assert.AreEqual(1e-3, LearningRateSchedule.At(0, 10, 0, 1e-3), 1e-15);
        Assert.AreEqual(0.5 * 1e-3 * (1 + Math.Cos(Math.PI * 0.9)), LearningRateSchedule.At(9, 10, 0, 1e-3), 1e-15);
    }
}
