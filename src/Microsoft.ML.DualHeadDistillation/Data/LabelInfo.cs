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
    public static LabelInfo FromSchema(DataViewSchema schema, string columnName, int minimumClasses = 2)
    {
        var col = schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException("LabelColumnName", $"Label column '{columnName}' was not found in the data. Expected a key-typed column (use MapValueToKey); rows with a missing key are the unlabeled ones.");
        if (col.Type is not KeyDataViewType key || key.RawType != typeof(uint))
            throw new ArgumentOutOfRangeException("LabelColumnName", $"Label column '{columnName}' has type {col.Type}; expected a key of UInt32 (apply MapValueToKey to the label first).");
        if (key.Count < (ulong)minimumClasses || key.Count > int.MaxValue)
            throw new ArgumentOutOfRangeException("LabelColumnName", $"Label column '{columnName}' has {key.Count} classes; expected at least {minimumClasses}.");
        int k = (int)key.Count;
        return new LabelInfo(columnName, k, ReadKeyNames(col, k), col.Annotations);
    }

    /// <summary>
    /// Maps this label's classes (validation data) onto <paramref name="training"/>'s, by key value: entry i is the
    /// training class of this label's class i. Validation data keyed by its own MapValueToKey (another order, a
    /// subset of the classes) is therefore read correctly; a class the training label does not have is an error.
    /// Without key values on either side the keys themselves must agree (same count).
    /// </summary>
    public int[] MapOnto(LabelInfo training, string option, string what)
    {
        if (!HasKeyValues || !training.HasKeyValues)
        {
            if (ClassCount != training.ClassCount)
                throw new ArgumentOutOfRangeException(option, $"{what} label column '{ColumnName}' has {ClassCount} classes; the training label has {training.ClassCount}, and without key values (class names) they cannot be matched. Transform the {what.ToLowerInvariant()} data with the same fitted MapValueToKey.");
            return Enumerable.Range(0, ClassCount).ToArray();
        }
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < training.ClassNames.Length; i++) index.TryAdd(training.ClassNames[i], i);
        var map = new int[ClassCount];
        for (int i = 0; i < ClassCount; i++)
        {
            if (!index.TryGetValue(ClassNames[i], out map[i]))
                throw new ArgumentOutOfRangeException(option,
                    $"{what} label column '{ColumnName}' has class '{ClassNames[i]}' (key {i + 1}), which the training label does not have; the training classes are [{string.Join(", ", training.ClassNames)}]. Remove those rows, or key the {what.ToLowerInvariant()} data with the MapValueToKey fitted on the training data.");
        }
        return map;
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
