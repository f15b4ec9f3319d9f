using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Training.Batches;

/// <summary>
/// "Paired" (the default, as the DHO reference trains): each step pairs LabeledBatchSize labeled rows (cycled,
/// reshuffled whenever they run out) with UnlabeledBatchSize unlabeled rows; an epoch is one pass over the
/// unlabeled rows in a fresh seeded order (over the labeled rows when there are none). Batches are assembled by a
/// <see cref="BatchAssembler"/> one step ahead, on background workers, into arrays kept per batch shape.
/// Setting <c>max_steps</c> (BatchSourceSettings) caps an epoch at that many steps, for rows too many to pass over
/// whole: each epoch then takes the first steps of its fresh order.
/// </summary>
[DualHeadComponent]
public sealed class PairedBatchSourceDefinition : BatchSourceDefinition
{
    public override string Name => "Paired";
    public override string Summary => "Each step: labeled rows (cycled) + unlabeled rows; an epoch is one pass over the unlabeled rows (the default).";

    /// <summary>The one setting: <c>max_steps</c>, at least 1.</summary>
    public override BatchSpec Resolve(int labeledBatchSize, int unlabeledBatchSize, SpecSettings settings)
    {
        foreach (var key in settings.Keys)
            if (key != MaxSteps) throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.BatchSourceSettings), $"Batch source '{Name}' has no setting '{key}'; its only setting is '{MaxSteps}'.");
        if (settings.ContainsKey(MaxSteps) && settings.GetInt(MaxSteps, 0) < 1)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.BatchSourceSettings), $"Batch source '{Name}': '{MaxSteps}' must be at least 1.");
        return base.Resolve(labeledBatchSize, unlabeledBatchSize, settings);
    }

    private const string MaxSteps = "max_steps";

    public override BatchSource Create(BatchSourceContext context) => new PairedBatchSource(context);

    private sealed class PairedBatchSource : BatchSource
    {
        private readonly BatchSourceContext _context;
        private readonly BatchSampler _sampler;
        private readonly bool _unlabeled;
        private int _epoch;
        private readonly int _maxSteps;

        public PairedBatchSource(BatchSourceContext c)
        {
            _context = c;
            _unlabeled = c.WithUnlabeledRows;
            _sampler = new BatchSampler([.. c.Rows.LabeledIndices], [.. c.Rows.UnlabeledIndices], c.Spec.LabeledBatchSize, c.Spec.UnlabeledBatchSize, c.Seed);
            _maxSteps = c.Spec.Settings.ContainsKey(MaxSteps) ? c.Spec.Settings.GetInt(MaxSteps, int.MaxValue) : int.MaxValue;
            // Batches never exceed the rows there are, so huge batch-size options cost nothing.
            int maxRows = Math.Min(c.Spec.LabeledBatchSize, c.Rows.LabeledRows) + (_unlabeled ? Math.Min(c.Spec.UnlabeledBatchSize, c.Rows.UnlabeledRows) : 0);
            _ = checked(maxRows * c.Rows.FeatureSize);
        }

        public override int StepsPerEpoch => Math.Min(_sampler.StepsPerEpoch, _maxSteps);

        public override void SkipEpoch()
        {
            foreach (var _ in _sampler.Epoch().Take(StepsPerEpoch)) { }
            _epoch++;
        }

        public override IEnumerable<TrainingBatch> NextEpoch()
        {
            int epoch = ++_epoch;
            var steps = _sampler.Epoch().Take(StepsPerEpoch).Select(s => (s.Labeled, _unlabeled ? s.Unlabeled : [])).ToList();
            return BatchAssembler.Assemble(_context, epoch, steps);
        }
    }
}
