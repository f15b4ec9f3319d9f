using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.Transforms.Onnx;

namespace Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

/// <summary>
/// The form a fitted student takes inside an ML.NET model zip: ML.NET's own transformers only, so
/// <c>mlContext.Model.Load</c> rebuilds it natively.
/// <list type="number">
/// <item>OnnxTransformer holding the student's ML.NET-flavored ONNX graph (ML.NET stores the bytes in the zip):
/// Score, CeHeadProbabilities, KdHeadProbabilities (K slots, class names as slot names) and the predicted class index;</item>
/// <item><see cref="PredictedIndexMapping"/>: that index as a scalar;</item>
/// <item>MapValue from class index to class name with treatValuesAsKeyType: PredictedLabel, a key whose
/// KeyValues are the class names in class order;</item>
/// <item>The three steps all name their output PredictedLabel, so the last, the key, is the visible one and the
/// two intermediate forms are hidden columns, as ML.NET's own pipelines leave them (a DropColumns step cost
/// several per cent per row).</item>
/// </list>
/// </summary>
internal static class PersistedScoringChain
{
    public static TransformerChain<ITransformer> Build(byte[] mlnetOnnx, string featureColumn, int featureSize, IReadOnlyList<string> classNames)
    {
        var ml = new MLContext(seed: 0);
        var schema = FeatureOnlyData(ml, featureColumn, featureSize);
        var onnxOutputs = new[] { DualHeadColumns.Score, DualHeadColumns.CeHeadProbabilities, DualHeadColumns.KdHeadProbabilities, StudentOnnxExporter.MLNetPredictedIndexOutput };
        var indexToName = classNames.Select((name, i) => new KeyValuePair<long, string>(i, name));
        var estimator = ml.Transforms.ApplyOnnxModel(onnxOutputs, [featureColumn], new MemoryStream(mlnetOnnx, writable: false))
            .Append(ml.Transforms.CustomMapping(new PredictedIndexMapping().GetMapping(), PredictedIndexMapping.ContractName))
            .Append(ml.Transforms.Conversion.MapValue(DualHeadColumns.PredictedLabel, indexToName, PredictedIndexMapping.OutputColumn, treatValuesAsKeyType: true));
        var fitted = estimator.Fit(schema);
        return new TransformerChain<ITransformer>(fitted.Cast<ITransformer>().ToArray());
    }

    /// <summary>The zip <c>mlContext.Model.Save</c> writes for <paramref name="chain"/> on its feature column; disposes the chain.</summary>
    internal static MemoryStream SaveAndDispose(MLContext ml, TransformerChain<ITransformer> chain, string featureColumn, int featureSize)
    {
        var buffer = new MemoryStream();
        try
        {
            ml.Model.Save(chain, FeatureOnlyData(ml, featureColumn, featureSize).Schema, buffer);
        }
        finally
        {
            chain.Dispose();
        }
        return buffer;
    }

    /// <summary>A zero-row view with just the feature column, for fitting the (data-independent) chain.</summary>
    internal static IDataView FeatureOnlyData(MLContext ml, string featureColumn, int featureSize)
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
}
