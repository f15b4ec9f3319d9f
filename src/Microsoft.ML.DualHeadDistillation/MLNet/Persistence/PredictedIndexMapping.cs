using System.ComponentModel;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

/// <summary>
/// The one step of a saved model that ML.NET has no built-in for: ONNX Runtime returns the predicted class
/// as a one-element int64 vector, and ML.NET's value mappings give a scalar key (as ML.NET's trainers do)
/// only from a scalar. This stateless mapping takes the element out. ML.NET stores its contract name and
/// this assembly's name in the model, and <c>mlContext.Model.Load</c> loads the assembly by that name.
/// </summary>
[CustomMappingFactoryAttribute(ContractName)]
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PredictedIndexMapping : CustomMappingFactory<PredictedIndexMapping.Input, PredictedIndexMapping.Output>
{
    public const string ContractName = "Microsoft.ML.DualHeadDistillation.PredictedIndex";
    /// <summary>Same name as its input: the scalar hides the one-element vector, and the key mapping hides both.</summary>
    public const string OutputColumn = DualHeadColumns.PredictedLabel;

    public override Action<Input, Output> GetMapping() => Map;

    internal static void Map(Input input, Output output) =>
        output.Index = input.Index is { Length: > 0 } index ? index[0] : -1;

    /// <summary>The ONNX graph's class-index output.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public sealed class Input
    {
        [ColumnName(StudentOnnxExporter.MLNetPredictedIndexOutput), VectorType(1)]
        public long[] Index { get; set; } = [];
    }

    /// <summary>The class index as a scalar, mapped to the key-typed PredictedLabel next.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public sealed class Output
    {
        [ColumnName(OutputColumn)]
        public long Index { get; set; }
    }
}
