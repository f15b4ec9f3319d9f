using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>
/// Passes input columns through and computes the outputs of the row under the cursor. With a look-ahead
/// cursor it scores <see cref="DualHeadDistillTransformer.ScoringBatchSize"/> rows per forward pass.
/// </summary>
internal sealed class ScoringCursor : DataViewRowCursor
{
    private readonly DualHeadDistillTransformer _model;
    private readonly DataViewRowCursor _input;
    private readonly DataViewRowCursor? _ahead;
    private readonly ValueGetter<VBuffer<float>> _features;
    private readonly int _inputCount, _d, _k, _batch;
    private readonly float _alpha, _beta;
    private readonly RowOutputs _outputs;
    private readonly float[] _x, _ce, _kd;
    private VBuffer<float> _buffer;
    private long _row = -1, _computed = -1, _bufferStart, _bufferCount;

    public ScoringCursor(DualHeadDistillTransformer model, DataViewSchema schema, DataViewRowCursor input, DataViewRowCursor? ahead, DataViewSchema.Column feature, int inputCount)
    {
        _model = model;
        Schema = schema;
        _input = input;
        _ahead = ahead;
        _inputCount = inputCount;
        _d = model.InputSize;
        _k = model.ClassNames.Count;
        _batch = ahead is null ? 1 : model.ScoringBatchSize;
        (_alpha, _beta) = (model.Alpha, model.Beta); // one consistent setting per cursor
        _outputs = new RowOutputs(_k);
        _x = new float[_batch * _d];
        _ce = new float[_batch * _k];
        _kd = new float[_batch * _k];
        var source = ahead ?? input;
        _features = source.IsColumnActive(source.Schema[feature.Index]) ? source.GetGetter<VBuffer<float>>(source.Schema[feature.Index]) : (ref VBuffer<float> _) => { };
    }

    public override DataViewSchema Schema { get; }
    public override long Position => _input.Position;
    public override long Batch => _input.Batch;
    public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

    public override bool MoveNext()
    {
        if (!_input.MoveNext()) return false;
        _row++;
        return true;
    }

    public override bool IsColumnActive(DataViewSchema.Column column) => _outputs.IsActive(_input, _inputCount, column);

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => _outputs.GetGetter<TValue>(_input, _inputCount, column, Ensure);

    private void Ensure()
    {
        if (_computed == _row) return;
        if (_row >= _bufferStart + _bufferCount) Fill();
        long i = _row - _bufferStart;
        _outputs.Set(_ce.AsSpan((int)i * _k, _k), _kd.AsSpan((int)i * _k, _k), _alpha, _beta);
        _computed = _row;
    }

    /// <summary>Reads the features of the next batch (from the look-ahead cursor, or the current row) and scores them.</summary>
    private void Fill()
    {
        _model.ThrowIfDisposed();
        int n = 0;
        if (_ahead is null)
        {
            ReadFeatures(0);
            n = 1;
        }
        else
        {
            // The look-ahead cursor is kept exactly at the rows [_bufferStart, _bufferStart + _bufferCount).
            long skip = _row - (_bufferStart + _bufferCount);
            for (long s = 0; s < skip; s++)
                if (!_ahead.MoveNext()) throw new InvalidOperationException("The input data returned fewer rows on a second pass; DualHeadDistill scoring needs a repeatable input.");
            while (n < _batch && _ahead.MoveNext()) ReadFeatures(n++);
            if (n == 0) throw new InvalidOperationException("The input data returned fewer rows on a second pass; DualHeadDistill scoring needs a repeatable input.");
        }
        _model.Scorer.Score(_x, n, _ce, _kd);
        _bufferStart = _row;
        _bufferCount = n;
    }

    private void ReadFeatures(int slot)
    {
        _features(ref _buffer);
        if (_buffer.Length != _d)
            throw new InvalidOperationException($"Feature column '{_model.FeatureColumnName}' has {_buffer.Length} values in row {_row}; the model was trained on {_d}.");
        VectorColumn.CopyDense(_buffer, _x.AsSpan(slot * _d, _d));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _input.Dispose();
            _ahead?.Dispose();
        }
        base.Dispose(disposing);
    }
}
