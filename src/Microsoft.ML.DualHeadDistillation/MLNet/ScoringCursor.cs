using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Inference;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>Scores <see cref="DualHeadDistillTransformer.ScoringBatchSize"/> rows per ONNX Runtime call.</summary>
internal sealed class ScoringCursor : BatchedCursor
{
    private readonly DualHeadDistillTransformer _model;
    private readonly OnnxStudentScorer _scorer;
    private readonly FeatureInput.RowReader _features;
    private readonly int _d, _k;
    private readonly RowOutputs _outputs;
    private readonly float[] _x, _score, _ce, _kd;
    private readonly long[] _predicted;

    public ScoringCursor(DualHeadDistillTransformer model, DataViewSchema schema, DataViewRowCursor input, DataViewRowCursor? ahead, DataViewSchema.Column feature)
        : base(schema, input, ahead, model.ScoringBatchSize)
    {
        _model = model;
        _scorer = model.AcquireOnnxScorer(); // held until the cursor is disposed, even if the model is
        _d = model.InputSize;
        _k = model.ClassNames.Count;
        _outputs = new RowOutputs(_k);
        _x = new float[BatchSize * _d];
        _score = new float[BatchSize * _k];
        _ce = new float[BatchSize * _k];
        _kd = new float[BatchSize * _k];
        _predicted = new long[BatchSize];
        _features = model.FeatureReader(Source.Schema).Bind(Source);
    }

    protected override Delegate OutputGetter(int outputIndex, Type requested, DataViewSchema.Column column)
        => _outputs.Getter(outputIndex, requested, Ensure, column.Name);

    protected override void ReadRow(int slot)
    {
        _features.Read(Row + slot, _x.AsSpan(slot * _d, _d));
    }

    protected override void ComputeBatch(int rows)
    {
        _scorer.Score(_x, rows, _score, _ce, _kd, _predicted);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_released)
        {
            _released = true;
            _scorer.Release();
        }
        base.Dispose(disposing);
    }

    private bool _released;

    protected override void ExposeRow(int slot)
        => _outputs.Set(_score.AsSpan(slot * _k, _k), _ce.AsSpan(slot * _k, _k), _kd.AsSpan(slot * _k, _k), _predicted[slot]);
}
