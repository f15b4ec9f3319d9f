using System.Globalization;
using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.Data;

/// <summary>The label column's key type: K classes, their names, and the KeyValues annotation that the
/// fitted model copies onto PredictedLabel so that MapKeyToValue keeps working.</summary>
internal sealed class LabelInfo
{
    public const string KeyValuesKind = "KeyValues";

    public LabelInfo(string columnName, int classCount, string[] classNames, DataViewSchema.Annotations annotations)
    {
        ColumnName = columnName;
        ClassCount = classCount;
        ClassNames = classNames;
        Annotations = annotations;
    }

    public string ColumnName { get; }
    public int ClassCount { get; }
    /// <summary>Class i (0-based) is key i+1.</summary>
    public string[] ClassNames { get; }
    /// <summary>The label column's annotations, from which KeyValues is copied.</summary>
    public DataViewSchema.Annotations Annotations { get; }
    public bool HasKeyValues => Annotations.Schema.GetColumnOrNull(KeyValuesKind) != null;

    /// <summary>Validates the label column and reads its class names.</summary>
    public static LabelInfo FromSchema(DataViewSchema schema, string columnName)
    {
        var col = schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException("LabelColumnName", $"Label column '{columnName}' was not found in the data. Expected a key-typed column (use MapValueToKey); rows with a missing key are the unlabeled ones.");
        if (col.Type is not KeyDataViewType key || key.RawType != typeof(uint))
            throw new ArgumentOutOfRangeException("LabelColumnName", $"Label column '{columnName}' has type {col.Type}; expected a key of UInt32 (apply MapValueToKey to the label first).");
        if (key.Count < 2 || key.Count > int.MaxValue)
            throw new ArgumentOutOfRangeException("LabelColumnName", $"Label column '{columnName}' has {key.Count} classes; expected at least 2.");
        int k = (int)key.Count;
        return new LabelInfo(columnName, k, ReadKeyNames(col, k), col.Annotations);
    }

    /// <summary>A label whose key values are the given class names (text), as MapValueToKey on a string column gives.</summary>
    public static LabelInfo FromClassNames(string columnName, string[] classNames)
    {
        var values = classNames.Select(n => n.AsMemory()).ToArray();
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(KeyValuesKind, new VectorDataViewType(TextDataViewType.Instance, values.Length),
            (ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(values.Length, (ReadOnlyMemory<char>[])values.Clone()));
        return new LabelInfo(columnName, classNames.Length, classNames, builder.ToAnnotations());
    }

    /// <summary>Class names from the KeyValues annotation (any item type, formatted invariantly), else "0".."K-1".</summary>
    private static string[] ReadKeyNames(DataViewSchema.Column col, int k)
    {
        var kv = col.Annotations.Schema.GetColumnOrNull(KeyValuesKind);
        if (kv?.Type is not VectorDataViewType vt || vt.Size != k)
            return Enumerable.Range(0, k).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        var method = typeof(LabelInfo).GetMethod(nameof(ReadNames), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(vt.ItemType.RawType);
        return (string[])method.Invoke(null, [col.Annotations])!;
    }

    private static string[] ReadNames<T>(DataViewSchema.Annotations annotations)
    {
        VBuffer<T> values = default;
        annotations.GetValue(KeyValuesKind, ref values);
        return values.DenseValues().Select(v => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "").ToArray();
    }
}
