using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

/// <summary>
/// A saved model as <see cref="DualHeadModel.Load(MLContext, string, out DataViewSchema)"/> returns it: ML.NET's own
/// transformer chain (OnnxTransformer + key mapping), kept with the verified zip bytes. ML.NET's PredictionEngine
/// disposes the transformer it was created from, and a disposed OnnxTransformer breaks every other engine on it.
/// Here each loaded chain is a <see cref="Generation"/> with a count of users (engine rows, open cursors):
/// <see cref="Dispose"/> retires the current one — disposed at once when unused, else when its last user moves
/// on — and the next use loads a new one from the bytes. So disposing one engine, even while another scores on
/// another thread, leaves the others, open cursors and <see cref="Transform"/> working.
/// </summary>
internal sealed class ReloadableModel : ITransformer, ICanSaveModel, IDisposable
{
    private readonly MLContext _ml;
    private readonly byte[] _zip;
    private readonly object _lock = new();
    private Generation? _current;

    public ReloadableModel(MLContext ml, byte[] zip, ITransformer loaded)
    {
        _ml = ml;
        _zip = zip;
        _current = new Generation(loaded);
    }

    /// <summary>One loaded chain and how many rows and cursors use it.</summary>
    internal sealed class Generation(ITransformer chain)
    {
        public ITransformer Chain { get; } = chain;
        public int Users;
        public bool Retired;
    }

    /// <summary>The current chain (loaded again after <see cref="Dispose"/>), counted as used until <see cref="Release"/>.</summary>
    internal Generation Acquire()
    {
        lock (_lock)
        {
            _current ??= new Generation(_ml.Model.Load(new MemoryStream(_zip, writable: false), out _));
            _current.Users++;
            return _current;
        }
    }

    internal void Release(Generation generation)
    {
        lock (_lock)
        {
            if (--generation.Users == 0 && generation.Retired) DisposeChain(generation);
        }
    }

    internal bool IsCurrent(Generation generation) => ReferenceEquals(Volatile.Read(ref _current), generation);

    private T With<T>(Func<ITransformer, T> use)
    {
        var generation = Acquire();
        try
        {
            return use(generation.Chain);
        }
        finally
        {
            Release(generation);
        }
    }

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => With(chain => chain.GetOutputSchema(inputSchema));

    /// <summary>A view whose cursors each hold the chain they started with until they are disposed.</summary>
    public IDataView Transform(IDataView input) => new LeasedView(this, input, GetOutputSchema(input.Schema));

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new Mapper(this, inputSchema);

    void ICanSaveModel.Save(ModelSaveContext ctx) => With(chain => { ((ICanSaveModel)chain).Save(ctx); return 0; });

    /// <summary>Retires the current chain: its native session is released now, or when its last user moves on. Never throws.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_current is not { } generation) return;
            _current = null;
            generation.Retired = true;
            if (generation.Users == 0) DisposeChain(generation);
        }
    }

    private static void DisposeChain(Generation generation)
    {
        try
        {
            (generation.Chain as IDisposable)?.Dispose();
        }
        catch (Exception)
        {
            // Dispose never throws; the chain is dropped either way.
        }
    }

    /// <summary>Row mapping that follows the model across reloads: each row rebinds to the current chain when it changed.</summary>
    private sealed class Mapper : IRowToRowMapper
    {
        private readonly ReloadableModel _model;

        public Mapper(ReloadableModel model, DataViewSchema inputSchema)
        {
            _model = model;
            InputSchema = inputSchema;
            (OutputSchema, _dependencies) = model.With(chain =>
            {
                var mapper = chain.GetRowToRowMapper(inputSchema);
                return (mapper.OutputSchema, (Func<IEnumerable<DataViewSchema.Column>, IEnumerable<DataViewSchema.Column>>)(c => mapper.GetDependencies(c).ToArray()));
            });
        }

        private readonly Func<IEnumerable<DataViewSchema.Column>, IEnumerable<DataViewSchema.Column>> _dependencies;

        public DataViewSchema InputSchema { get; }
        public DataViewSchema OutputSchema { get; }

        public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns) => _dependencies(dependingColumns);

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
            => new Row(_model, InputSchema, OutputSchema, input, activeColumns.ToArray());
    }

    private sealed class Row : DataViewRow
    {
        private readonly ReloadableModel _model;
        private readonly DataViewSchema _inputSchema;
        private readonly DataViewRow _input;
        private readonly DataViewSchema.Column[] _active;
        private readonly Delegate?[] _getters;
        private Generation? _generation;
        private DataViewRow _inner = null!;

        public Row(ReloadableModel model, DataViewSchema inputSchema, DataViewSchema schema, DataViewRow input, DataViewSchema.Column[] active)
        {
            _model = model;
            _inputSchema = inputSchema;
            Schema = schema;
            _input = input;
            _active = active;
            _getters = new Delegate?[schema.Count];
            Rebind();
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _inner.IsColumnActive(_inner.Schema[column.Index]);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int index = column.Index;
            _getters[index] = _inner.GetGetter<TValue>(_inner.Schema[index]); // fails now, as ML.NET would, for a wrong type
            return (ref TValue value) =>
            {
                if (!_model.IsCurrent(_generation!)) Rebind();
                var getter = (ValueGetter<TValue>)(_getters[index] ??= _inner.GetGetter<TValue>(_inner.Schema[index]));
                getter(ref value);
            };
        }

        /// <summary>Moves to the current chain: a new inner row on it, then the old row and chain are let go.</summary>
        private void Rebind()
        {
            var generation = _model.Acquire();
            var mapper = generation.Chain.GetRowToRowMapper(_inputSchema);
            var inner = mapper.GetRow(_input, _active.Select(c => mapper.OutputSchema[c.Index]));
            var (oldInner, oldGeneration) = (_inner, _generation);
            (_inner, _generation) = (inner, generation);
            Array.Clear(_getters);
            oldInner?.Dispose();
            if (oldGeneration is not null) _model.Release(oldGeneration);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && _generation is { } generation)
            {
                _generation = null;
                _inner.Dispose();
                _model.Release(generation);
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>The result of <see cref="Transform"/>: each cursor takes the current chain and keeps it until disposed.</summary>
    private sealed class LeasedView(ReloadableModel model, IDataView input, DataViewSchema schema) : IDataView
    {
        public DataViewSchema Schema => schema;
        public bool CanShuffle => input.CanShuffle;
        public long? GetRowCount() => input.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            var generation = model.Acquire();
            try
            {
                var view = generation.Chain.Transform(input);
                var inner = view.GetRowCursor(columnsNeeded.Select(c => view.Schema[c.Index]).ToArray(), rand);
                return new LeasedCursor(model, generation, schema, inner);
            }
            catch
            {
                model.Release(generation);
                throw;
            }
        }

        // One cursor: a consumer may get fewer cursors than it asked for.
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
            => [GetRowCursor(columnsNeeded, rand)];
    }

    private sealed class LeasedCursor(ReloadableModel model, Generation generation, DataViewSchema schema, DataViewRowCursor inner) : DataViewRowCursor
    {
        private bool _released;

        public override DataViewSchema Schema => schema;
        public override long Position => inner.Position;
        public override long Batch => inner.Batch;
        public override bool MoveNext() => inner.MoveNext();
        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => inner.IsColumnActive(inner.Schema[column.Index]);
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => inner.GetGetter<TValue>(inner.Schema[column.Index]);

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_released)
            {
                _released = true;
                inner.Dispose();
                model.Release(generation);
            }
            base.Dispose(disposing);
        }
    }
}
