using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.Transforms.Onnx;

namespace Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

/// <summary>
/// The form a fitted student takes inside an ML.NET model zip: ML.NET's own transformers only, so
/// <c>mlContext.Model.Load</c> rebuilds it natively.
/// <list type="number">
/// <item>OnnxTransformer holding the student's ML.NET-flavored ONNX graph (ML.NET stores the bytes in the zip):
/// Score, CeHeadProbabilities, KdHeadProbabilities (K slots, class names as slot names) and the predicted class name;</item>
/// <item><see cref="PredictedClassNameMapping"/>: that name as a scalar;</item>
/// <item>MapValueToKey with the class names as key data: PredictedLabel, a key with the class names as KeyValues;</item>
/// <item>DropColumns of the two intermediate columns.</item>
/// </list>
/// </summary>
internal static class PersistedScoringChain
{
    public static TransformerChain<ITransformer> Build(byte[] mlnetOnnx, string featureColumn, int featureSize, IReadOnlyList<string> classNames)
    {
        var ml = new MLContext(seed: 0);
        var schema = FeatureOnlyData(ml, featureColumn, featureSize);
        var onnxOutputs = new[] { DualHeadColumns.Score, DualHeadColumns.CeHeadProbabilities, DualHeadColumns.KdHeadProbabilities, StudentOnnxExporter.MLNetPredictedNameOutput };
        var keyData = ml.Data.LoadFromEnumerable(classNames.Select(n => new ClassNameRow { Name = n }));
        var estimator = ml.Transforms.ApplyOnnxModel(onnxOutputs, [featureColumn], new MemoryStream(mlnetOnnx, writable: false))
            .Append(ml.Transforms.CustomMapping(new PredictedClassNameMapping().GetMapping(), PredictedClassNameMapping.ContractName))
            .Append(ml.Transforms.Conversion.MapValueToKey(DualHeadColumns.PredictedLabel, PredictedClassNameMapping.OutputColumn, keyData: keyData))
            .Append(ml.Transforms.DropColumns(StudentOnnxExporter.MLNetPredictedNameOutput, PredictedClassNameMapping.OutputColumn));
        var fitted = estimator.Fit(schema);
        return new TransformerChain<ITransformer>(fitted.Cast<ITransformer>().ToArray());
    }

    /// <summary>A zero-row view with just the feature column, for fitting the (data-independent) chain.</summary>
    private static IDataView FeatureOnlyData(MLContext ml, string featureColumn, int featureSize)
    {
        var definition = SchemaDefinition.Create(typeof(FeatureRow));
        definition[0].ColumnName = featureColumn;
        definition[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, featureSize);
        return ml.Data.LoadFromEnumerable(Array.Empty<FeatureRow>(), definition);
    }

    private sealed class FeatureRow
    {
        public float[] Features { get; set; } = [];
    }

    private sealed class ClassNameRow
    {
        public string Name { get; set; } = "";
    }
}
