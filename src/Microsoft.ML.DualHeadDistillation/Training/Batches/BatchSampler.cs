namespace Microsoft.ML.DualHeadDistillation.Training.Batches;

/// <summary>
/// Yields the row indices of each step: an epoch is one pass over the unlabeled rows in a fresh seeded
/// order; labeled rows are cycled (reshuffled each time they run out). Without unlabeled rows an epoch
/// is one pass over the labeled rows.
/// </summary>
internal sealed class BatchSampler
{
    private readonly int[] _labeled;
    private readonly int[] _unlabeled;
    private readonly int _labeledBatch, _unlabeledBatch;
    private readonly Random _random;
    private int _labeledCursor;

    public BatchSampler(int[] labeled, int[] unlabeled, int labeledBatch, int unlabeledBatch, int seed)
    {
        _labeled = (int[])labeled.Clone();
        _unlabeled = (int[])unlabeled.Clone();
        _labeledBatch = Math.Min(labeledBatch, labeled.Length);
        _unlabeledBatch = Math.Max(1, Math.Min(unlabeledBatch, unlabeled.Length)); // never more than there are rows
        _random = new Random(seed);
        _random.Shuffle(_labeled);
    }

    public int StepsPerEpoch => _unlabeled.Length > 0
        ? (_unlabeled.Length + _unlabeledBatch - 1) / _unlabeledBatch
        : (_labeled.Length + _labeledBatch - 1) / _labeledBatch;

    /// <summary>The batches of one epoch: (labeled rows, unlabeled rows) per step.</summary>
    public IEnumerable<(int[] Labeled, int[] Unlabeled)> Epoch()
    {
        _random.Shuffle(_unlabeled);
        for (int step = 0; step < StepsPerEpoch; step++)
        {
            int[] unl = _unlabeled.Length == 0
                ? []
                : _unlabeled.AsSpan(step * _unlabeledBatch, Math.Min(_unlabeledBatch, _unlabeled.Length - step * _unlabeledBatch)).ToArray();
            yield return (NextLabeled(), unl);
        }
    }

    private int[] NextLabeled()
    {
        var batch = new int[_labeledBatch];
        for (int i = 0; i < batch.Length; i++)
        {
            if (_labeledCursor == _labeled.Length)
            {
                _random.Shuffle(_labeled);
                _labeledCursor = 0;
            }
            batch[i] = _labeled[_labeledCursor++];
        }
        return batch;
    }
}
