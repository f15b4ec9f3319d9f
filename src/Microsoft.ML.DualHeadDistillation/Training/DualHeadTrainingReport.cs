namespace Microsoft.ML.DualHeadDistillation;

/// <summary>What one epoch measured. Sent to <see cref="DualHeadDistillOptions.Progress"/> and kept in the report.</summary>
public sealed record DualHeadEpochReport(
    int Epoch,
    int NumberOfEpochs,
    int Steps,
    double CeLoss,
    double KdLoss,
    double TotalLoss,
    double LearningRate,
    double? ValidationAccuracy,
    double Seconds,
    double? BackboneGradientCosine = null,
    double? HeadGradientCosine = null)
{
    public override string ToString() => FormattableString.Invariant(
        $"epoch {Epoch}/{NumberOfEpochs}: CE {CeLoss:0.0000}, KD {(double.IsNaN(KdLoss) ? "-" : KdLoss.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture))}, L {TotalLoss:0.0000}, lr {LearningRate:0.######}{(ValidationAccuracy is double a ? $", validation accuracy {a:P2}" : "")}{(BackboneGradientCosine is double g ? $", cos(grad CE, grad KD) backbone {g:0.000}" : "")}{(HeadGradientCosine is double h ? $", head {h:0.000}" : "")}, {Seconds:0.0}s ({Steps} steps)");
}

/// <summary>What one training step measured. Sent to <see cref="DualHeadDistillOptions.StepProgress"/>.</summary>
/// <param name="Epoch">The epoch, from 1.</param>
/// <param name="NumberOfEpochs">Epochs of the run.</param>
/// <param name="Step">The step within the epoch, from 1.</param>
/// <param name="StepsPerEpoch">Steps in every epoch.</param>
/// <param name="GlobalStep">Steps completed in the whole run (a resumed run counts the steps before it), from 1.</param>
/// <param name="TotalSteps">Steps of the whole run.</param>
/// <param name="CeLoss">The CE term.</param>
/// <param name="KdLoss">The KD term, NaN for an objective without one.</param>
/// <param name="TotalLoss">The loss minimised.</param>
/// <param name="LearningRate">The step's learning rate.</param>
/// <param name="EpochSeconds">Seconds since the epoch started.</param>
public sealed record DualHeadStepReport(
    int Epoch,
    int NumberOfEpochs,
    int Step,
    int StepsPerEpoch,
    int GlobalStep,
    int TotalSteps,
    double CeLoss,
    double KdLoss,
    double TotalLoss,
    double LearningRate,
    double EpochSeconds);

