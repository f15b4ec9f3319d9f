using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.MLNet;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>Options of <c>mlContext.Transforms.SoftLabelsFromSet</c>: a merged soft-label set as the teacher column.</summary>
public sealed class SoftLabelSetOptions
{
    /// <summary>The folder of the merged set (manifest.json, soft-labels.index).</summary>
    public string SetDirectory { get; set; } = "";
    /// <summary>The text column holding each row's id (or its file path, with <see cref="RowIdRoot"/>).</summary>
    public string RowIdColumnName { get; set; } = "Path";
    /// <summary>The output column: K teacher logits with the set's class names as slot names.</summary>
    public string OutputColumnName { get; set; } = DualHeadDefaults.TeacherColumnName;
    /// <summary>
    /// Null: the column holds the row ids as labeled. A folder: the column holds file paths and a row's id is its path
    /// relative to this folder with '/' separators (what <c>dualhead label --input FOLDER</c> records).
    /// </summary>
    public string? RowIdRoot { get; set; }
    /// <summary>Check the index's SHA-256 against the manifest when opening (one sequential read of the index).</summary>
    public bool VerifyIndex { get; set; } = true;
}

/// <summary>Creates a <see cref="SoftLabelSetTransformer"/>; opening the set happens in <see cref="Fit"/>.</summary>
public sealed class SoftLabelSetEstimator : IEstimator<SoftLabelSetTransformer>
{
    private readonly SoftLabelSetOptions _options;

    public SoftLabelSetEstimator(SoftLabelSetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.SetDirectory)) throw new ArgumentException("SetDirectory must name the folder of a merged soft-label set.", nameof(options));
        if (string.IsNullOrWhiteSpace(options.RowIdColumnName)) throw new ArgumentException("RowIdColumnName must name a text column.", nameof(options));
        if (string.IsNullOrWhiteSpace(options.OutputColumnName)) throw new ArgumentException("OutputColumnName must name a column.", nameof(options));
        _options = new SoftLabelSetOptions
        {
            SetDirectory = options.SetDirectory,
            RowIdColumnName = options.RowIdColumnName,
            OutputColumnName = options.OutputColumnName,
            RowIdRoot = options.RowIdRoot,
            VerifyIndex = options.VerifyIndex,
        };
    }

    public SoftLabelSetTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var set = SoftLabelSet.Open(_options.SetDirectory, _options.VerifyIndex);
        try
        {
            var transformer = new SoftLabelSetTransformer(set, _options);
            transformer.GetOutputSchema(input.Schema);
            return transformer;
        }
        catch
        {
            set.Dispose();
            throw;
        }
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        if (!SchemaShapes.TryFind(inputSchema, _options.RowIdColumnName, out var id) || id.ItemType != TextDataViewType.Instance || id.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(nameof(SoftLabelSetOptions.RowIdColumnName), $"Row id column '{_options.RowIdColumnName}' must be a text column of the input.");
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(_options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, 2)); // a SchemaShape records kinds, not sizes
        return new SchemaShape(inputSchema.Where(c => c.Name != _options.OutputColumnName).Concat(SchemaShapes.FromSchema(builder.ToSchema())));
    }
}

/// <summary>
/// Adds the teacher's logits of each row, read from a merged soft-label set by row id: the teacher input of a training
/// pipeline whose teacher ran elsewhere (a Kubernetes labeling job). A row the set does not hold is an error naming the
/// row, its id and the set. Like the teacher transforms it is for training: a saved model keeps it as an empty step.
/// </summary>
public sealed class SoftLabelSetTransformer : ITransformer, IDisposable
{
    private readonly SoftLabelSetOptions _options;

    internal SoftLabelSetTransformer(SoftLabelSet set, SoftLabelSetOptions options)
    {
        Set = set;
        _options = options;
    }

    public SoftLabelSet Set { get; }
    public IReadOnlyList<string> ClassNames => Set.ClassNames;
    public int ClassCount => Set.ClassCount;
    public string OutputColumnName => _options.OutputColumnName;
    public bool IsRowToRowMapper => false;
    /// <summary>Rows looked up so far (all cursors).</summary>
    public long Lookups => Interlocked.Read(ref _lookups);
    private long _lookups;

