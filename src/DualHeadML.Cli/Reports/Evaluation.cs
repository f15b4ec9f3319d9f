using Microsoft.ML;
using Microsoft.ML.Data;

namespace DualHeadML.Cli.Reports;

/// <summary>Accuracy, per-class accuracy and confusion matrix of one way of predicting (DHO, a head, the teacher).</summary>
public sealed record ClassifierScores(string Name, double Accuracy, double[] PerClassAccuracy, int[][] Confusion)
{
    /// <summary>Scores of argmax predictions of <paramref name="scores"/> (N x K, any monotone scale) against <paramref name="labels"/> (0-based).</summary>
    public static ClassifierScores From(string name, int[] labels, float[][] scores, int classes)
    {
        var confusion = Enumerable.Range(0, classes).Select(_ => new int[classes]).ToArray();
        int right = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            int predicted = ArgMax(scores[i]);
            confusion[labels[i]][predicted]++;
            if (predicted == labels[i]) right++;
        }
        var perClass = confusion.Select((row, c) => row.Sum() == 0 ? double.NaN : (double)row[c] / row.Sum()).ToArray();
        return new ClassifierScores(name, labels.Length == 0 ? double.NaN : (double)right / labels.Length, perClass, confusion);
    }

    public static int ArgMax(float[] values)
    {
        int best = 0;
        for (int k = 1; k < values.Length; k++) if (values[k] > values[best]) best = k;
        return best;
    }
}

/// <summary>Reads a scored view's columns into arrays.</summary>
public static class ScoredColumns
{
    /// <summary>The 0-based label of every row (the key minus one); rows without a label are an error naming the row.</summary>
    public static int[] Labels(IDataView scored, string column = "Label")
    {
        var keys = scored.GetColumn<uint>(column).ToArray();
        for (int i = 0; i < keys.Length; i++)
            if (keys[i] == 0) throw new UsageException(ExitCodes.DataError, $"Row {i} has no label (a class the model does not know?).");
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
