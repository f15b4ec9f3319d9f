using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

[TestClass]
public sealed class DhoLossTests
{
    // Hand computation in double precision, straight from the formulas.
    private static double[] Softmax(double[] z, double t)
    {
        double max = z.Max();
        var e = z.Select(v => Math.Exp((v - max) / t)).ToArray();
        double s = e.Sum();
        return e.Select(v => v / s).ToArray();
    }

    private static double HandCe(float[,] logits, long[] labels)
    {
        double sum = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            var row = Enumerable.Range(0, logits.GetLength(1)).Select(k => (double)logits[i, k]).ToArray();
            sum += -Math.Log(Softmax(row, 1)[labels[i]]);
        }
        return sum / labels.Length;
    }

    private static double HandKd(float[,] student, float[,] teacher, double t)
    {
        int n = student.GetLength(0), k = student.GetLength(1);
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            var ps = Softmax(Enumerable.Range(0, k).Select(j => (double)student[i, j]).ToArray(), t);
            var pt = Softmax(Enumerable.Range(0, k).Select(j => (double)teacher[i, j]).ToArray(), t);
            for (int j = 0; j < k; j++) sum += pt[j] * (Math.Log(pt[j]) - Math.Log(ps[j]));
        }
        return sum / n * t * t;
    }

    private static readonly float[,] s_ceLogits = { { 2f, -1f, 0.5f }, { 0.1f, 0.2f, 3f } };
    private static readonly long[] s_labels = { 0, 1 };
    private static readonly float[,] s_kdLabeled = { { 1f, 0f, -1f }, { 0.3f, 0.3f, 2f } };
    private static readonly float[,] s_tLabeled = { { 3f, 0.5f, -2f }, { -1f, 1f, 4f } };
    private static readonly float[,] s_kdUnlabeled = { { -0.5f, 2f, 0f }, { 1f, 1f, 1f }, { 0f, -3f, 2f } };
    private static readonly float[,] s_tUnlabeled = { { 0f, 5f, 1f }, { 2f, -1f, 0f }, { 1f, 1f, 1f } };

    [TestMethod]
    public void CrossEntropyMatchesHandComputation()
    {
        using var logits = tensor(s_ceLogits);
        using var labels = tensor(s_labels);
        using var ce = DhoLoss.CrossEntropy(logits, labels);
        Assert.AreEqual(HandCe(s_ceLogits, s_labels), ce.item<float>(), 1e-5);
    }

    [TestMethod]
    public void DistillationIsBatchmeanKlTimesTSquared()
    {
        foreach (float t in new[] { 1f, 2f, 4f })
        {
            using var s = tensor(s_kdUnlabeled);
            using var te = tensor(s_tUnlabeled);
            using var kd = DhoLoss.Distillation(s, te, t);
            Assert.AreEqual(HandKd(s_kdUnlabeled, s_tUnlabeled, t), kd.item<float>(), 1e-5, $"T={t}");
        }
        // KL is zero when the student equals the teacher.
        using var same = tensor(s_tLabeled);
        using var zero = DhoLoss.Distillation(same, same, 2f);
        Assert.AreEqual(0, zero.item<float>(), 1e-6);
    }

    [TestMethod]
    public void TotalAveragesLabeledAndUnlabeledKdSeparatelyThenAdds()
    {
        using var scope = NewDisposeScope();
        var (total, ce, kd) = DhoLoss.Compute(
            tensor(s_ceLogits), tensor(s_labels),
            tensor(s_kdLabeled), tensor(s_tLabeled),
            tensor(s_kdUnlabeled), tensor(s_tUnlabeled),
            lambda: 0.3f, temperature: 2f);
        double handCe = HandCe(s_ceLogits, s_labels);
        double handKd = HandKd(s_kdLabeled, s_tLabeled, 2) + HandKd(s_kdUnlabeled, s_tUnlabeled, 2);
        Assert.AreEqual(handCe, ce.item<float>(), 1e-5);
        Assert.AreEqual(handKd, kd.item<float>(), 1e-5);
        Assert.AreEqual(0.3 * handCe + 0.7 * handKd, total.item<float>(), 1e-5);

        // Not the same as one mean over the 5 concatenated rows (sizes 2 and 3 differ).
        var all = new float[5, 3];
        var allT = new float[5, 3];
        for (int j = 0; j < 3; j++)
        {
            for (int i = 0; i < 2; i++) { all[i, j] = s_kdLabeled[i, j]; allT[i, j] = s_tLabeled[i, j]; }
            for (int i = 0; i < 3; i++) { all[2 + i, j] = s_kdUnlabeled[i, j]; allT[2 + i, j] = s_tUnlabeled[i, j]; }
        }
        Assert.AreNotEqual(HandKd(all, allT, 2), kd.item<float>(), 1e-3);
    }

    [TestMethod]
    public void CrossEntropyIsNotDilutedByUnlabeledRows()
    {
        using var scope = NewDisposeScope();
        // The CE term only sees the labeled logits it is given; adding unlabeled rows changes KD only.
        var (_, ceWith, _) = DhoLoss.Compute(tensor(s_ceLogits), tensor(s_labels), tensor(s_kdLabeled), tensor(s_tLabeled),
            tensor(s_kdUnlabeled), tensor(s_tUnlabeled), 0.5f, 2f);
        var (_, ceWithout, _) = DhoLoss.Compute(tensor(s_ceLogits), tensor(s_labels), tensor(s_kdLabeled), tensor(s_tLabeled),
            zeros(0, 3), zeros(0, 3), 0.5f, 2f);
        Assert.AreEqual(HandCe(s_ceLogits, s_labels), ceWith.item<float>(), 1e-6);
        Assert.AreEqual(ceWith.item<float>(), ceWithout.item<float>());
    }

    [TestMethod]
    public void ObjectiveDescriptionShowsWeights()
    {
        Assert.AreEqual(
            "L = 0.5*CE(h_CE, labeled) + 0.5*[KD(h_KD, labeled) + KD(h_KD, unlabeled)], KD = batchmean KL(softmax(t/2) || softmax(s/2))*2^2",
            new DualHeadObjective().Describe(new Specs.ObjectiveSpec("DualHead", 0.5f, 2f, Specs.SpecSettings.Empty)));
    }
}
