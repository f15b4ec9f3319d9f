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
}
