using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.MLNet;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>Counts of teacher work, for checking that soft labels are computed once.</summary>
public sealed class TeacherStatistics
{
    private long _computed, _hits, _batches, _ticks;
    /// <summary>Rows the teacher model ran on.</summary>
    public long RowsComputed => Interlocked.Read(ref _computed);
    /// <summary>Rows answered from the on-disk cache.</summary>
    public long CacheHits => Interlocked.Read(ref _hits);
    /// <summary>ONNX Runtime calls.</summary>
    public long Batches => Interlocked.Read(ref _batches);
    /// <summary>Seconds spent in the teacher (preprocessing excluded).</summary>
    public double Seconds => TimeSpan.FromTicks(Interlocked.Read(ref _ticks)).TotalSeconds;

    internal void Add(long computed, long hits, long batches, TimeSpan time)
    {
        Interlocked.Add(ref _computed, computed);
        Interlocked.Add(ref _hits, hits);
        Interlocked.Add(ref _batches, batches);
        Interlocked.Add(ref _ticks, time.Ticks);
    }

    public void Reset()
    {
        Interlocked.Exchange(ref _computed, 0);
        Interlocked.Exchange(ref _hits, 0);
        Interlocked.Exchange(ref _batches, 0);
        Interlocked.Exchange(ref _ticks, 0);
    }

    public override string ToString() => $"{RowsComputed} rows computed in {Batches} batches ({Seconds:0.00}s), {CacheHits} cache hits";
}

/// <summary>
/// Adds a column of K teacher logits computed by an ONNX teacher in batches (any classifier, or a CLIP-style
/// zero-shot teacher). Slot names are the class names. Owns an ONNX Runtime session: dispose it when done.
/// The teacher is for training pipelines: it has no row-to-row mapper, so leave it out of prediction engines.
/// </summary>
public sealed class TeacherSoftLabelsTransformer : ITransformer, IDisposable
{
    private readonly TeacherRunner _runner;
    private readonly TeacherOptionsBase _options;
    private readonly SoftLabelCache? _cache;
    private readonly IHost? _host;
    private readonly List<string> _warnings = new();
    private bool _disposed;

    internal TeacherSoftLabelsTransformer(TeacherRunner runner, TeacherOptionsBase options, IReadOnlyList<string>? classNames, TeacherPreprocessing? preprocessing, IHostEnvironment? env = null)
    {
        _runner = runner;
        _options = options;
        _host = env?.Register("TeacherSoftLabels");
        ClassNames = classNames;
        Preprocessing = preprocessing;
        EmbeddingColumnName = options is ZeroShotTeacherOptions { EmbeddingColumnName: { } embedding } ? embedding : null;
        var description = System.Text.Encoding.UTF8.GetBytes($"{preprocessing?.Describe() ?? "none"}|{string.Join("\u001f", classNames ?? [])}");
        Fingerprint = SoftLabelCache.Fingerprint([.. runner.FingerprintParts(), description]);
        if (options.CacheDirectory is { } dir) _cache = SoftLabelCache.Open(dir, Fingerprint, runner.ClassCount, Warn);
    }

    /// <summary>Sends a warning to MLContext.Log (when the transform was created from a catalog) and keeps it in <see cref="CacheWarnings"/>.</summary>
    private void Warn(string message)
    {
        lock (_warnings)
        {
            if (_warnings.Contains(message)) return; // e.g. the same failed write from a cursor's and the transformer's Dispose
            _warnings.Add(message);
        }
        if (_host is null) return;
        try
        {
            using var channel = _host.Start("SoftLabelCache");
            channel.Warning(MessageSensitivity.None, message);
        }
        catch (Exception)
        {
            // Logging must not turn a warning into a failure (Dispose never throws); the warning is kept above.
        }
    }

    /// <summary>K, the number of logits per row.</summary>
    public int ClassCount => _runner.ClassCount;
    /// <summary>Class names in output order (the output's slot names), if known.</summary>
    public IReadOnlyList<string>? ClassNames { get; }
    /// <summary>The preprocessing in effect (options, else the model's metadata).</summary>
    public TeacherPreprocessing? Preprocessing { get; }
    public string InputColumnName => _options.InputColumnName;
    public string OutputColumnName => _options.OutputColumnName;
    /// <summary>"CPU" or "CUDA".</summary>
    public string ExecutionProvider => _runner.Session.Provider;
    /// <summary>
    /// The teacher's identity (hex SHA-256 of the model files, the preprocessing, the class names and, for a zero-shot
    /// teacher, the class embeddings made from the prompts and the logit scale): the soft-label cache's file name and the
    /// fingerprint a soft-label set records. Same fingerprint, same logits for the same image.
    /// </summary>
    public string Fingerprint { get; }
    /// <summary>The column of L2-normalised image embeddings (a zero-shot teacher with <see cref="ZeroShotTeacherOptions.EmbeddingColumnName"/>), else null.</summary>
    public string? EmbeddingColumnName { get; }
    /// <summary>E, the embedding size, when <see cref="EmbeddingColumnName"/> is set (else 0).</summary>
    public int EmbeddingSize => EmbeddingColumnName is null ? 0 : _runner.EmbeddingSize;
    /// <summary>The cache file, if a cache is used (null without CacheDirectory, or when the folder cannot be written).</summary>
    public string? CacheFile => _cache?.FilePath;
    /// <summary>
    /// Warnings about the soft-label cache (folder not writable, damaged or foreign file, entries that could not
    /// be written), in order; each also goes to MLContext.Log. Each names the file or folder.
    /// </summary>
    public IReadOnlyList<string> CacheWarnings { get { lock (_warnings) return _warnings.ToArray(); } }
    public TeacherStatistics Statistics { get; } = new();

