using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>
/// An IDataView that passes the input's columns through and appends columns computed from one input column
/// in batches. Unshuffled cursors read that column ahead through a second cursor so a whole batch goes
/// to the model at once; shuffled cursors compute row by row (a second cursor's order is not guaranteed
/// to match a shuffled one).
/// </summary>
internal abstract class BatchedDataView : IDataView
{
    private readonly string _sourceColumn;

    protected BatchedDataView(IDataView input, DataViewSchema schema, string sourceColumn)
    {
        Input = input;
        Schema = schema;
        _sourceColumn = sourceColumn;
    }

    protected IDataView Input { get; }
    public bool CanShuffle => Input.CanShuffle;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => Input.GetRowCount();

    /// <summary>Creates the cursor; <paramref name="ahead"/> is null when rows are computed one by one.</summary>
    protected abstract DataViewRowCursor CreateCursor(DataViewRowCursor main, DataViewRowCursor? ahead, DataViewSchema.Column source);

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToList();
        int inputCount = Input.Schema.Count;
        bool anyOutput = needed.Any(c => c.Index >= inputCount);
        var inputNeeded = needed.Where(c => c.Index < inputCount).Select(c => Input.Schema[c.Index]).ToList();
        var source = Input.Schema[_sourceColumn];
        bool lookahead = anyOutput && rand is null;
        if (anyOutput && !lookahead && !inputNeeded.Contains(source)) inputNeeded.Add(source);
        var main = Input.GetRowCursor(inputNeeded, rand);
        var ahead = lookahead ? Input.GetRowCursor([source]) : null;
        return CreateCursor(main, ahead, source);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => [GetRowCursor(columnsNeeded, rand)];
}

/// <summary>
/// The cursor of a <see cref="BatchedDataView"/>: input columns pass through; the first getter call on a
/// row not yet computed reads the next batch of source values (<see cref="ReadRow"/>), computes it
/// (<see cref="ComputeBatch"/>), and exposes the row (<see cref="ExposeRow"/>).
/// </summary>
internal abstract class BatchedCursor : DataViewRowCursor
{
    private readonly DataViewRowCursor _input;
    private readonly DataViewRowCursor? _ahead;
    private long _row = -1, _computed = -1, _bufferStart, _bufferCount;

    protected BatchedCursor(DataViewSchema schema, DataViewRowCursor input, DataViewRowCursor? ahead, int batchSize)
    {
        Schema = schema;
        _input = input;
        _ahead = ahead;
        InputCount = input.Schema.Count;
        BatchSize = ahead is null ? 1 : batchSize;
    }

    public override DataViewSchema Schema { get; }
    protected int InputCount { get; }
    protected int BatchSize { get; }
    /// <summary>The cursor the source column is read from.</summary>
    protected DataViewRowCursor Source => _ahead ?? _input;
    /// <summary>0-based index of the current row; while a batch is filled, the row read into slot s is Row + s.</summary>
    protected long Row => _row;

    protected abstract void ReadRow(int slot);
    protected abstract void ComputeBatch(int rows);
    protected abstract void ExposeRow(int slot);
    protected abstract Delegate OutputGetter(int outputIndex, Type requested, DataViewSchema.Column column);

    public override long Position => _input.Position;
    public override long Batch => _input.Batch;
    public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

    public override bool MoveNext()
    {
        if (!_input.MoveNext()) return false;
        _row++;
        return true;
    }

    public override bool IsColumnActive(DataViewSchema.Column column)
        => column.Index >= InputCount || _input.IsColumnActive(_input.Schema[column.Index]);

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        => column.Index < InputCount
            ? _input.GetGetter<TValue>(_input.Schema[column.Index])
            : (ValueGetter<TValue>)OutputGetter(column.Index - InputCount, typeof(TValue), column);

    /// <summary>Makes the current row's outputs available; call first in every output getter.</summary>
    protected void Ensure()
    {
        if (_computed == _row) return;
        if (_row >= _bufferStart + _bufferCount) Fill();
        ExposeRow((int)(_row - _bufferStart));
        _computed = _row;
    }

    private void Fill()
    {
        int n = 0;
        if (_ahead is null)
        {
            ReadRow(0);
            n = 1;
        }
        else
        {
            // The look-ahead cursor has consumed exactly the rows before _bufferStart + _bufferCount.
            long skip = _row - (_bufferStart + _bufferCount);
            for (long s = 0; s < skip; s++)
                if (!_ahead.MoveNext()) throw Unrepeatable();
            while (n < BatchSize && _ahead.MoveNext()) ReadRow(n++);
            if (n == 0) throw Unrepeatable();
        }
        ComputeBatch(n);
        _bufferStart = _row;
        _bufferCount = n;
    }

    private static InvalidOperationException Unrepeatable() =>
        new("The input data returned fewer rows on a second pass; batched scoring needs an input that gives the same rows each time it is read.");

    protected override void Dispose(bool disposing)
    {
        try
        {
            if (disposing)
            {
                try { _input.Dispose(); }
                finally { _ahead?.Dispose(); }
            }
        }
        finally
        {
            base.Dispose(disposing);
        }
    }
}
