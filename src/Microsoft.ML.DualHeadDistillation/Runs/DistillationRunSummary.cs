using Microsoft.ML.DualHeadDistillation.Specs;
namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>Wall time of a run's phases, in seconds.</summary>
public sealed record RunPhaseTimes
{
    public double Listing { get; set; }
    /// <summary>Decoding the images and writing the sample store (the store pass minus the teacher's share of it).</summary>
    public double DecodingStore { get; set; }
    public double Teacher { get; set; }
    public double Training { get; set; }
    public double Report { get; set; }
    public double Total { get; set; }
}

/// <summary>What a finished run reports: its data, teacher, student, training and validation accuracy of every way of predicting.</summary>
public sealed record DistillationRunSummary
{
    public required string Tool { get; init; }
    public required IReadOnlyList<string> Classes { get; init; }
    public required int LabeledImages { get; init; }
    public required int UnlabeledImages { get; init; }
    public required int ValidationImages { get; init; }
    /// <summary>"given" or "carved from the labeled images".</summary>
    public required string ValidationSource { get; init; }
    public required IReadOnlyList<SkippedFile> Skipped { get; init; }
    public required string Teacher { get; init; }
    public required string TeacherMode { get; init; }
    public required string Student { get; init; }
    public required long StudentParameters { get; init; }
    public required string Objective { get; init; }
    public required int Epochs { get; init; }
    public string? EpochsChosenBy { get; init; }
    public required int Seed { get; init; }
    public required string Device { get; init; }
    public required float Alpha { get; init; }
    public required float Beta { get; init; }
    public required double MeanStepMilliseconds { get; init; }
    public required int TotalSteps { get; init; }
    /// <summary>Validation accuracy of each way of predicting: the teacher, DHO (the combined Score), the CE head, the KD head.</summary>
    public required IReadOnlyList<ClassifierScores> Validation { get; init; }
    public required IReadOnlyList<DualHeadEpochReport> EpochReports { get; init; }
    public AlphaBetaSearchResult? AlphaBeta { get; init; }
    /// <summary>The teacher's diagnosis on the labeled images before training (null when the teacher has no class names).</summary>
    public Diagnosis.TeacherDiagnosis? Diagnosis { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }
    public required RunPhaseTimes Seconds { get; init; }
    public required IReadOnlyList<string> Outputs { get; init; }
}
