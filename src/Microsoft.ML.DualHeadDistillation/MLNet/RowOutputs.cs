using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Inference;

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

    /// <summary>Fills the outputs from one row's head logits with the given alpha and beta.</summary>
    public void Set(ReadOnlySpan<float> ceLogits, ReadOnlySpan<float> kdLogits, float alpha, float beta)
        => _predicted = (uint)HeadCombiner.Combine(ceLogits, kdLogits, alpha, beta, _ce, _kd, _score) + 1;

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
