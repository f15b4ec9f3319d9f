using Microsoft.ML.DualHeadDistillation.Specs;
namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>A finished run: the trained model (dispose it), its images and what it reports.</summary>
public sealed class DistillationRunResult : IDisposable
{
    internal DistillationRunResult(DualHeadDistillTransformer model, ImageListing listing, DistillationRunSummary summary, string folder, IDataView validation)
    {
        Model = model;
        Listing = listing;
        Summary = summary;
        Folder = folder;
        ValidationData = validation;
    }

    public DualHeadDistillTransformer Model { get; }
    public ImageListing Listing { get; }
    /// <summary>The report's content (the CLI renders it as metrics.json, report.md and report.html).</summary>
    public DistillationRunSummary Summary { get; }
    public string Folder { get; }
    /// <summary>The validation images as rows (Label, Path, Image).</summary>
    public IDataView ValidationData { get; }

    public void Dispose() => Model.Dispose();
}
