using Microsoft.ML.DualHeadDistillation.Diagnosis;

namespace Microsoft.ML.DualHeadDistillation
{

    /// <summary>One point of the alpha/beta grid and the validation accuracy it gives.</summary>
    public readonly record struct AlphaBetaPoint(float Alpha, float Beta, double Accuracy);

    /// <summary>
    /// The result of an alpha/beta search: the pair kept (<see cref="Alpha"/>, <see cref="Beta"/>, its validation
    /// <see cref="Accuracy"/>) and the whole grid. The grid's best point is kept only when it beats the
    /// <see cref="Reference"/> by more than the noise of the validation set (<see cref="RequiredLead"/>).
    /// </summary>
    public sealed record AlphaBetaSearchResult(float Alpha, float Beta, double Accuracy, int ValidationRows, IReadOnlyList<AlphaBetaPoint> Grid)
    {
        /// <summary>Validation rows left out because their label is the missing key (empty, or a value the training label does not know).</summary>
        public int RowsWithoutLabel { get; init; }
        /// <summary>The grid's best point on validation (the first in grid order on ties).</summary>
        public AlphaBetaPoint Best { get; init; }
        /// <summary>The point kept unless <see cref="Best"/> beats it by more than <see cref="RequiredLead"/>: the configured pair (alpha = beta = 0.5 by default); with fewer than 20 validation rows a class, a single head (the CE head when the teacher scored below it on the labels or it scored at least the KD head).</summary>
        public AlphaBetaPoint Reference { get; init; }
        /// <summary>"alpha 0.5, beta 0.5 (the configured pair)", "the CE head (alpha 1)" or "the KD head (alpha 0, beta 1)".</summary>
        public string ReferenceName { get; init; } = "";
        /// <summary>How far (accuracy) <see cref="Best"/> had to lead <see cref="Reference"/>: the noise margin times the paired standard error of their difference.</summary>
        public double RequiredLead { get; init; }
        /// <summary>The standard error of <see cref="Accuracy"/> on <see cref="ValidationRows"/> rows: sqrt(p (1 - p) / n).</summary>
        public double StandardError => ValidationRows == 0 ? double.NaN : Math.Sqrt(Accuracy * (1 - Accuracy) / ValidationRows);
        /// <summary>The fewest validation rows of any class (a class with none counts 0).</summary>
        public int FewestRowsPerClass { get; init; }
        /// <summary>Why the kept point was kept, with the figures.</summary>
        public string Reason { get; init; } = "";

        public override string ToString() => FormattableString.Invariant(
            $"alpha {Alpha:0.##}, beta {Beta:0.##}: validation accuracy {Accuracy:P2} ± {StandardError:P1} on {ValidationRows} rows ({Grid.Count} grid points); {Reason}{(RowsWithoutLabel > 0 ? $"; {RowsWithoutLabel} rows without a label were left out" : "")}");
    }

}

namespace Microsoft.ML.DualHeadDistillation.Inference
{
    /// <summary>What the alpha/beta choice knows besides the validation rows.</summary>
    /// <param name="TeacherOnLabels">The teacher's accuracy on the labeled training rows (unseen by the teacher), or null.</param>
    /// <param name="NoiseMargin">Paired standard errors by which the grid's best must beat the reference to be kept (0: the plain best).</param>
    /// <param name="Alpha">The configured alpha (the reference when the CE head is not).</param>
    /// <param name="Beta">The configured beta.</param>
    internal sealed record AlphaBetaEvidence(Proportion? TeacherOnLabels, float NoiseMargin, float Alpha = DualHeadDefaults.Alpha, float Beta = DualHeadDefaults.Beta);

    /// <summary>
    /// Grid search of DHO's inference weights on the heads' cached logits: the student runs once over the
    /// validation rows, then each (alpha, beta) is plain arithmetic (<see cref="HeadCombiner"/>). Ties keep
    /// the earliest point in grid order (alpha outer, beta inner).
    /// The choice survives small validation sets: a reference is kept — the configured pair (alpha = beta = 0.5 by
    /// default); with fewer than 20 validation rows a class, a single head: the CE head when the teacher's accuracy on
    /// the labeled rows is below the CE head's on validation (the labels know better than the teacher) or the CE head
    /// scores at least the KD head, else the KD head — unless the grid's best beats it by more than <see cref="AlphaBetaEvidence.NoiseMargin"/>
    /// paired standard errors of the accuracy difference on the same rows.
    /// </summary>
    internal static class AlphaBetaSearch
    {
        /// <summary>Validation images a class below which a single head is the reference and Fit warns that the choice is noisy.</summary>
        public const int SmallValidationPerClass = 20;

