using Microsoft.ML.DualHeadDistillation.Diagnosis;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The diagnosis on synthetic teachers built to be right, to confuse pairs, and to guess (no training).</summary>
[TestClass]
public sealed class DiagnosisTests
{
    private static readonly string[] s_classes = ["a", "b", "c", "d", "e"];

    /// <summary>Labels 0..K-1, <paramref name="perClass"/> each, and the teacher's logits: <paramref name="answer"/>(row, label) gets logit 4.</summary>
    private static (float[] Logits, int[] Labels) Teacher(int perClass, Func<int, int, int> answer)
    {
        int k = s_classes.Length, n = k * perClass;
        var labels = Enumerable.Range(0, n).Select(i => i % k).ToArray();
        var logits = new float[n * k];
        for (int i = 0; i < n; i++) logits[i * k + answer(i, labels[i])] = 4f;
        return (logits, labels);
    }

    [TestMethod]
    public void ARightTeacherIsStrongWithNoConfusionAndSingleHeadKdIsTheVerdict()
    {
        // Right on 19 of 20 rows of each class; the wrong rows go to different classes (no pattern).
        var (logits, labels) = Teacher(40, (i, y) => i / 5 % 20 == 3 ? (y + 1 + i % 4) % 5 : y);
        var d = DualHeadDiagnosis.Assess(logits, labels, s_classes);
        Assert.AreEqual(200, d.Accuracy.Rows);
        Assert.IsTrue(d.Accuracy.Value > 0.9, d.Accuracy.ToString());
        Assert.IsTrue(d.Accuracy.Lower < d.Accuracy.Value && d.Accuracy.Value < d.Accuracy.Upper);
        Assert.AreEqual(0, d.SystematicConfusions.Count, string.Join("; ", d.SystematicConfusions));
        Assert.AreEqual(DualHeadTrainingMode.SingleHeadKd, d.Verdict.Objective, d.Verdict.Summary);
        Assert.AreEqual(d.Accuracy.Count, Enumerable.Range(0, 5).Sum(c => d.Confusion[c][c]));
    }

    [TestMethod]
    public void ATeacherThatConfusesAPairNamesItAndRecommendsTwoHeads()
    {
        // Class 1 ("b") goes to class 3 ("d") on 60 % of its rows; every other row is right.
        var (logits, labels) = Teacher(50, (i, y) => y == 1 && i / 5 % 10 < 6 ? 3 : y);
        var d = DualHeadDiagnosis.Assess(logits, labels, s_classes);
        Assert.AreEqual(1, d.SystematicConfusions.Count);
        var c = d.SystematicConfusions[0];
        Assert.AreEqual(("b", "d", 30, 50), (c.True, c.Predicted, c.Rate.Count, c.Rate.Rows));
        Assert.AreEqual(0.4, d.PerClass[1].Agreement.Value, 1e-12);
        Assert.AreEqual(DualHeadTrainingMode.DualHead, d.Verdict.Objective, d.Verdict.Summary);
        StringAssert.Contains(d.Verdict.Summary, "b->d 60 %");
        Assert.IsTrue(d.Describe().Any(l => l.Contains("systematic confusions: b -> d 60 % (30 of 50)", StringComparison.Ordinal)), string.Join("\n", d.Describe()));
    }

    [TestMethod]
    public void AGuessingTeacherIsNearChanceAndTheVerdictIsSupervised()
    {
        var random = new Random(5);
        var (logits, labels) = Teacher(60, (_, _) => random.Next(5));
        var d = DualHeadDiagnosis.Assess(logits, labels, s_classes);
        Assert.AreEqual(0.2, d.ChanceAccuracy, 1e-12);
        Assert.IsTrue(d.Skill < 0.15, $"skill {d.Skill}");
        Assert.AreEqual(DualHeadTrainingMode.SupervisedOnly, d.Verdict.Objective, d.Verdict.Summary);
        StringAssert.Contains(d.Verdict.Summary, "near chance");
    }

