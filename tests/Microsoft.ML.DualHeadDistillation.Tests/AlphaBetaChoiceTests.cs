using Microsoft.ML.DualHeadDistillation.Diagnosis;
using Microsoft.ML.DualHeadDistillation.Inference;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The alpha/beta choice with the noise in view, on head logits built so each grid point's accuracy is known (no training).</summary>
[TestClass]
public sealed class AlphaBetaChoiceTests
{
    private const int K = 2;

    /// <summary>
    /// Rows 0..n-1 of two classes; the CE head is right on the first <paramref name="ceRight"/> rows, the KD head on the
    /// rows from <paramref name="kdFrom"/> on. Where they disagree, alpha decides: CE logits 3, KD logits 1, so at beta 0.5
    /// the CE head's answer wins from alpha 0.46 up (the configured pair answers as the CE head) and the KD head's below.
    /// </summary>
    private static (float[] Ce, float[] Kd, int[] Labels) Heads(int n, int ceRight, int kdFrom)
    {
        var labels = Enumerable.Range(0, n).Select(i => i % 2).ToArray();
        var ce = new float[n * K];
        var kd = new float[n * K];
        for (int i = 0; i < n; i++)
        {
            ce[i * K + (i < ceRight ? labels[i] : 1 - labels[i])] = 3f;
            kd[i * K + (i >= kdFrom ? labels[i] : 1 - labels[i])] = 1f;
        }
        return (ce, kd, labels);
    }

    private static AlphaBetaSearchResult Search(float[] ce, float[] kd, int[] labels, Proportion? teacher = null, float margin = 2f) =>
        AlphaBetaSearch.Run(ce, kd, labels, K, DualHeadDefaults.AlphaGrid, DualHeadDefaults.BetaGrid, null, new AlphaBetaEvidence(teacher, margin));

    [TestMethod]
    public void ALeadWithinTheNoiseKeepsTheReferenceAndALargeLeadKeepsTheBest()
    {
        // 400 rows (200 a class): CE right on 300, KD right on rows 60..399 (340). The KD side leads the pair (CE's answers)
        // by 40 rows of 400, above 2 paired standard errors (100 + 60 rows differ: 2 sqrt(160 - 1600/400) / 400 = 6.2 %).
        var (ce, kd, labels) = Heads(400, ceRight: 300, kdFrom: 60);
        var big = Search(ce, kd, labels);
        Assert.AreEqual(big.Best, big.Grid.First(p => p.Accuracy == big.Grid.Max(g => g.Accuracy)));
        Assert.AreEqual((big.Best.Alpha, big.Best.Beta), (big.Alpha, big.Beta), big.Reason);
        StringAssert.Contains(big.Reason, "more than the noise");
        Assert.AreEqual(200, big.FewestRowsPerClass);
        Assert.AreEqual(2 * Math.Sqrt(156) / 400, big.RequiredLead, 1e-9);

        // 40 rows: the same shape, one row's lead.
        var (ce2, kd2, labels2) = Heads(40, ceRight: 30, kdFrom: 9);
        var small = Search(ce2, kd2, labels2);
        Assert.IsTrue(small.Best.Accuracy > small.Reference.Accuracy, small.Reason);
        Assert.AreEqual((small.Reference.Alpha, small.Reference.Beta), (small.Alpha, small.Beta), small.Reason);
        StringAssert.Contains(small.Reason, "within the noise");
        Assert.AreEqual(20, small.FewestRowsPerClass);
        Assert.AreEqual(Math.Sqrt(small.Accuracy * (1 - small.Accuracy) / 40), small.StandardError, 1e-12);

        // Margin 0: the plain best, as before the noise rule.
        var plain = Search(ce2, kd2, labels2, margin: 0);
        Assert.AreEqual((plain.Best.Alpha, plain.Best.Beta), (plain.Alpha, plain.Beta));
    }

    [TestMethod]
    public void TheReferenceIsTheConfiguredPairOrOnFewRowsASingleHeadTheCeHeadWhenTheTeacherIsBelowIt()
    {
        var (ce, kd, labels) = Heads(400, ceRight: 300, kdFrom: 60);
        var pair = Search(ce, kd, labels);
        Assert.AreEqual((0.5f, 0.5f), (pair.Reference.Alpha, pair.Reference.Beta));
        StringAssert.Contains(pair.ReferenceName, "configured pair");

        // With 20 or more validation rows a class the teacher does not change the reference: the pair stays.
        Assert.AreEqual((0.5f, 0.5f), (Search(ce, kd, labels, new Proportion(60, 100)).Reference.Alpha, Search(ce, kd, labels, new Proportion(60, 100)).Reference.Beta));

        // Fewer than 20 validation rows a class (8 here): the better single head is the reference; the CE head on ties.
        var (ce3, kd3, labels3) = Heads(16, ceRight: 12, kdFrom: 2);
        var few = Search(ce3, kd3, labels3, new Proportion(90, 100));
        Assert.AreEqual((0f, 1f), (few.Reference.Alpha, few.Reference.Beta), few.Reason);
        StringAssert.Contains(few.Reason, "8 validation images in the smallest class");
        var (ce4, kd4, labels4) = Heads(16, ceRight: 14, kdFrom: 2);
        Assert.AreEqual(1f, Search(ce4, kd4, labels4).Reference.Alpha);
        // ...and when the teacher scored below the CE head on the labeled rows (60 % < 75 %), the CE head even though the KD head looks better.
        var ceRef = Search(ce3, kd3, labels3, new Proportion(60, 100));
        Assert.AreEqual(1f, ceRef.Reference.Alpha);
        Assert.AreEqual(0.75, ceRef.Reference.Accuracy, 1e-12);
        StringAssert.Contains(ceRef.Reason, "the teacher 60.0 % on the labeled rows");
        Assert.IsNotNull(Microsoft.ML.DualHeadDistillation.DualHeadDistillTrainer.SmallValidationWarning(few));
        Assert.IsNull(Microsoft.ML.DualHeadDistillation.DualHeadDistillTrainer.SmallValidationWarning(pair));
    }
}
