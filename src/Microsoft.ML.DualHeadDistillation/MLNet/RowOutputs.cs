using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>One row's four output values, and the ML.NET getters that read them after an "ensure computed" call.</summary>
internal sealed class RowOutputs
{
    private readonly float[] _score, _ce, _kd;
    private uint _predicted;

    public RowOutputs(int classCount)
    {
        _score = new float[classCount];
        _ce = new float[classCount];
        _kd = new float[classCount];
    }

    /// <summary>Sets one row's probabilities and its 0-based predicted class (stored as key = class + 1).</summary>
    public void Set(ReadOnlySpan<float> score, ReadOnlySpan<float> ce, ReadOnlySpan<float> kd, long predicted)
    {
        score.CopyTo(_score);
        ce.CopyTo(_ce);
        kd.CopyTo(_kd);
        _predicted = predicted < 0 ? 0 : (uint)predicted + 1; // -1: NaN Score, no class (the missing key)
    }

    public Delegate Getter(int outputIndex, Type requested, Action ensure, string columnName)
    {
        if (outputIndex == ScoringSchema.PredictedLabelIndex)
        {
            if (requested != typeof(uint)) throw WrongType(columnName, requested, typeof(uint));
            return (ValueGetter<uint>)((ref uint value) => { ensure(); value = _predicted; });
        }
        if (requested != typeof(VBuffer<float>)) throw WrongType(columnName, requested, typeof(VBuffer<float>));
        float[] source = outputIndex switch
        {
            ScoringSchema.ScoreIndex => _score,
            ScoringSchema.CeIndex => _ce,
            _ => _kd,
        };
        return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
        {
            ensure();
            var editor = VBufferEditor.Create(ref value, source.Length);
            source.CopyTo(editor.Values);
            value = editor.Commit();
        });
    }

    private static InvalidOperationException WrongType(string column, Type requested, Type actual) =>
        new($"Column '{column}' holds {actual.Name} values; a getter of {requested.Name} was requested.");
}
