using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Datasets;

namespace DualHeadML.Samples;

/// <summary>One Fashion-MNIST image as an ML.NET row. An empty Label marks an unlabeled image.</summary>
public sealed class ImageRow
{
    public string Label { get; set; } = "";

    [VectorType(FashionMnistSplit.PixelsPerImage)]
    public float[] Features { get; set; } = [];
}
