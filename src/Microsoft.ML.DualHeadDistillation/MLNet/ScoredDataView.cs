namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>The lazily scored view returned by <see cref="DualHeadDistillTransformer.Transform"/>.</summary>
internal sealed class ScoredDataView : BatchedDataView
{
    private readonly DualHeadDistillTransformer _model;

    public ScoredDataView(DualHeadDistillTransformer model, IDataView input)
        : base(input, model.GetOutputSchema(input.Schema), model.FeatureColumnName)
        => _model = model;

    protected override DataViewRowCursor CreateCursor(DataViewRowCursor main, DataViewRowCursor? ahead, DataViewSchema.Column source)
        => new ScoringCursor(_model, Schema, main, ahead, source);
}
