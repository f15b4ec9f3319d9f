using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Data.Images;
using Microsoft.ML.DualHeadDistillation.Training.Augmentation;
using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Training.Batches;

/// <summary>
/// The training rows read by Fit, as a batch source sees them (read-only): feature vectors in memory, or images in
/// the disk-backed sample store. <see cref="CreateReader"/> gives the sample of any row for any epoch in both cases
/// (for images: the augmented crop drawn for that row and epoch).
/// </summary>
public sealed class TrainingRows
{
    private readonly TrainingSet _set;
    private readonly ImageSampler? _sampler;

    internal TrainingRows(TrainingSet set, ImageSampler? sampler = null)
    {
        if (set.Store is not null && sampler is null) throw new ArgumentException("Store-backed rows need an image sampler.", nameof(sampler));
        _set = set;
        _sampler = sampler;
        LabeledIndices = set.LabeledIndices();
        UnlabeledIndices = set.UnlabeledIndices();
    }

    public int Rows => _set.Rows;
    /// <summary>D, values per feature row (for images: the student's input, C*H*W).</summary>
    public int FeatureSize => _set.FeatureSize;
    /// <summary>K, classes (teacher logits per row).</summary>
    public int ClassCount => _set.ClassCount;
    public int LabeledRows => _set.LabeledRows;
    public int UnlabeledRows => _set.UnlabeledRows;
    /// <summary>True when the rows carry teacher logits.</summary>
    public bool HasTeacher => _set.HasTeacher;
    /// <summary>True when the rows are images in the disk-backed store (read them with <see cref="CreateReader"/>).</summary>
    public bool IsStored => _set.Store is not null;
    /// <summary>True when a row's sample differs from epoch to epoch (image augmentation).</summary>
    public bool IsAugmented => _sampler is { } s && !s.IsIdentity;
    /// <summary>Row indices with a label, in row order.</summary>
    public IReadOnlyList<int> LabeledIndices { get; }
    /// <summary>Row indices without a label, in row order.</summary>
    public IReadOnlyList<int> UnlabeledIndices { get; }

    /// <summary>A row's features (in-memory rows only; for stored images use <see cref="CreateReader"/>).</summary>
    public ReadOnlySpan<float> Features(int row) => IsStored
        ? throw new InvalidOperationException("These rows are images in the sample store; read them with CreateReader().Write(row, epoch, ...).")
        : _set.Features.AsSpan(row * FeatureSize, FeatureSize);
    /// <summary>Teacher logits of a row in class order (empty without a teacher; in-memory rows only).</summary>
    public ReadOnlySpan<float> Teacher(int row) => IsStored
        ? throw new InvalidOperationException("These rows are images in the sample store; read them with CreateReader().Write(row, epoch, ...).")
        : HasTeacher ? _set.Teacher.AsSpan(row * ClassCount, ClassCount) : [];
    /// <summary>The row's 0-based class, or -1 when unlabeled.</summary>
    public int Label(int row) => _set.Labels[row];

    /// <summary>A reader of samples with its own buffers: use one per thread.</summary>
    public SampleReader CreateReader() => new(_set, _sampler);

    internal TrainingSet Set => _set;
    internal ImageSampler? Sampler => _sampler;
}

/// <summary>Writes the sample of a row for an epoch (features and teacher logits). Not thread-safe: one per worker.</summary>
public sealed class SampleReader
{
    private readonly TrainingSet _set;
    private readonly ImageSampler? _sampler;
    private readonly byte[] _record = [];
    private readonly ImageSampler.Scratch _scratch = new();

    internal SampleReader(TrainingSet set, ImageSampler? sampler)
    {
        _set = set;
        _sampler = sampler;
        if (set.Store is { } store) _record = new byte[store.Layout.RecordSize];
    }

    /// <summary>
    /// Writes row <paramref name="row"/>'s features for epoch <paramref name="epoch"/> (1-based) into <paramref name="features"/>
    /// (D values) and, when <paramref name="teacher"/> is not empty, its teacher logits (K values).
    /// </summary>
    public void Write(int row, int epoch, Span<float> features, Span<float> teacher)
    {
        int d = _set.FeatureSize, k = _set.ClassCount;
        if (_set.Store is not { } store)
        {
            _set.Features.AsSpan(row * d, d).CopyTo(features);
            if (!teacher.IsEmpty) _set.Teacher.AsSpan(row * k, k).CopyTo(teacher);
            return;
        }
        if (!teacher.IsEmpty && _set.OnlineTeacher is not null)
            throw new InvalidOperationException("With TeacherView SameCropOnline the teacher labels whole batches of crops: assemble batches with BatchAssembler.Assemble, which does it, and read samples with an empty teacher span.");
        store.Read(row, _record);
        var layout = store.Layout;
        _sampler!.Write(_record.AsSpan(0, layout.PixelBytes), epoch, row, features[..d], _scratch);
        if (!teacher.IsEmpty)
        {
            int view = (epoch - 1) % _set.TeacherViews; // CachedViews: the logits of the view this epoch trains on
            SampleStore.Teacher(_record, layout).Slice(view * k, k).CopyTo(teacher);
        }
    }
}

/// <summary>
/// One step's rows: <see cref="LabeledRows"/> labeled rows first, then the unlabeled ones. The arrays may be
/// reused by the source for the next batch: a batch is valid until the next one is requested.
/// </summary>
public sealed class TrainingBatch
{
    public TrainingBatch(float[] features, float[] teacher, long[] labels, int rows, int[]? rowIndices = null)
    {
        if (rowIndices is not null && rowIndices.Length < rows) throw new ArgumentException($"A batch of {rows} rows needs {rows} row indices; got {rowIndices.Length}.", nameof(rowIndices));
        Features = features;
        Teacher = teacher;
        Labels = labels;
        Rows = rows;
        RowIndices = rowIndices;
    }

    /// <summary>
    /// The training row each batch row was read from (its first <see cref="Rows"/> values), or null when the source does not
    /// say (then what depends on it, such as caching the outputs of frozen stages, is off).
    /// </summary>
    public int[]? RowIndices { get; }

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
/// <param name="Workers">Background workers assembling a batch (stored images); the batches do not depend on it.</param>
public sealed record BatchSourceContext(TrainingRows Rows, BatchSpec Spec, int Seed, bool WithTeacher, bool WithUnlabeledRows, int Workers = 1);

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
