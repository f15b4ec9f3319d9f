using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>How a fitted model scores and describes its input: rows per ONNX Runtime call and the image preprocessing recorded in exports.</summary>
internal sealed record ScoringSettings(int BatchSize, TeacherPreprocessing? InputPreprocessing)
{
    public static ScoringSettings From(DualHeadDistillOptions o) => new(o.ScoringBatchSize, o.InputPreprocessing);
}
