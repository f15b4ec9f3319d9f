using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>Reads a scored view's columns into arrays.</summary>
public static class ScoredColumns
{
    /// <summary>The 0-based label of every row (the key minus one); rows without a label are an error naming the row.</summary>
    public static int[] Labels(IDataView scored, string column = "Label")
    {
        var keys = scored.GetColumn<uint>(column).ToArray();
        for (int i = 0; i < keys.Length; i++)
            if (keys[i] == 0) throw DistillationRunException.BadData($"Row {i} has no label (a class the model does not know?).");
        return keys.Select(k => (int)k - 1).ToArray();
    }

    public static float[][] Vectors(IDataView scored, string column) => scored.GetColumn<float[]>(column).ToArray();

    /// <summary>Slot names of a vector column (class names of Score, TeacherLogits), or null.</summary>
    public static string[]? SlotNames(DataViewSchema schema, string column)
    {
        var col = schema[column];
        if (!col.HasSlotNames()) return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        col.GetSlotNames(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }
}