/// <summary>The whole training run, returned with the fitted model.</summary>
public sealed record DualHeadTrainingReport(
    DualHeadTrainingMode Mode,
    string Objective,
    string Student,
    string Device,
    long StudentParameters,
    int LabeledRows,
    int UnlabeledRows,
    int TotalSteps,
    double ReadSeconds,
    double TrainSeconds,
    double MeanStepMilliseconds,
    IReadOnlyList<DualHeadEpochReport> Epochs)
{
    /// <summary>The validation search of alpha and beta, when one ran (two heads, validation data, AutoAlphaBeta).</summary>
    public AlphaBetaSearchResult? AlphaBeta { get; init; }
    /// <summary>
    /// libtorch's intra-op thread count during training. The same seed gives the same weights only on the same
    /// thread count: the number of threads changes the order of floating-point reductions.
    /// </summary>
    public int IntraOpThreads { get; init; }
    /// <summary>Seconds the training loop waited for its next batch (0 when batches are always ready: they are assembled one step ahead).</summary>
    public double DataWaitSeconds { get; init; }
    /// <summary>Image columns: the sample store's file, images stored per second (0 when an existing store was reused) and whether it was reused.</summary>
    public string? SampleStore { get; init; }
    public double StoreImagesPerSecond { get; init; }
    public bool StoreReused { get; init; }
    /// <summary>SameCropOnline and CachedViews: seconds the teacher spent on crops (rendering its inputs included) and the crops it labelled.</summary>
    public double TeacherSeconds { get; init; }
    public long TeacherCrops { get; init; }
    /// <summary>Warnings about the run (too few steps, a schedule that ends within the first epoch, unusable validation rows); also logged.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
    /// <summary>The per-channel input standardisation inside the student, or null when it reads its input as is.</summary>
    public Students.InputStatistics? InputStatistics { get; init; }
    /// <summary>The arithmetic of the training steps (<see cref="DualHeadDistillOptions.Precision"/>); the trained student is float32 either way.</summary>
    public DualHeadPrecision Precision { get; init; }
    /// <summary>Why the run trained in <see cref="Precision"/> (what was asked for, or what <see cref="DualHeadPrecision.Auto"/> found on this machine).</summary>
    public string? PrecisionReason { get; init; }
    /// <summary>Rows over which Precise BatchNorm last recomputed the running statistics (0: it did not run: off, no BatchNorm, or frozen statistics).</summary>
    public int PreciseBatchNormRows { get; init; }
    /// <summary>With early stopping: the epoch whose student was kept (best validation accuracy); null without early stopping.</summary>
    public int? BestEpoch { get; init; }
    /// <summary>With early stopping: the epoch after which training stopped before NumberOfEpochs; null when every epoch trained.</summary>
    public int? StoppedAfterEpoch { get; init; }
    /// <summary>
    /// Validation accuracy with BatchNorm on batch statistics, next to the last epoch's eval-mode <see cref="DualHeadEpochReport.ValidationAccuracy"/>
    /// (null without validation data or BatchNorm). Fit warns when they differ by more than 5 points.
    /// </summary>
    public double? BatchStatisticsValidationAccuracy { get; init; }
    /// <summary>Bytes of the file holding the frozen stages' cached outputs (FrozenStages with inputs that repeat), or null when nothing was cached.</summary>
    public long? FrozenStageCacheBytes { get; init; }
    /// <summary>With a TimeBudget: how the number of epochs was chosen (the probe's step time, the epochs' estimated cost), or null.</summary>
    public string? TimeBudgetPlan { get; init; }
    /// <summary>Seconds the frozen stages' forward passes took when computed (not read from their cache); the time-budget probe uses it.</summary>
    internal double FrozenStageSeconds { get; init; }
    /// <summary>The fine-tuning of the run ("from scratch", or weights file, backbone learning-rate scale, frozen epochs, frozen BatchNorm).</summary>
    public string FineTuning { get; init; } = "from scratch";
    /// <summary>What BackboneWeights loaded (tensors, values, ignored keys), or null when the backbone started from the seed.</summary>
    public Students.Pretrained.PretrainedLoadReport? BackboneWeights { get; init; }
    /// <summary>
    /// The teacher's accuracy on the labeled training rows (its arg-max against the labels), or null when it runs
    /// online on crops. The alpha/beta choice compares it with the CE head.
    /// </summary>
    public Diagnosis.Proportion? TeacherOnLabels { get; init; }
    /// <summary>The losses and learning rate per step, as at most 512 points (each the mean of a bucket of consecutive steps; a resumed run continues the curve).</summary>
    public IReadOnlyList<DualHeadStepPoint> Steps { get; init; } = [];
    /// <summary>Seconds spent in the alpha/beta search (one scoring pass plus the grid).</summary>
    public double AlphaBetaSeconds { get; init; }
}

/// <summary>
/// One point of the training curve: the mean of <paramref name="Steps"/> consecutive steps ending at global step <paramref name="Step"/>.
/// </summary>
/// <param name="Step">The last global step of the bucket (from 1).</param>
/// <param name="CeLoss">Mean CE term.</param>
/// <param name="KdLoss">Mean KD term (NaN for an objective without one).</param>
/// <param name="TotalLoss">Mean loss minimised.</param>
/// <param name="LearningRate">Mean learning rate.</param>
/// <param name="Steps">Steps averaged.</param>
public readonly record struct DualHeadStepPoint(int Step, double CeLoss, double KdLoss, double TotalLoss, double LearningRate, int Steps);
