using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Inference;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>Row-at-a-time mapping, used by PredictionEngine.</summary>
internal sealed class ScoringRowMapper : IRowToRowMapper
{
    private readonly DualHeadDistillTransformer _model;

    public ScoringRowMapper(DualHeadDistillTransformer model, DataViewSchema inputSchema)
    {
        _model = model;
        InputSchema = inputSchema;
        OutputSchema = model.GetOutputSchema(inputSchema);
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var columns = dependingColumns.ToList();
        var result = columns.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (columns.Any(c => c.Index >= InputSchema.Count)) result.Add(InputSchema[_model.FeatureColumnName]);
        return result.Distinct();
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
        => new ScoredRow(_model, OutputSchema, input, InputSchema.Count);

    /// <summary>One scored row; the outputs are recomputed only when the row's features change.</summary>
    private sealed class ScoredRow : DataViewRow
    {
        private readonly DualHeadDistillTransformer _model;
        private readonly DataViewRow _input;
        private readonly int _inputCount;
        private readonly RowOutputs _outputs;
        private readonly FeatureInput.RowReader _features;
        private readonly float[] _x, _last, _score, _ce, _kd;
        private readonly long[] _predicted = new long[1];
        private bool _hasLast;

        public ScoredRow(DualHeadDistillTransformer model, DataViewSchema schema, DataViewRow input, int inputCount)
        {
            _model = model;
            Schema = schema;
            _input = input;
            _inputCount = inputCount;
            int d = model.InputSize, k = model.ClassNames.Count;
            _outputs = new RowOutputs(k);
            _x = new float[d];
            _last = new float[d];
            _score = new float[k];
            _ce = new float[k];
            _kd = new float[k];
            _features = model.FeatureReader(input.Schema).Bind(input);
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column)
            => column.Index >= _inputCount || _input.IsColumnActive(_input.Schema[column.Index]);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            => column.Index < _inputCount
                ? _input.GetGetter<TValue>(_input.Schema[column.Index])
                : (ValueGetter<TValue>)_outputs.Getter(column.Index - _inputCount, typeof(TValue), Ensure, column.Name);

        private void Ensure()
        {
            _features.Read(_input.Position, _x);
            var scorer = _model.AcquireOnnxScorer(); // rebuilt after the model is disposed
            try
            {
                if (_hasLast && _x.AsSpan().SequenceEqual(_last) && ReferenceEquals(scorer, _lastScorer)) return;
                scorer.Score(_x, 1, _score, _ce, _kd, _predicted);
            }
            finally
            {
                scorer.Release();
            }
            _outputs.Set(_score, _ce, _kd, _predicted[0]);
            _x.CopyTo(_last, 0);
            (_lastScorer, _hasLast) = (scorer, true);
        }

        private OnnxStudentScorer? _lastScorer;
    }
}
