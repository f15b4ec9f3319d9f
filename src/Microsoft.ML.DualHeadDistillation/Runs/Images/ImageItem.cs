using Microsoft.ML.DualHeadDistillation.Specs;
namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>One image file: its absolute path and its class (null: unlabeled).</summary>
public sealed record ImageItem(string Path, string? Label);

/// <summary>A file that was left out, and why.</summary>
public sealed record SkippedFile(string Path, string Reason);
