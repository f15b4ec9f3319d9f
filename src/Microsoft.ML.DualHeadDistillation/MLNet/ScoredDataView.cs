using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>The lazily scored view returned by <see cref="DualHeadDistillTransformer.Transform"/>.</summary>
internal sealed class ScoredDataView : IDataView
{
    private readonly DualHeadDistillTransformer _model;
    private readonly IDataView _input;

    public ScoredDataView(DualHeadDistillTransformer model, IDataView input)
    {
        _model = model;
        _input = input;
        Schema = model.GetOutputSchema(input.Schema);
    }

    public bool CanShuffle => _input.CanShuffle;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToList();
        int inputCount = _input.Schema.Count;
        bool anyOutput = needed.Any(c => c.Index >= inputCount);
        var inputNeeded = needed.Where(c => c.Index < inputCount).Select(c => _input.Schema[c.Index]).ToList();
        var feature = _input.Schema[_model.FeatureColumnName];

        // Unshuffled: a second cursor reads the features ahead so the student runs on whole batches.
        // Shuffled: the order of a second cursor is not guaranteed to match, so rows are scored one by one.
        bool lookahead = anyOutput && rand is null;
        if (anyOutput && !lookahead && !inputNeeded.Contains(feature)) inputNeeded.Add(feature);
        var main = _input.GetRowCursor(inputNeeded, rand);
        var ahead = lookahead ? _input.GetRowCursor([feature]) : null;
        return new ScoringCursor(_model, Schema, main, ahead, feature, inputCount);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => [GetRowCursor(columnsNeeded, rand)];
}
