using Microsoft.ML.DualHeadDistillation.MLNet;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary><c>mlContext.MulticlassClassification.Trainers.DualHeadDistill(...)</c>.</summary>
public static class DualHeadDistillCatalog
{
    /// <summary>
    /// Dual-Head Optimization (arXiv 2505.07675): trains a compact student with a CE head on the labeled rows and a
    /// KD head on the teacher's logits for every row. Rows whose label key is missing (0) are the unlabeled ones.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="labelColumnName">Key-typed label column; the missing key marks an unlabeled row.</param>
    /// <param name="featureColumnName">Known-size float vector (features, or flattened pixels for the CNN).</param>
    /// <param name="teacherColumnName">Known-size float vector of K teacher logits.</param>
    /// <param name="backbone">The student backbone (null: <see cref="DualHeadBackbone.SmallCnn"/>).</param>
    /// <param name="numberOfEpochs">Passes over the unlabeled rows.</param>
    /// <param name="lambda">Weight of CE in L = lambda*CE + (1-lambda)*KD.</param>
    /// <param name="temperature">Distillation temperature T.</param>
    /// <param name="seed">Seed of weights and shuffling; null draws one from the MLContext.</param>
    public static DualHeadDistillTrainer DualHeadDistill(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = DualHeadDefaults.LabelColumnName,
        string featureColumnName = DualHeadDefaults.FeatureColumnName,
        string teacherColumnName = DualHeadDefaults.TeacherColumnName,
        DualHeadBackbone? backbone = null,
        int numberOfEpochs = DualHeadDefaults.Epochs,
        float lambda = DualHeadDefaults.Lambda,
        float temperature = DualHeadDefaults.Temperature,
        int? seed = null)
        => new(CatalogEnvironment.Get(catalog), new DualHeadDistillOptions
        {
            LabelColumnName = labelColumnName,
            FeatureColumnName = featureColumnName,
            TeacherColumnName = teacherColumnName,
            Backbone = backbone ?? DualHeadBackbone.SmallCnn,
            NumberOfEpochs = numberOfEpochs,
            Lambda = lambda,
            Temperature = temperature,
            Seed = seed,
        });

    /// <summary>Dual-Head Optimization with every option.</summary>
    public static DualHeadDistillTrainer DualHeadDistill(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        DualHeadDistillOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new(CatalogEnvironment.Get(catalog), options);
    }
}