    public bool IsRowToRowMapper => false;

    internal TeacherInputReader CreateReader(DataViewSchema schema)
        => TeacherInputReader.Create(schema, _options.InputColumnName, Preprocessing, _runner.ModelRowDims, _runner.Session.Path);

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CreateReader(inputSchema);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        var annotations = new DataViewSchema.Annotations.Builder();
        if (ClassNames is { } names)
        {
            var memory = names.Select(n => n.AsMemory()).ToArray();
            annotations.Add(VectorColumn.SlotNamesKind, new VectorDataViewType(TextDataViewType.Instance, memory.Length),
                (ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(memory.Length, (ReadOnlyMemory<char>[])memory.Clone()));
        }
        builder.AddColumn(_options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, ClassCount), annotations.ToAnnotations());
        if (EmbeddingColumnName is { } embedding) builder.AddColumn(embedding, new VectorDataViewType(NumberDataViewType.Single, EmbeddingSize));
        return builder.ToSchema();
    }

    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new TeacherDataView(this, input);
    }

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        throw new NotSupportedException("The teacher transform works on whole batches and has no row-to-row mapper: use it in training pipelines and leave it out of the pipeline given to a PredictionEngine.");

    /// <summary>
    /// The teacher is needed only for training: a saved pipeline keeps its place as an empty step (ML.NET's own
    /// empty TransformerChain), so the loaded model runs the student without the teacher and has no teacher
    /// column. Keep the teacher's ONNX file and recreate the transform to train again.
    /// </summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => ((ICanSaveModel)new TransformerChain<ITransformer>()).Save(ctx);

    /// <summary>Runs a batch, answering cached rows from the cache; <paramref name="keys"/> is empty without a cache.</summary>
    internal void Compute(float[] inputs, int rows, int[] rowShape, ReadOnlySpan<byte> keys, float[] logits, float[] missInputs, float[] missLogits, float[]? embeddings = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int k = ClassCount, size = rowShape.Aggregate(1, (a, b) => a * b);
        var watch = Stopwatch.StartNew();
        if (_cache is null)
        {
            _runner.Run(inputs, rows, rowShape, logits);
            if (embeddings is not null) _runner.CopyEmbeddings(rows, embeddings);
            Statistics.Add(rows, 0, 1, watch.Elapsed);
            return;
        }
        var missList = new List<int>(rows);
        for (int r = 0; r < rows; r++)
            if (!_cache.TryGet(keys.Slice(r * 32, 32), logits.AsSpan(r * k, k))) missList.Add(r);
        if (missList.Count > 0)
        {
            for (int m = 0; m < missList.Count; m++) inputs.AsSpan(missList[m] * size, size).CopyTo(missInputs.AsSpan(m * size, size));
            _runner.Run(missInputs, missList.Count, rowShape, missLogits);
            for (int m = 0; m < missList.Count; m++)
            {
                var values = missLogits.AsSpan(m * k, k);
                values.CopyTo(logits.AsSpan(missList[m] * k, k));
                _cache.Add(keys.Slice(missList[m] * 32, 32), values);
            }
        }
        Statistics.Add(missList.Count, rows - missList.Count, missList.Count > 0 ? 1 : 0, watch.Elapsed);
    }

    internal bool UsesCache => _cache is not null;
    /// <summary>What determines this teacher's outputs besides the input (model, names, preprocessing, output column), for fingerprints.</summary>
    internal byte[][] IdentityParts() =>
        [.. Runner.FingerprintParts(), System.Text.Encoding.UTF8.GetBytes($"{Preprocessing?.Describe() ?? "none"}|{string.Join("\u001f", ClassNames ?? [])}|{OutputColumnName}")];

    /// <summary>The teacher model (the trainer runs it on crops for SameCropOnline and CachedViews).</summary>
    internal TeacherRunner Runner
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _runner;
        }
    }
    internal int BatchSize => _options.BatchSize;

    /// <summary>Writes new cache entries; a failure becomes a warning (the rows are recomputed next time), never an exception.</summary>
    internal void FlushCache()
    {
        if (_cache is null) return;
        try
        {
            _cache.Flush();
        }
        catch (Exception e)
        {
            Warn(e is IOException && e.Message.Contains(_cache.FilePath, StringComparison.Ordinal)
                ? $"{e.Message} They will be recomputed next time."
                : $"Soft-label cache '{_cache.FilePath}': new entries could not be written ({e.GetType().Name}: {e.Message}). They will be recomputed next time.");
        }
    }

    /// <summary>Writes the cache (failures are logged, see <see cref="CacheWarnings"/>) and always releases the ONNX Runtime session. Never throws.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        FlushCache();
        _disposed = true;
        try
        {
            _runner.Dispose();
        }
        catch (Exception e)
        {
            Warn($"Teacher model '{_runner.Session.Path}': releasing the ONNX Runtime session failed ({e.GetType().Name}: {e.Message}).");
        }
    }

    /// <summary>True once the ONNX Runtime session is released.</summary>
    internal bool SessionReleased => _runner.Session.IsDisposed;
}

