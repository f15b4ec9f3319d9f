using System.ComponentModel;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

/// <summary>
/// The one step of a saved model that ML.NET has no built-in for: ONNX Runtime returns the predicted class
/// name as a one-element string vector, and <c>MapValueToKey</c> gives a scalar key (as ML.NET's trainers do)
/// only from a scalar. This stateless mapping takes the element out. ML.NET stores its contract name and
/// this assembly's name in the model, and <c>mlContext.Model.Load</c> loads the assembly by that name.
/// </summary>
[CustomMappingFactoryAttribute(ContractName)]
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PredictedClassNameMapping : CustomMappingFactory<PredictedClassNameMapping.Input, PredictedClassNameMapping.Output>
{
    public const string ContractName = "Microsoft.ML.DualHeadDistillation.PredictedClassName";
    public const string OutputColumn = "PredictedLabel.ClassNameValue";

    public override Action<Input, Output> GetMapping() => Map;

    internal static void Map(Input input, Output output) =>
        output.ClassName = input.ClassName is { Length: > 0 } names ? names[0] : "";

    /// <summary>The ONNX graph's class-name output.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public sealed class Input
    {
        [ColumnName(StudentOnnxExporter.MLNetPredictedNameOutput), VectorType(1)]
        public string[] ClassName { get; set; } = [];
    }

    /// <summary>The class name as a scalar, mapped to the key-typed PredictedLabel next.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public sealed class Output
    {
        [ColumnName(OutputColumn)]
        public string ClassName { get; set; } = "";
    }
}
