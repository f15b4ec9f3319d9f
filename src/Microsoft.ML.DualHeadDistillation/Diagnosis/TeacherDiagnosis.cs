namespace Microsoft.ML.DualHeadDistillation.Diagnosis;

/// <summary>How often the teacher agrees with the labels of one class.</summary>
/// <param name="Class">The class name.</param>
/// <param name="Agreement">Rows of the class the teacher gives to it.</param>
public sealed record ClassAgreement(string Class, Proportion Agreement);

/// <summary>One systematic error of the teacher: rows of <paramref name="True"/> it gives to <paramref name="Predicted"/>.</summary>
/// <param name="True">The labeled class.</param>
/// <param name="Predicted">The class the teacher says.</param>
/// <param name="Rate">Rows of <paramref name="True"/> the teacher gives to <paramref name="Predicted"/>, of all rows of <paramref name="True"/>.</param>
public sealed record TeacherConfusion(string True, string Predicted, Proportion Rate)
{
    /// <summary>"Shirt -> T-shirt_top 41 % (21 of 51)".</summary>
    public override string ToString() => FormattableString.Invariant($"{True} -> {Predicted} {Rate.Value * 100:0} % ({Rate.Count} of {Rate.Rows})");
}

/// <summary>The diagnosis's plain answer: the objective to expect to win here, why, and the evidence.</summary>
/// <param name="Objective">The objective recommended (<see cref="DualHeadTrainingMode.DualHead"/>, <see cref="DualHeadTrainingMode.SingleHeadKd"/> or <see cref="DualHeadTrainingMode.SupervisedOnly"/>).</param>
/// <param name="Summary">One sentence for the user, with the figures it rests on.</param>
/// <param name="Evidence">The measured facts the verdict rests on, one per line.</param>
public sealed record DistillationVerdict(DualHeadTrainingMode Objective, string Summary, IReadOnlyList<string> Evidence);

/// <summary>
/// What the teacher does on the rows whose answer is known, measured before any training (<see cref="DualHeadDiagnosis.Assess(ReadOnlySpan{float}, int[], IReadOnlyList{string}, ReadOnlySpan{float}, TeacherOutputKind, DiagnosisThresholds?)"/>):
/// its accuracy with a confidence interval, per-class agreement, the class pairs it confuses, its calibration, its
/// entropy on unlabeled rows, and the verdict.
/// </summary>
public sealed record TeacherDiagnosis
{
    /// <summary>The classes, in label order.</summary>
    public required IReadOnlyList<string> Classes { get; init; }
    /// <summary>The teacher's accuracy on the labeled rows.</summary>
    public required Proportion Accuracy { get; init; }
    /// <summary>1 / K: the accuracy of a teacher that guesses.</summary>
    public double ChanceAccuracy => 1.0 / Classes.Count;
    /// <summary>Cohen's-kappa-like skill: (accuracy - chance) / (1 - chance); 0 for guessing, 1 for always right.</summary>
    public double Skill => (Accuracy.Value - ChanceAccuracy) / (1 - ChanceAccuracy);
    /// <summary>Agreement with the labels, per class, in label order.</summary>
    public required IReadOnlyList<ClassAgreement> PerClass { get; init; }
    /// <summary>The teacher's confusion matrix on the labeled rows: [true class][teacher's class] counts.</summary>
    public required int[][] Confusion { get; init; }
    /// <summary>The errors the teacher makes systematically (rate and count above <see cref="DiagnosisThresholds"/>), most frequent first.</summary>
    public required IReadOnlyList<TeacherConfusion> SystematicConfusions { get; init; }
    /// <summary>Expected calibration error over 10 confidence bins: sum over bins of (rows in bin / rows) * |accuracy - mean confidence|.</summary>
    public required double ExpectedCalibrationError { get; init; }
    /// <summary>The teacher's mean top-class probability on the labeled rows (compare with <see cref="Accuracy"/>).</summary>
    public required double MeanConfidence { get; init; }
    /// <summary>Unlabeled rows the teacher was run on (a sample), 0 when none were given.</summary>
    public int UnlabeledRows { get; init; }
    /// <summary>Mean entropy of the teacher's distribution on the unlabeled rows, divided by log K (0: certain, 1: uniform); NaN without unlabeled rows.</summary>
    public double UnlabeledEntropy { get; init; } = double.NaN;
    /// <summary>Mean normalised entropy on the labeled rows, for comparison with <see cref="UnlabeledEntropy"/> (a much higher value on unlabeled rows hints they are unlike the labeled ones).</summary>
    public double LabeledEntropy { get; init; } = double.NaN;
    /// <summary>The verdict: which objective to expect to win, and why.</summary>
    public required DistillationVerdict Verdict { get; init; }
    /// <summary>What limits the diagnosis (few labeled rows of a class).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The diagnosis as lines of text (the block `dualhead diagnose` and `train` print).</summary>
    public IEnumerable<string> Describe()
    {
        yield return $"teacher accuracy on the labeled images: {Accuracy} (chance {ChanceAccuracy * 100:0.0} %)";
        yield return FormattableString.Invariant($"calibration: mean confidence {MeanConfidence * 100:0.0} % vs accuracy {Accuracy.Value * 100:0.0} %, ECE {ExpectedCalibrationError:0.000}");
        if (UnlabeledRows > 0)
            yield return FormattableString.Invariant($"teacher entropy (0 certain, 1 uniform): {UnlabeledEntropy:0.00} on {UnlabeledRows} unlabeled images, {LabeledEntropy:0.00} on the labeled ones");
        var weakest = PerClass.Where(c => c.Agreement.Rows > 0).OrderBy(c => c.Agreement.Value).Take(3).ToArray();
        if (weakest.Length > 0)
            yield return "weakest classes: " + string.Join(", ", weakest.Select(c => FormattableString.Invariant($"{c.Class} {c.Agreement.Value * 100:0} % ({c.Agreement.Count}/{c.Agreement.Rows})")));
        if (SystematicConfusions.Count > 0)
            yield return "systematic confusions: " + string.Join("; ", SystematicConfusions.Take(5));
        foreach (var w in Warnings) yield return "warning: " + w;
        yield return $"verdict: {Verdict.Objective}: {Verdict.Summary}";
    }
}

/// <summary>The rule's thresholds (documented defaults; <c>bench diagnose</c> checks them on the paper protocol).</summary>
public sealed record DiagnosisThresholds
{
    /// <summary>Below this skill ((accuracy - chance) / (1 - chance)) the teacher is too weak to learn from: train on the labels.</summary>
    public double WeakSkill { get; init; } = 0.3;
    /// <summary>A true class -> teacher class pair is systematic when at least this share of the class goes there...</summary>
    public double ConfusionRate { get; init; } = 0.25;
    /// <summary>...and at least this many rows do.</summary>
    public int ConfusionRows { get; init; } = 3;
    /// <summary>From this accuracy, with no systematic confusion, one head learning from the teacher is enough.</summary>
    public double StrongAccuracy { get; init; } = 0.8;
    /// <summary>Fewer labeled rows than this in a class gives a warning: its agreement is too noisy to read.</summary>
    public int RowsPerClass { get; init; } = 20;
}
