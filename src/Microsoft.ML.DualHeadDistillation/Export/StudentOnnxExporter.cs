using System.Globalization;
using Google.Protobuf;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Onnx;
using static Microsoft.ML.DualHeadDistillation.Export.OnnxGraphBuilder;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>Which consumer an exported graph is shaped for.</summary>
internal enum OnnxGraphFlavor
{
    /// <summary>For any ONNX runtime: a dynamic batch dimension N on every input and output.</summary>
    Portable,
    /// <summary>
    /// For ML.NET's OnnxTransformer, which runs one row per call: probabilities reshaped to [K] (so they
    /// become plain K-slot vectors), <c>mlnet.&lt;column&gt;.SlotNames</c> nodes carrying the class names,
    /// and the predicted class index for the key mapping that follows.
    /// </summary>
    MLNet,
}

/// <summary>What the exporter needs besides the weights.</summary>
internal sealed record StudentExportInfo(
    string InputName,
    IReadOnlyList<string> ClassNames,
    float Alpha,
    float Beta,
    DualHeadTrainingMode Mode,
    TeacherPreprocessing? Preprocessing,
    Specs.InputImageShape? ImageShape,
    Specs.ImageInputSpec? Images = null);

/// <summary>
/// Builds the self-contained ONNX graph of a fitted student: backbone, both heads, softmax, the DHO
/// combination p = alpha*softmax(h_CE) + (1-alpha)*softmax(h_KD/beta), and the arg-max. Opset 13 (ai.onnx)
/// plus ai.onnx.ml 2 for the slot-name nodes of the ML.NET flavor.
/// </summary>
internal static class StudentOnnxExporter
{
    public const long IrVersion = 8;
    public const long OpsetVersion = 13;

    /// <summary>The portable graph's 0-based arg-max output (int64 [N]).</summary>
    public const string PredictedIndexOutput = "PredictedLabelIndex";
    /// <summary>The predicted index of a row whose Score is NaN: no class (PredictedLabel is then the missing key 0).</summary>
    public const long NoClassIndex = -1;
    /// <summary>The portable graph's predicted class name output (string [N]).</summary>
    public const string PredictedNameOutput = "PredictedClassName";
    /// <summary>
    /// The ML.NET flavor's 0-based predicted class (int64 [1]). Named PredictedLabel: the mappings after it
    /// write their own PredictedLabel, each hiding the one before (no column-dropping step needed).
    /// </summary>
    public const string MLNetPredictedIndexOutput = DualHeadColumns.PredictedLabel;

