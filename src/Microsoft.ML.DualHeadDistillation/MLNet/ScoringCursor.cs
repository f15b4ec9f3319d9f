using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>Scores <see cref="DualHeadDistillTransformer.ScoringBatchSize"/> rows per forward pass of the student.</summary>
internal sealed class ScoringCursor : BatchedCursor
{
    private readonly DualHeadDistillTransformer _model;
    private readonly ValueGetter<VBuffer<float>> _features;
    private readonly int _d, _k;
    private readonly float _alpha, _beta;
    private readonly RowOutputs _outputs;
    private readonly float[] _x, _ce, _kd;
    private VBuffer<float> _buffer;

    public ScoringCursor(DualHeadDistillTransformer model, DataViewSchema schema, DataViewRowCursor input, DataViewRowCursor? ahead, DataViewSchema.Column feature)
        : base(schema, input, ahead, model.ScoringBatchSize)
    {
        _model = model;
        _d = model.InputSize;
        _k = model.ClassNames.Count;
        (_alpha, _beta) = (model.Alpha, model.Beta); // one consistent setting per cursor
        _outputs = new RowOutputs(_k);
        _x = new float[BatchSize * _d];
        _ce = new float[BatchSize * _k];
        _kd = new float[BatchSize * _k];
        var column = Source.Schema[feature.Index];
        _features = Source.IsColumnActive(column) ? Source.GetGetter<VBuffer<float>>(column) : (ref VBuffer<float> _) => { };
    }

    protected override Delegate OutputGetter(int outputIndex, Type requested, DataViewSchema.Column column)
        => _outputs.Getter(outputIndex, requested, Ensure, column.Name);

    protected override void ReadRow(int slot)
    {
        _features(ref _buffer);
        if (_buffer.Length != _d)
            throw new InvalidOperationException($"Feature column '{_model.FeatureColumnName}' has {_buffer.Length} values in row {Row}; the model was trained on {_d}.");
        VectorColumn.CopyDense(_buffer, _x.AsSpan(slot * _d, _d));
    }

    protected override void ComputeBatch(int rows)
    {
        _model.ThrowIfDisposed();
        _model.Scorer.Score(_x, rows, _ce, _kd);
    }

    protected override void ExposeRow(int slot)
        => _outputs.Set(_ce.AsSpan(slot * _k, _k), _kd.AsSpan(slot * _k, _k), _alpha, _beta);
}
