namespace Microsoft.ML.DualHeadDistillation
{

    /// <summary>One point of the alpha/beta grid and the validation accuracy it gives.</summary>
    public readonly record struct AlphaBetaPoint(float Alpha, float Beta, double Accuracy);

    /// <summary>The result of an alpha/beta search: the pair kept and the whole grid.</summary>
    public sealed record AlphaBetaSearchResult(float Alpha, float Beta, double Accuracy, int ValidationRows, IReadOnlyList<AlphaBetaPoint> Grid)
    {
        /// <summary>Validation rows left out because their label is the missing key (empty, or a value the training label does not know).</summary>
        public int RowsWithoutLabel { get; init; }

        public override string ToString() => FormattableString.Invariant(
            $"alpha {Alpha:0.##}, beta {Beta:0.##}: validation accuracy {Accuracy:P2} on {ValidationRows} rows ({Grid.Count} grid points){(RowsWithoutLabel > 0 ? $"; {RowsWithoutLabel} rows without a label were left out" : "")}");
    }

}

namespace Microsoft.ML.DualHeadDistillation.Inference
{
    /// <summary>
    /// Grid search of DHO's inference weights on the heads' cached logits: the student runs once over the
    /// validation rows, then each (alpha, beta) is plain arithmetic (<see cref="HeadCombiner"/>). Ties keep
    /// the earliest point in grid order (alpha outer, beta inner).
    /// </summary>
    internal static class AlphaBetaSearch
    {
        public static AlphaBetaSearchResult Run(float[] ceLogits, float[] kdLogits, int[] labels, int classCount, float[] alphaGrid, float[] betaGrid, Training.FitCancellation? cancel = null)
        {
            var rows = Enumerable.Range(0, labels.Length).Where(i => labels[i] >= 0).ToArray();
            if (rows.Length == 0)
                throw new ArgumentException("The validation data has no labeled rows; the alpha/beta search needs labels.", "validationData");
            int k = classCount;
            var pCe = new float[k];
            var pKd = new float[k];
            var p = new float[k];
            var grid = new List<AlphaBetaPoint>(alphaGrid.Length * betaGrid.Length);
            AlphaBetaPoint best = default;
            foreach (float alpha in alphaGrid)
                foreach (float beta in betaGrid)
                {
                    cancel?.ThrowIfRequested();
                    int correct = 0;
                    foreach (int i in rows)
                        if (HeadCombiner.Combine(ceLogits.AsSpan(i * k, k), kdLogits.AsSpan(i * k, k), alpha, beta, pCe, pKd, p) == labels[i]) correct++;
                    var point = new AlphaBetaPoint(alpha, beta, (double)correct / rows.Length);
                    grid.Add(point);
                    if (grid.Count == 1 || point.Accuracy > best.Accuracy) best = point;
                }
            return new AlphaBetaSearchResult(best.Alpha, best.Beta, best.Accuracy, rows.Length, grid) { RowsWithoutLabel = labels.Length - rows.Length };
        }
    }
}