    [TestMethod]
    public void CalibrationAndEntropyAreMeasured()
    {
        // Logit 4 on one class of 5: top probability e^4 / (e^4 + 4) = 0.9317; right on 60 % of rows -> ECE = 0.3317.
        var (logits, labels) = Teacher(20, (i, y) => i % 5 < 3 ? y : (y + 1) % 5);
        var uniform = new float[7 * 5];
        var d = DualHeadDiagnosis.Assess(logits, labels, s_classes, uniform);
        double top = Math.Exp(4) / (Math.Exp(4) + 4);
        Assert.AreEqual(top, d.MeanConfidence, 1e-6);
        Assert.AreEqual(top - d.Accuracy.Value, d.ExpectedCalibrationError, 1e-6);
        Assert.AreEqual(7, d.UnlabeledRows);
        Assert.AreEqual(1.0, d.UnlabeledEntropy, 1e-6, "uniform logits: entropy log K");
        Assert.IsTrue(d.LabeledEntropy < 0.3);
        Assert.IsTrue(d.Warnings.Any(w => w.Contains("class 'a' has 20", StringComparison.Ordinal)) == false, "20 rows a class is enough");
        var few = DualHeadDiagnosis.Assess(logits.AsSpan(0, 25 * 5), labels[..25], s_classes);
        Assert.IsTrue(few.Warnings.Any(w => w.Contains("class 'a' has 5 labeled images", StringComparison.Ordinal)), string.Join("\n", few.Warnings));
        // Probabilities are read as probabilities.
        var probabilities = logits.Select(v => v > 0 ? 0.6f : 0.1f).ToArray();
        Assert.AreEqual(0.6, DualHeadDiagnosis.Assess(probabilities, labels, s_classes, kind: TeacherOutputKind.Probabilities).MeanConfidence, 1e-6);
    }

    [TestMethod]
    public void ADataViewWithAKeyLabelAndATeacherColumnIsDiagnosed()
    {
        var ml = new MLContext(seed: 1);
        var (logits, labels) = Teacher(10, (i, y) => y == 2 && i % 2 == 0 ? 4 : y);
        var rows = labels.Select((y, i) => new Row { Label = s_classes[y], Teacher = logits.AsSpan(i * 5, 5).ToArray() }).ToList();
        var view = ml.Data.LoadFromEnumerable(rows);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label", keyData: ml.Data.LoadFromEnumerable(s_classes.Select(c => new ClassName { Label = c })))
            .Fit(view).Transform(view);
        var d = DualHeadDiagnosis.Assess(keyed, s_classes);
        var direct = DualHeadDiagnosis.Assess(logits, labels, s_classes);
        Assert.AreEqual(direct.Accuracy, d.Accuracy);
        Assert.AreEqual(direct.Verdict, d.Verdict with { Evidence = direct.Verdict.Evidence });
        Assert.AreEqual(d.Accuracy, DualHeadDiagnosis.Assess(view, s_classes).Accuracy, "text labels read as class names");
    }

    [TestMethod]
    public void BadInputNamesWhatIsWrong()
    {
        var (logits, labels) = Teacher(4, (_, y) => y);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => DualHeadDiagnosis.Assess(logits.AsSpan(1), labels, s_classes)).Message, "expected 20 rows x 5 classes");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => DualHeadDiagnosis.Assess([], [], s_classes)).Message, "needs labeled rows");
        var bad = (int[])labels.Clone();
        bad[3] = 7;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => DualHeadDiagnosis.Assess(logits, bad, s_classes)).Message, "row 3 is 7");
        logits[12] = float.NaN;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => DualHeadDiagnosis.Assess(logits, labels, s_classes)).Message, "labeled row 2 holds NaN");
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(new[] { new Row { Label = "zebra", Teacher = new float[5] } });
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => DualHeadDiagnosis.Assess(view, s_classes)).Message, "holds 'zebra', which is none of the classes");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => DualHeadDiagnosis.Assess(view, ["x", "y"])).Message, "expected a vector of 2 floats");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => DualHeadDiagnosis.Assess(view, s_classes, teacherColumnName: "Logits")).Message, "no teacher column 'Logits'");
    }

    [TestMethod]
    public void TheWilsonIntervalAndThePairedStandardErrorAreTheTextbookOnes()
    {
        // Wilson 95 % for 8 of 10: 0.4902 .. 0.9433.
        var p = new Proportion(8, 10);
        Assert.AreEqual(0.4902, p.Lower, 1e-4);
        Assert.AreEqual(0.9433, p.Upper, 1e-4);
        Assert.AreEqual(Math.Sqrt(0.8 * 0.2 / 10), p.StandardError, 1e-12);
        // Paired: 6 rows only A gets right, 2 only B, of 40 -> sqrt(8 - 16/40) / 40.
        Assert.AreEqual(Math.Sqrt(8 - 0.4) / 40, Proportion.PairedStandardError(6, 2, 40), 1e-12);
        Assert.AreEqual(0, Proportion.PairedStandardError(0, 0, 40));
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }

    private sealed class Row
    {
        public string Label { get; set; } = "";
        [Microsoft.ML.Data.VectorType(5)] public float[] Teacher { get; set; } = [];
    }
}