    internal void CountLookups(int n) => Interlocked.Add(ref _lookups, n);

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var id = inputSchema.GetColumnOrNull(_options.RowIdColumnName);
        if (id is not { } c || c.Type != TextDataViewType.Instance)
            throw new ArgumentOutOfRangeException(nameof(SoftLabelSetOptions.RowIdColumnName), $"Row id column '{_options.RowIdColumnName}' {(id is null ? "was not found in the data" : $"has type {id.Value.Type}")}; expected a text column of row ids or file paths.");
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        var memory = ClassNames.Select(n => n.AsMemory()).ToArray();
        var annotations = new DataViewSchema.Annotations.Builder();
        annotations.Add(VectorColumn.SlotNamesKind, new VectorDataViewType(TextDataViewType.Instance, memory.Length),
            (ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(memory.Length, (ReadOnlyMemory<char>[])memory.Clone()));
        builder.AddColumn(_options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, ClassCount), annotations.ToAnnotations());
        return builder.ToSchema();
    }

    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new SoftLabelSetDataView(this, input, GetOutputSchema(input.Schema), _options.RowIdColumnName);
    }

    /// <summary>The id of a row from its column value.</summary>
    internal string RowId(string value) => _options.RowIdRoot is { } root ? SoftLabelRowIds.FromPath(root, value) : SoftLabelRowIds.Normalize(value);

    internal ArgumentOutOfRangeException Missing(long row, string value, string id)
    {
        var skipped = Set.Manifest.Skipped.FirstOrDefault(s => s.RowId == id);
        if (skipped is not null)
            return new(nameof(SoftLabelSetOptions.RowIdColumnName), $"Row {row}: row id '{id}' (column '{_options.RowIdColumnName}' = '{value}') was skipped by the labeling job of soft-label set '{Set.Directory}': {skipped.Reason}. Fix or remove the image, label its shard again and merge, or leave the row out.");
        return new(nameof(SoftLabelSetOptions.RowIdColumnName), $"Row {row}: row id '{id}' (column '{_options.RowIdColumnName}' = '{value}'{(_options.RowIdRoot is { } r ? $", relative to '{r}'" : "")}) is not in soft-label set '{Set.Directory}' ({Set.Count} rows). Label that image into the set (dualhead label, then merge), or leave the row out{(_options.RowIdRoot is null ? "" : "; the ids are paths relative to RowIdRoot, check that it is the folder that was labeled")}.");
    }

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        throw new NotSupportedException("The soft-label set transform is for training pipelines; leave it out of the pipeline given to a PredictionEngine.");

    void ICanSaveModel.Save(ModelSaveContext ctx) => ((ICanSaveModel)new TransformerChain<ITransformer>()).Save(ctx);

    /// <summary>Unmaps the index.</summary>
    public void Dispose() => Set.Dispose();
}

internal sealed class SoftLabelSetDataView : BatchedDataView
{
    private readonly SoftLabelSetTransformer _owner;

    public SoftLabelSetDataView(SoftLabelSetTransformer owner, IDataView input, DataViewSchema schema, string idColumn) : base(input, schema, idColumn) => _owner = owner;

    protected override DataViewRowCursor CreateCursor(DataViewRowCursor main, DataViewRowCursor? ahead, DataViewSchema.Column source)
        => new Cursor(_owner, Schema, main, ahead, source);

    private sealed class Cursor(SoftLabelSetTransformer owner, DataViewSchema schema, DataViewRowCursor main, DataViewRowCursor? ahead, DataViewSchema.Column source)
        : BatchedCursor(schema, main, ahead, 256)
    {
        private readonly int _k = owner.ClassCount;
        private readonly float[] _batch = new float[256 * owner.ClassCount], _current = new float[owner.ClassCount];
        private ValueGetter<ReadOnlyMemory<char>>? _ids;
        private ReadOnlyMemory<char> _value;
        private int _read;

        protected override void ReadRow(int slot)
        {
            _ids ??= Source.GetGetter<ReadOnlyMemory<char>>(Source.Schema[source.Index]);
            _ids(ref _value);
            string value = _value.ToString(), id = owner.RowId(value);
            if (!owner.Set.TryGet(id, _batch.AsSpan(slot * _k, _k))) throw owner.Missing(Row + slot, value, id);
            _read++;
        }

        protected override void ComputeBatch(int rows)
        {
            owner.CountLookups(_read);
            _read = 0;
        }

        protected override void ExposeRow(int slot) => _batch.AsSpan(slot * _k, _k).CopyTo(_current);

        protected override Delegate OutputGetter(int outputIndex, Type requested, DataViewSchema.Column column)
        {
            if (requested != typeof(VBuffer<float>))
                throw new InvalidOperationException($"Column '{column.Name}' holds vectors of Single; a getter of {requested.Name} was requested.");
            return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
            {
                Ensure();
                var editor = VBufferEditor.Create(ref value, _k);
                _current.CopyTo(editor.Values);
                value = editor.Commit();
            });
        }
    }
}