    public static ModelProto Build(DualHeadStudent student, StudentExportInfo info, OnnxGraphFlavor flavor)
    {
        int k = student.ClassCount;
        if (info.ClassNames.Count != k)
            throw new ArgumentException($"The model has {k} classes but {info.ClassNames.Count} class names.", nameof(info));
        var g = new OnnxGraphBuilder("dualhead_student");
        g.Input(info.InputName, DataType.Float, -1, student.Backbone.InputSize);

        var context = new OnnxExportContext(g);
        var z = student.ExportEmbedding(context, new OnnxValue(info.InputName, [student.Backbone.InputSize]));
        if (z.Shape.Length != 1 || z.Shape[0] != student.Backbone.EmbeddingSize)
            throw new InvalidOperationException($"Backbone {student.Backbone.GetType().Name} exported a representation of shape [{string.Join(", ", z.Shape)}]; expected [{student.Backbone.EmbeddingSize}].");

        string ceLogits = context.Export(student.CeHead, "ce_head", z).Name;
        string kdLogits = student.HasTwoHeads ? context.Export(student.KdHead, "kd_head", z).Name : ceLogits;
        string ceProbs = g.Node("Softmax", [ceLogits], outputHint: "ce_probabilities", attributes: Int("axis", 1));
        string kdScaled = g.Node("Div", [kdLogits, g.Floats("beta", [info.Beta])], outputHint: "kd_logits_over_beta");
        string kdProbs = g.Node("Softmax", [kdScaled], outputHint: "kd_probabilities", attributes: Int("axis", 1));
        string ceWeighted = g.Node("Mul", [ceProbs, g.Floats("alpha", [info.Alpha])], outputHint: "alpha_ce");
        string kdWeighted = g.Node("Mul", [kdProbs, g.Floats("one_minus_alpha", [1 - info.Alpha])], outputHint: "one_minus_alpha_kd");
        string combined = g.Node("Add", [ceWeighted, kdWeighted], outputHint: "combined_probabilities");
        string argMax = g.Node("ArgMax", [combined], outputHint: "argmax_index", attributes: [Int("axis", 1), Int("keepdims", 0)]);
        // A row whose Score holds NaN (NaN or infinite features) predicts no class: index -1, the missing key.
        string isNan = g.Node("IsNaN", [combined], outputHint: "score_is_nan");
        string nanCount = g.Node("ReduceMax", [g.Node("Cast", [isNan], outputHint: "score_is_nan_float", attributes: Int("to", (long)DataType.Float))],
            outputHint: "row_has_nan_float", attributes: [Ints("axes", 1), Int("keepdims", 0)]);
        string rowHasNan = g.Node("Cast", [nanCount], outputHint: "row_has_nan", attributes: Int("to", (long)DataType.Bool));
        string index = g.Node("Where", [rowHasNan, g.Int64s("no_class_index", NoClassIndex), argMax], outputHint: "predicted_index");

        if (flavor == OnnxGraphFlavor.Portable)
        {
            // The class names and "" last: index -1 (no class) gathers the empty name.
            string names = g.Strings("class_names", [.. info.ClassNames, ""], k + 1);
            Output(g, DualHeadColumns.Score, combined, DataType.Float, -1, k);
            Output(g, DualHeadColumns.CeHeadProbabilities, ceProbs, DataType.Float, -1, k);
            Output(g, DualHeadColumns.KdHeadProbabilities, kdProbs, DataType.Float, -1, k);
            Output(g, PredictedIndexOutput, index, DataType.Int64, -1);
            g.Node("Gather", [names, index], g.Reserve(PredictedNameOutput));
            g.Output(PredictedNameOutput, DataType.String, -1);
        }
        else
        {
            // ML.NET turns [N, K] into a 1xK vector; one row per call makes the flattening exact.
            string flat = g.Int64s("flat_shape", -1);
            foreach (var (column, value) in new[] { (DualHeadColumns.Score, combined), (DualHeadColumns.CeHeadProbabilities, ceProbs), (DualHeadColumns.KdHeadProbabilities, kdProbs) })
            {
                g.Node("Reshape", [value, flat], g.Reserve(column));
                g.Output(column, DataType.Float, k);
                SlotNames(g, column, info.ClassNames);
            }
            Output(g, MLNetPredictedIndexOutput, index, DataType.Int64, -1);
        }

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "Microsoft.ML.DualHeadDistillation",
            ProducerVersion = typeof(StudentOnnxExporter).Assembly.GetName().Version?.ToString() ?? "",
            DocString = $"DualHeadDistill student ({info.Mode}): {student.Description}. Score = {info.Alpha.ToString("R", CultureInfo.InvariantCulture)}*softmax(h_CE) + {(1 - info.Alpha).ToString("R", CultureInfo.InvariantCulture)}*softmax(h_KD/{info.Beta.ToString("R", CultureInfo.InvariantCulture)}).",
            Graph = g.Graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OpsetVersion });
        if (flavor == OnnxGraphFlavor.MLNet) model.OpsetImport.Add(new OperatorSetIdProto { Domain = MlDomain, Version = 2 });
        foreach (var (key, value) in StudentOnnxMetadata.Write(student, info).OrderBy(p => p.Key, StringComparer.Ordinal))
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return model;
    }

    /// <summary>The serialised model, sealed with its <see cref="OnnxChecksum"/>.</summary>
    public static byte[] ToBytes(ModelProto model) => OnnxChecksum.Seal(model);

    /// <summary>Exposes an inner value as a graph output with a fixed name (an Identity node).</summary>
    private static void Output(OnnxGraphBuilder g, string name, string value, DataType type, params long[] dims)
    {
        g.Node("Identity", [value], g.Reserve(name));
        g.Output(name, type, dims);
    }

    /// <summary>
    /// ML.NET's convention for slot names of an ONNX output: a node named <c>mlnet.&lt;column&gt;.SlotNames</c>
    /// whose <c>keys_strings</c> attribute lists them (ML.NET's own ONNX exporter writes the same LabelEncoder).
    /// The node is not on any output path, so ONNX Runtime drops it when it loads the graph.
    /// </summary>
    private static void SlotNames(OnnxGraphBuilder g, string column, IReadOnlyList<string> classNames)
    {
        var node = new NodeProto { OpType = "LabelEncoder", Domain = MlDomain, Name = $"mlnet.{column}.SlotNames" };
        node.Input.Add(g.Strings($"mlnet.{column}.unusedInput", ["one"], 1, 1));
        node.Output.Add(g.Unique($"mlnet.{column}.unusedOutput"));
        node.Attribute.Add(Strings("keys_strings", classNames));
        node.Attribute.Add(Ints("values_int64s", Enumerable.Range(0, classNames.Count).Select(i => (long)i).ToArray()));
        g.Graph.Node.Add(node);
    }
}