/// <summary>The teacher's lazily computed view.</summary>
internal sealed class TeacherDataView : BatchedDataView
{
    private readonly TeacherSoftLabelsTransformer _teacher;

    public TeacherDataView(TeacherSoftLabelsTransformer teacher, IDataView input)
        : base(input, teacher.GetOutputSchema(input.Schema), teacher.InputColumnName)
        => _teacher = teacher;

    protected override DataViewRowCursor CreateCursor(DataViewRowCursor main, DataViewRowCursor? ahead, DataViewSchema.Column source)
        => new TeacherCursor(_teacher, Schema, main, ahead, _teacher.CreateReader(Input.Schema));
}

/// <summary>Reads a batch of teacher inputs ahead, runs the teacher once per batch, exposes each row's logits.</summary>
internal sealed class TeacherCursor : BatchedCursor
{
    private readonly TeacherSoftLabelsTransformer _teacher;
    private readonly TeacherInputReader _reader;
    private TeacherInputReader.Bound? _bound; // bound on first use: a cursor that never reads the teacher column need not have its input active
    private readonly int[] _rowShape;
    private readonly int _rowSize, _k;
    private readonly float[] _inputs, _logits, _missInputs, _missLogits, _current;
    private readonly float[]? _embeddings, _currentEmbedding; // [batch, E] and the current row's, with an embedding column
    private readonly byte[] _keys;

    public TeacherCursor(TeacherSoftLabelsTransformer teacher, DataViewSchema schema, DataViewRowCursor input, DataViewRowCursor? ahead, TeacherInputReader reader)
        : base(schema, input, ahead, teacher.BatchSize)
    {
        _teacher = teacher;
        _reader = reader;
        _rowShape = reader.RowShape;
        _rowSize = reader.RowSize;
        _k = teacher.ClassCount;
        _inputs = new float[BatchSize * _rowSize];
        _logits = new float[BatchSize * _k];
        _current = new float[_k];
        _keys = teacher.UsesCache ? new byte[BatchSize * 32] : [];
        _missInputs = teacher.UsesCache ? new float[BatchSize * _rowSize] : [];
        _missLogits = teacher.UsesCache ? new float[BatchSize * _k] : [];
        if (teacher.EmbeddingSize > 0)
        {
            _embeddings = new float[BatchSize * teacher.EmbeddingSize];
            _currentEmbedding = new float[teacher.EmbeddingSize];
        }
    }

    protected override void ReadRow(int slot)
        => (_bound ??= _reader.Bind(Source)).Read(Row + slot, _inputs.AsSpan(slot * _rowSize, _rowSize), _keys.Length == 0 ? [] : _keys.AsSpan(slot * 32, 32));

    protected override void ComputeBatch(int rows) => _teacher.Compute(_inputs, rows, _rowShape, _keys, _logits, _missInputs, _missLogits, _embeddings);

    protected override void ExposeRow(int slot)
    {
        _logits.AsSpan(slot * _k, _k).CopyTo(_current);
        if (_currentEmbedding is { } current) _embeddings.AsSpan(slot * current.Length, current.Length).CopyTo(current);
    }

    protected override Delegate OutputGetter(int outputIndex, Type requested, DataViewSchema.Column column)
    {
        if (requested != typeof(VBuffer<float>))
            throw new InvalidOperationException($"Column '{column.Name}' holds vectors of Single; a getter of {requested.Name} was requested.");
        var source = outputIndex == 0 ? _current : _currentEmbedding!;
        return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
        {
            Ensure();
            var editor = VBufferEditor.Create(ref value, source.Length);
            source.CopyTo(editor.Values);
            value = editor.Commit();
        });
    }

    protected override void Dispose(bool disposing)
    {
        try
        {
            if (disposing) _teacher.FlushCache(); // never throws: a failed write is a warning
        }
        finally
        {
            base.Dispose(disposing);
        }
    }
}
