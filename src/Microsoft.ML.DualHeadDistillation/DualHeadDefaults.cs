namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// The single home of every default value. Both catalog overloads and <see cref="DualHeadDistillOptions"/>
/// refer to these constants, so a default is changed in one place only.
/// </summary>
public static class DualHeadDefaults
{
    /// <summary>Default label column (a key type; key 0, the missing value, marks an unlabeled row).</summary>
    public const string LabelColumnName = "Label";
    /// <summary>Default student input column.</summary>
    public const string FeatureColumnName = "Features";
    /// <summary>Default teacher logits column.</summary>
    public const string TeacherColumnName = "TeacherLogits";

    /// <summary>lambda in L = lambda*CE + (1-lambda)*KD (DHO paper: 0.5).</summary>
    public const float Lambda = 0.5f;
    /// <summary>Distillation temperature T (DHO paper: 2).</summary>
    public const float Temperature = 2f;
    /// <summary>Inference weight of the CE head: p = alpha*softmax(h_CE) + (1-alpha)*softmax(h_KD/beta).</summary>
    public const float Alpha = 0.5f;
    /// <summary>Inference temperature of the KD head.</summary>
    public const float Beta = 0.5f;
    /// <summary>Paired standard errors by which the alpha/beta grid's best must beat the reference pair on validation to be kept.</summary>
    public const float AlphaBetaNoiseMargin = 2f;

    public const int Epochs = 3;
    public const int LabeledBatchSize = 64;
    public const int UnlabeledBatchSize = 64;
    public const float LearningRate = 1e-3f;
    public const float WeightDecay = 1e-2f;
    public const int WarmupSteps = 0;
    /// <summary>bfloat16 training steps where the hardware does bfloat16 natively, float32 elsewhere.</summary>
    public const DualHeadPrecision Precision = DualHeadPrecision.Auto;
    /// <summary>Batches over which Precise BatchNorm recomputes the running statistics after every epoch.</summary>
    public const int PreciseBatchNormBatches = 32;
    /// <summary>Fit warns when eval-mode and batch-statistics validation accuracy differ by more than this many points.</summary>
    public const double BatchNormWarningPoints = 5;
    public const int EmbeddingSize = 128;
    /// <summary>The earlier name of <see cref="EmbeddingSize"/>.</summary>
    [Obsolete("Use EmbeddingSize.")]
    public const int HiddenSize = EmbeddingSize;
    public const int ScoringBatchSize = 256;
    /// <summary>The default batch source: labeled rows paired with unlabeled rows each step.</summary>
    public const string BatchSource = "Paired";

    /// <summary>Alpha values of the validation search: 0, 0.05, ..., 1.</summary>
    public static float[] AlphaGrid => Enumerable.Range(0, 21).Select(i => i / 20f).ToArray();
    /// <summary>Beta values of the validation search.</summary>
    public static float[] BetaGrid => [0.5f, 0.75f, 1f, 1.25f, 1.5f, 2f, 4f];
}
