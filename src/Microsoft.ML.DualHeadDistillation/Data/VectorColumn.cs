using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.Data;

/// <summary>Checks that a column is a known-size vector of Single and reads its slot names.</summary>
internal static class VectorColumn
{
    public const string SlotNamesKind = "SlotNames";

    public static int RequireFloatVector(DataViewSchema schema, string columnName, string optionName, string role)
    {
        var col = schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException(optionName, $"{role} column '{columnName}' was not found in the data. Expected a known-size vector of Single.");
        if (col.Type is not VectorDataViewType vt || vt.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(optionName, $"{role} column '{columnName}' has type {col.Type}; expected a known-size vector of Single.");
        if (!vt.IsKnownSize)
            throw new ArgumentOutOfRangeException(optionName, $"{role} column '{columnName}' is a vector of unknown size; expected a known-size vector of Single.");
        return vt.Size;
    }

    public static string[]? SlotNames(DataViewSchema.Column col)
    {
        var sn = col.Annotations.Schema.GetColumnOrNull(SlotNamesKind);
        if (sn?.Type is not VectorDataViewType { ItemType: TextDataViewType }) return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        col.Annotations.GetValue(SlotNamesKind, ref names);
        var result = names.DenseValues().Select(n => n.ToString()).ToArray();
        // ML.NET fills absent names with empty strings; treat all-empty as no names.
        return result.All(string.IsNullOrEmpty) ? null : result;
    }

    /// <summary>Copies a VBuffer (dense or sparse) into a dense destination span.</summary>
    public static void CopyDense(in VBuffer<float> src, Span<float> dst)
    {
        if (src.IsDense)
        {
            src.GetValues().CopyTo(dst);
            return;
        }
        dst.Clear();
        var idx = src.GetIndices();
        var val = src.GetValues();
        for (int i = 0; i < idx.Length; i++) dst[idx[i]] = val[i];
    }
}
