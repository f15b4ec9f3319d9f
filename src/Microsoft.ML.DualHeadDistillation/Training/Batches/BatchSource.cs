using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Training.Batches;

/// <summary>The training rows read by Fit, as a batch source sees them (read-only).</summary>
public sealed class TrainingRows
{
    private readonly TrainingSet _set;

    internal TrainingRows(TrainingSet set)
    {
        _set = set;
        LabeledIndices = set.LabeledIndices();
        UnlabeledIndices = set.UnlabeledIndices();
    }

    public int Rows => _set.Rows;
    /// <summary>D, values per feature row.</summary>
    public int FeatureSize => _set.FeatureSize;
    /// <summary>K, classes (teacher logits per row).</summary>
    public int ClassCount => _set.ClassCount;
    public int LabeledRows => _set.LabeledRows;
    public int UnlabeledRows => _set.UnlabeledRows;
    /// <summary>True when the rows carry teacher logits.</summary>
    public bool HasTeacher => _set.Teacher.Length > 0;
    /// <summary>Row indices with a label, in row order.</summary>
    public IReadOnlyList<int> LabeledIndices { get; }
    /// <summary>Row indices without a label, in row order.</summary>
    public IReadOnlyList<int> UnlabeledIndices { get; }

    public ReadOnlySpan<float> Features(int row) => _set.Features.AsSpan(row * FeatureSize, FeatureSize);
    /// <summary>Teacher logits of a row in class order (empty without a teacher).</summary>
    public ReadOnlySpan<float> Teacher(int row) => HasTeacher ? _set.Teacher.AsSpan(row * ClassCount, ClassCount) : [];
    /// <summary>The row's 0-based class, or -1 when unlabeled.</summary>
    public int Label(int row) => _set.Labels[row];
}

/// <summary>
/// One step's rows: <see cref="LabeledRows"/> labeled rows first, then the unlabeled ones. The arrays may be
/// reused by the source for the next batch: a batch is valid until the next one is requested.
/// </summary>
public sealed class TrainingBatch
{
    public TrainingBatch(float[] features, float[] teacher, long[] labels, int rows)
    {
        Features = features;
        Teacher = teacher;
        Labels = labels;
        Rows = rows;
    }

    /// <summary>[Rows, D] features, row-major (at least Rows*D values).</summary>
    public float[] Features { get; }
    /// <summary>[Rows, K] teacher logits, or empty when the objective uses no teacher.</summary>
    public float[] Teacher { get; }
    /// <summary>0-based classes of the labeled rows (its length is <see cref="LabeledRows"/>).</summary>
    public long[] Labels { get; }
    public int LabeledRows => Labels.Length;
    public int Rows { get; }
}

/// <summary>What a batch source is created with.</summary>
/// <param name="Rows">The training rows.</param>
/// <param name="Spec">Batch sizes and the source's settings.</param>
/// <param name="Seed">The run's seed (a resumed run replays the same batches).</param>
/// <param name="WithTeacher">Whether batches carry teacher logits.</param>
/// <param name="WithUnlabeledRows">Whether batches carry unlabeled rows (false for labels-only objectives: same steps, labeled rows only).</param>
public sealed record BatchSourceContext(TrainingRows Rows, BatchSpec Spec, int Seed, bool WithTeacher, bool WithUnlabeledRows);

/// <summary>The batches of a run, epoch by epoch. Deterministic for a seed: resuming skips finished epochs and gets the same later ones.</summary>
public abstract class BatchSource
{
    /// <summary>Steps of every epoch.</summary>
    public abstract int StepsPerEpoch { get; }
    /// <summary>The next epoch's batches, in order.</summary>
    public abstract IEnumerable<TrainingBatch> NextEpoch();
    /// <summary>Advances past one epoch without producing it (resume); by default produces and drops it.</summary>
    public virtual void SkipEpoch()
    {
        foreach (var _ in NextEpoch()) { }
    }
}

/// <summary>
/// A registered batch source: makes the <see cref="BatchSpec"/> from the options and the <see cref="BatchSource"/>
/// of a run. Named by <see cref="DualHeadDistillOptions.BatchSource"/>.
/// </summary>
public abstract class BatchSourceDefinition : IDualHeadComponent
{
    /// <inheritdoc/>
    public abstract string Name { get; }
    /// <inheritdoc/>
    public abstract string Summary { get; }

    /// <summary>The spec from the options; override to check or fold settings.</summary>
    public virtual BatchSpec Resolve(int labeledBatchSize, int unlabeledBatchSize, SpecSettings settings) => new(Name, labeledBatchSize, unlabeledBatchSize, settings);

    /// <summary>The batches of one run.</summary>
    public abstract BatchSource Create(BatchSourceContext context);

    public override string ToString() => $"{Name}: {Summary}";
}
