using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.Runs;

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
