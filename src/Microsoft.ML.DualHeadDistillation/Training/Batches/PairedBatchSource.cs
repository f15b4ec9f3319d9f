namespace Microsoft.ML.DualHeadDistillation.Training.Batches;

/// <summary>
/// "Paired" (the default, as the DHO reference trains): each step pairs LabeledBatchSize labeled rows (cycled,
/// reshuffled whenever they run out) with UnlabeledBatchSize unlabeled rows; an epoch is one pass over the
/// unlabeled rows in a fresh seeded order (over the labeled rows when there are none). Rows are gathered from
/// memory into exact-size arrays kept per batch shape, so no array is allocated per step.
/// </summary>
[DualHeadComponent]
public sealed class PairedBatchSourceDefinition : BatchSourceDefinition
{
    public override string Name => "Paired";
    public override string Summary => "Each step: labeled rows (cycled) + unlabeled rows; an epoch is one pass over the unlabeled rows (the default).";

    public override BatchSource Create(BatchSourceContext context) => new PairedBatchSource(context);

    private sealed class PairedBatchSource : BatchSource
    {
        private readonly TrainingRows _rows;
        private readonly BatchSampler _sampler;
        private readonly bool _teacher, _unlabeled;
        private readonly Dictionary<(int Labeled, int All), TrainingBatch> _buffers = [];

        public PairedBatchSource(BatchSourceContext c)
        {
            _rows = c.Rows;
            _teacher = c.WithTeacher;
            _unlabeled = c.WithUnlabeledRows;
            _sampler = new BatchSampler([.. c.Rows.LabeledIndices], [.. c.Rows.UnlabeledIndices], c.Spec.LabeledBatchSize, c.Spec.UnlabeledBatchSize, c.Seed);
            // Batches never exceed the rows there are, so huge batch-size options cost nothing.
            int maxRows = Math.Min(c.Spec.LabeledBatchSize, c.Rows.LabeledRows) + (_unlabeled ? Math.Min(c.Spec.UnlabeledBatchSize, c.Rows.UnlabeledRows) : 0);
            _ = checked(maxRows * c.Rows.FeatureSize);
        }

        public override int StepsPerEpoch => _sampler.StepsPerEpoch;

        public override void SkipEpoch()
        {
            foreach (var _ in _sampler.Epoch()) { }
        }

        public override IEnumerable<TrainingBatch> NextEpoch()
        {
            int d = _rows.FeatureSize, k = _rows.ClassCount;
            foreach (var (labeled, all) in _sampler.Epoch())
            {
                var unlabeled = _unlabeled ? all : [];
                int nl = labeled.Length, n = nl + unlabeled.Length;
                if (!_buffers.TryGetValue((nl, n), out var batch))
                    _buffers[(nl, n)] = batch = new TrainingBatch(new float[n * d], _teacher ? new float[n * k] : [], new long[nl], n);
                int row = 0;
                foreach (int i in labeled.Concat(unlabeled))
                {
                    _rows.Features(i).CopyTo(batch.Features.AsSpan(row * d, d));
                    if (_teacher) _rows.Teacher(i).CopyTo(batch.Teacher.AsSpan(row * k, k));
                    row++;
                }
                for (int j = 0; j < nl; j++) batch.Labels[j] = _rows.Label(labeled[j]);
                yield return batch;
            }
        }
    }
}
