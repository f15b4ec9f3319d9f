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
    double Seconds)
{
    public override string ToString() => FormattableString.Invariant(
        $"epoch {Epoch}/{NumberOfEpochs}: CE {CeLoss:0.0000}, KD {KdLoss:0.0000}, L {TotalLoss:0.0000}, lr {LearningRate:0.######}{(ValidationAccuracy is double a ? $", validation accuracy {a:P2}" : "")}, {Seconds:0.0}s ({Steps} steps)");
}

/// <summary>The whole training run, returned with the fitted model.</summary>
public sealed record DualHeadTrainingReport(
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
    IReadOnlyList<DualHeadEpochReport> Epochs);
