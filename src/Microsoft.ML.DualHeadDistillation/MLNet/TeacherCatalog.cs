using Microsoft.ML.DualHeadDistillation.MLNet;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary><c>mlContext.Transforms.TeacherSoftLabels(...)</c> and <c>mlContext.Transforms.ZeroShotTeacher(...)</c>.</summary>
public static class TeacherCatalog
{
    /// <summary>
    /// Runs an ONNX classifier on <paramref name="inputColumnName"/> in batches and writes its K logits to
    /// <paramref name="outputColumnName"/>, with <paramref name="classNames"/> (or the model's metadata) as slot names.
    /// </summary>
    public static TeacherSoftLabelsEstimator TeacherSoftLabels(this TransformsCatalog catalog,
        string outputColumnName, string inputColumnName, string modelPath,
        IReadOnlyList<string>? classNames = null, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new TeacherSoftLabelsEstimator(new TeacherSoftLabelsOptions
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            ModelPath = modelPath,
            ClassNames = classNames,
            BatchSize = batchSize,
        }, CatalogEnvironment.TryGet(catalog));
    }

    /// <summary>Runs an ONNX classifier as a teacher, with every option.</summary>
    public static TeacherSoftLabelsEstimator TeacherSoftLabels(this TransformsCatalog catalog, TeacherSoftLabelsOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new TeacherSoftLabelsEstimator(options, CatalogEnvironment.TryGet(catalog));
    }

    /// <summary>A CLIP-style zero-shot teacher: logits = logit_scale * cos(image embedding, class text embedding).</summary>
    public static ZeroShotTeacherEstimator ZeroShotTeacher(this TransformsCatalog catalog, ZeroShotTeacherOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ZeroShotTeacherEstimator(options, CatalogEnvironment.TryGet(catalog));
    }

    /// <summary>
    /// The teacher's logits from a merged soft-label set (a labeling job's output, <c>dualhead label</c> then
    /// <c>dualhead label merge</c>), looked up by the row id in <paramref name="rowIdColumnName"/>; with
    /// <paramref name="rowIdRoot"/>, that column holds file paths and the id is the path relative to that folder.
    /// </summary>
    public static SoftLabelSetEstimator SoftLabelsFromSet(this TransformsCatalog catalog, string setDirectory,
        string rowIdColumnName = "Path", string outputColumnName = DualHeadDefaults.TeacherColumnName, string? rowIdRoot = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new SoftLabelSetEstimator(new SoftLabelSetOptions { SetDirectory = setDirectory, RowIdColumnName = rowIdColumnName, OutputColumnName = outputColumnName, RowIdRoot = rowIdRoot });
    }

    /// <summary>The teacher's logits from a merged soft-label set, with every option.</summary>
    public static SoftLabelSetEstimator SoftLabelsFromSet(this TransformsCatalog catalog, SoftLabelSetOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new SoftLabelSetEstimator(options);
    }
}