        public static AlphaBetaSearchResult Run(float[] ceLogits, float[] kdLogits, int[] labels, int classCount, float[] alphaGrid, float[] betaGrid, Training.FitCancellation? cancel = null, AlphaBetaEvidence? evidence = null)
        {
            evidence ??= new AlphaBetaEvidence(null, DualHeadDefaults.AlphaBetaNoiseMargin);
            var rows = Enumerable.Range(0, labels.Length).Where(i => labels[i] >= 0).ToArray();
            if (rows.Length == 0)
                throw new ArgumentException("The validation data has no labeled rows; the alpha/beta search needs labels.", "validationData");
            int k = classCount;
            var scratch = (new float[k], new float[k], new float[k]);
            bool[] Correct(float alpha, float beta)
            {
                cancel?.ThrowIfRequested();
                var (pCe, pKd, p) = scratch;
                return rows.Select(i => HeadCombiner.Combine(ceLogits.AsSpan(i * k, k), kdLogits.AsSpan(i * k, k), alpha, beta, pCe, pKd, p) == labels[i]).ToArray();
            }
            double Accuracy(bool[] c) => (double)c.Count(x => x) / c.Length;

            var grid = new List<AlphaBetaPoint>(alphaGrid.Length * betaGrid.Length);
            AlphaBetaPoint best = default;
            bool[] bestCorrect = [];
            foreach (float alpha in alphaGrid)
                foreach (float beta in betaGrid)
                {
                    var correct = Correct(alpha, beta);
                    var point = new AlphaBetaPoint(alpha, beta, Accuracy(correct));
                    grid.Add(point);
                    if (grid.Count == 1 || point.Accuracy > best.Accuracy) (best, bestCorrect) = (point, correct);
                }

            var perClass = new int[k];
            foreach (int i in rows) perClass[labels[i]]++;
            bool small = perClass.Min() < SmallValidationPerClass;
            var ceCorrect = Correct(1f, DualHeadDefaults.Beta);
            var kdCorrect = Correct(0f, 1f);
            double ceAccuracy = Accuracy(ceCorrect), kdAccuracy = Accuracy(kdCorrect);
            bool teacherBelowCe = evidence.TeacherOnLabels is { Rows: > 0 } t && t.Value < ceAccuracy;
            // Few validation rows a class: a single head is the reference (the CE head unless the teacher and the KD head both look better).
            var (referenceCorrect, referenceName, reference) = small && (teacherBelowCe || ceAccuracy >= kdAccuracy)
                ? (ceCorrect, "the CE head (alpha 1)", new AlphaBetaPoint(1f, DualHeadDefaults.Beta, ceAccuracy))
                : small
                    ? (kdCorrect, "the KD head (alpha 0, beta 1)", new AlphaBetaPoint(0f, 1f, kdAccuracy))
                    : (Correct(evidence.Alpha, evidence.Beta), FormattableString.Invariant($"alpha {evidence.Alpha:0.##}, beta {evidence.Beta:0.##} (the configured pair)"), new AlphaBetaPoint(evidence.Alpha, evidence.Beta, 0));
            reference = reference with { Accuracy = Accuracy(referenceCorrect) };
            int onlyBest = 0, onlyReference = 0;
            for (int r = 0; r < rows.Length; r++)
            {
                if (bestCorrect[r] && !referenceCorrect[r]) onlyBest++;
                if (referenceCorrect[r] && !bestCorrect[r]) onlyReference++;
            }
            double lead = best.Accuracy - reference.Accuracy;
            double required = evidence.NoiseMargin * Proportion.PairedStandardError(onlyBest, onlyReference, rows.Length);
            bool keepBest = lead > required && lead > 0;
            var kept = keepBest ? best : reference;
            string why = keepBest
                ? FormattableString.Invariant($"the grid's best beats {referenceName} ({reference.Accuracy:P1}) by {lead * 100:0.0} points, more than the noise ({required * 100:0.0} = {evidence.NoiseMargin:0.#} paired standard errors)")
                : FormattableString.Invariant($"kept {referenceName}: the grid's best (alpha {best.Alpha:0.##}, beta {best.Beta:0.##}, {best.Accuracy:P1}) leads it by {lead * 100:0.0} points, within the noise ({required * 100:0.0} = {evidence.NoiseMargin:0.#} paired standard errors on {rows.Length} rows)");
            if (small)
                why += FormattableString.Invariant($"; with {perClass.Min()} validation images in the smallest class a single head is the reference (CE head {ceAccuracy:P1}, KD head {kdAccuracy:P1}{(evidence.TeacherOnLabels is { Rows: > 0 } teacher ? $", the teacher {teacher.Value:P1} on the labeled rows" : "")})");
            return new AlphaBetaSearchResult(kept.Alpha, kept.Beta, kept.Accuracy, rows.Length, grid)
            {
                RowsWithoutLabel = labels.Length - rows.Length,
                Best = best,
                Reference = reference,
                ReferenceName = referenceName,
                RequiredLead = required,
                FewestRowsPerClass = perClass.Min(),
                Reason = why,
            };
        }
    }
}
