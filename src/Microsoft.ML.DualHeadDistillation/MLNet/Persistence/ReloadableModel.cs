using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

/// <summary>
/// A saved model as <see cref="DualHeadModel.Load(MLContext, string, out DataViewSchema)"/> returns it: ML.NET's own
/// transformer chain (OnnxTransformer + key mapping), kept with the verified zip bytes. ML.NET's PredictionEngine
/// disposes the transformer it was created from, and a disposed OnnxTransformer breaks every other engine on it;
/// here <see cref="Dispose"/> releases the chain's native session and the next use reloads it from the bytes, so
/// disposing one engine leaves the others and <see cref="Transform"/> working.
/// </summary>
internal sealed class ReloadableModel : ITransformer, ICanSaveModel, IDisposable
{
    private readonly MLContext _ml;
    private readonly byte[] _zip;
    private readonly object _lock = new();
    private ITransformer? _current;
    private int _generation;

    public ReloadableModel(MLContext ml, byte[] zip, ITransformer loaded)
    {
        _ml = ml;
        _zip = zip;
        _current = loaded;
    }

    /// <summary>The loaded chain (reloaded from the bytes after <see cref="Dispose"/>) and its generation.</summary>
    internal (ITransformer Chain, int Generation) Current()
    {
        lock (_lock)
        {
            _current ??= _ml.Model.Load(new MemoryStream(_zip, writable: false), out _);
            return (_current, _generation);
        }
    }

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Current().Chain.GetOutputSchema(inputSchema);

    public IDataView Transform(IDataView input) => Current().Chain.Transform(input);

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new Mapper(this, inputSchema);

    void ICanSaveModel.Save(ModelSaveContext ctx) => ((ICanSaveModel)Current().Chain).Save(ctx);

    /// <summary>Releases the ONNX Runtime session now; the model reloads itself from memory on next use. Never throws.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            try
            {
                (_current as IDisposable)?.Dispose();
            }
            catch (Exception)
            {
                // Dispose never throws; the chain is dropped either way.
            }
            _current = null;
            _generation++;
        }
    }

    /// <summary>Row mapping that follows the model across reloads: each row rebinds to the current chain when it changed.</summary>
    private sealed class Mapper(ReloadableModel model, DataViewSchema inputSchema) : IRowToRowMapper
    {
        private readonly IRowToRowMapper _first = model.Current().Chain.GetRowToRowMapper(inputSchema);

        public DataViewSchema InputSchema => inputSchema;
        public DataViewSchema OutputSchema => _first.OutputSchema;

        public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
            => _first.GetDependencies(dependingColumns);

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
            => new Row(model, inputSchema, OutputSchema, input, activeColumns.ToArray());
    }

    private sealed class Row : DataViewRow
    {
        private readonly ReloadableModel _model;
        private readonly DataViewSchema _inputSchema;
        private readonly DataViewRow _input;
        private readonly DataViewSchema.Column[] _active;
        private readonly Delegate?[] _getters;
        private DataViewRow _inner = null!;
        private int _generation = -1;

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
            _ = _inner.GetGetter<TValue>(_inner.Schema[index]); // fails now, as ML.NET would, for a wrong type
            return (ref TValue value) =>
            {
                var current = _model.Current();
                if (current.Generation != _generation) Rebind();
                var getter = (ValueGetter<TValue>)(_getters[index] ??= _inner.GetGetter<TValue>(_inner.Schema[index]));
                getter(ref value);
            };
        }

        private void Rebind()
        {
            var (chain, generation) = _model.Current();
            var mapper = chain.GetRowToRowMapper(_inputSchema);
            _inner = mapper.GetRow(_input, _active.Select(c => mapper.OutputSchema[c.Index]));
            Array.Clear(_getters);
            _generation = generation;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
