using Microsoft.ML.Data;

namespace DualHeadML.Deploy;

/// <summary>
/// One image as the saved model expects it: 784 = 28x28 grayscale pixels scaled to [0, 1], row-major.
/// The quickstart's saved pipeline starts with MapValueToKey("Label"), so the input has a Label column;
/// leave it empty when predicting (it is only read by the evaluator).
/// </summary>
public sealed class ImageInput
{
    public string Label { get; set; } = "";

    [VectorType(784)]
    public float[] Features { get; set; } = [];
}

/// <summary>What the model adds: Score (probabilities, one per class) and PredictedLabel (a 1-based key).</summary>
public sealed class Prediction
{
    public float[] Score { get; set; } = [];
    public uint PredictedLabel { get; set; }
}
