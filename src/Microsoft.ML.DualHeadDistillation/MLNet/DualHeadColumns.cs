namespace Microsoft.ML.DualHeadDistillation;

/// <summary>Names of the columns the fitted model adds.</summary>
public static class DualHeadColumns
{
    /// <summary>K combined probabilities alpha*softmax(h_CE) + (1-alpha)*softmax(h_KD/beta); slot names are the class names.</summary>
    public const string Score = "Score";
    /// <summary>Key-typed arg-max of Score, carrying the label's key values.</summary>
    public const string PredictedLabel = "PredictedLabel";
    /// <summary>softmax(h_CE): the head trained on labels.</summary>
    public const string CeHeadProbabilities = "CeHeadProbabilities";
    /// <summary>softmax(h_KD/beta): the head trained on the teacher, at the inference temperature beta.</summary>
    public const string KdHeadProbabilities = "KdHeadProbabilities";
}
