using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Students.Onnx;

namespace DualHeadML.Samples;

/// <summary>
/// A "big pretrained model + a few labels" teacher, as CLIP is for our users: the ImageNet ResNet-18 that the NuGet
/// package Microsoft.ML.DnnImageFeaturizer.ResNet18 ships, imported as an <c>OnnxCnn</c> backbone and kept frozen
/// (weights and BatchNorm statistics), with a linear probe — one Linear(512 → K) on its pooled features — trained on
/// the labeled pool by DualHeadDistill in SupervisedOnly mode, then exported as one ONNX graph (backbone, probe,
/// softmax). Its input is the feature column, [3·H·W] RGB in [0, 1]; output <see cref="OutputName"/> holds the K class
/// probabilities. The package must be in the NuGet cache (restore it; see <see cref="DnnImageFeaturizerResNet18"/>).
/// </summary>
public sealed class ResNet18ProbeTeacher
{
    /// <summary>The exported graph's probability output (the single head's softmax).</summary>
    public const string OutputName = DualHeadColumns.Score;

    private ResNet18ProbeTeacher(byte[] onnx, long parameters, double trainSeconds, double meanStepMilliseconds, string inputName)
    {
        Onnx = onnx;
        Parameters = parameters;
        TrainSeconds = trainSeconds;
        MeanStepMilliseconds = meanStepMilliseconds;
        InputName = inputName;
    }

    /// <summary>The ONNX graph (opset 13), self-contained: nothing else is needed to run it.</summary>
    public byte[] Onnx { get; }
    /// <summary>Parameters of backbone and probe.</summary>
    public long Parameters { get; }
    public double TrainSeconds { get; }
    public double MeanStepMilliseconds { get; }
    /// <summary>The graph's input: the feature column's name, float [N, 3·H·W].</summary>
    public string InputName { get; }

    /// <summary>
    /// Trains the probe on <paramref name="pool"/> (every row labeled; <paramref name="labelColumn"/> a key column,
    /// <paramref name="featureColumn"/> [3·<paramref name="imageSize"/>²] RGB in [0, 1]) for
    /// <paramref name="epochs"/> passes with AdamW at <paramref name="learningRate"/>.
    /// </summary>
    public static ResNet18ProbeTeacher Train(MLContext ml, IDataView pool, string featureColumn, string labelColumn, int imageSize,
        int epochs = 3, float learningRate = 1e-2f, int seed = 1, string? packageFolder = null)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(pool);
        var watch = Stopwatch.StartNew();
        var options = new DualHeadDistillOptions
        {
            FeatureColumnName = featureColumn, LabelColumnName = labelColumn, ImageShape = [3, imageSize, imageSize],
            Backbone = "OnnxCnn", BackboneSettings = DnnImageFeaturizerResNet18.BackboneSettings(packageFolder),
            Objective = DualHeadTrainingMode.SupervisedOnly,
            FreezeBackboneEpochs = epochs, FreezeBatchNormStatistics = true, // a linear probe on fixed ImageNet features
            NumberOfEpochs = epochs, LearningRate = learningRate, Seed = seed,
        };
        using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(pool);
        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);
        return new ResNet18ProbeTeacher(stream.ToArray(), model.StudentParameters, watch.Elapsed.TotalSeconds, model.TrainingReport.MeanStepMilliseconds, featureColumn);
    }
}
