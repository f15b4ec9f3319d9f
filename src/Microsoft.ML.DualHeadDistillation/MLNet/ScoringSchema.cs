using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>Builds the output columns: three K-slot probability vectors with class names as slot names, and a key-typed PredictedLabel.</summary>
internal static class ScoringSchema
{
    public const int ScoreIndex = 0, PredictedLabelIndex = 1, CeIndex = 2, KdIndex = 3;

    public static readonly string[] Names =
        [DualHeadColumns.Score, DualHeadColumns.PredictedLabel, DualHeadColumns.CeHeadProbabilities, DualHeadColumns.KdHeadProbabilities];

    /// <summary>The input columns followed by the four outputs (which hide input columns of the same names).</summary>
    public static DataViewSchema Build(DataViewSchema input, string[] classNames, DataViewSchema.Annotations? labelAnnotations)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(input);
        AddOutputs(builder, classNames, labelAnnotations);
        return builder.ToSchema();
    }

    public static void AddOutputs(DataViewSchema.Builder builder, string[] classNames, DataViewSchema.Annotations? labelAnnotations)
    {
        int k = classNames.Length;
        var probabilities = new VectorDataViewType(NumberDataViewType.Single, k);
        var slotNames = SlotNameAnnotations(classNames);
        builder.AddColumn(DualHeadColumns.Score, probabilities, slotNames);

        var keyAnnotations = new DataViewSchema.Annotations.Builder();
        if (labelAnnotations?.Schema.GetColumnOrNull(LabelInfo.KeyValuesKind) != null)
            keyAnnotations.Add(labelAnnotations, kind => kind == LabelInfo.KeyValuesKind);
        builder.AddColumn(DualHeadColumns.PredictedLabel, new KeyDataViewType(typeof(uint), k), keyAnnotations.ToAnnotations());

        builder.AddColumn(DualHeadColumns.CeHeadProbabilities, probabilities, slotNames);
        builder.AddColumn(DualHeadColumns.KdHeadProbabilities, probabilities, slotNames);
    }

    private static DataViewSchema.Annotations SlotNameAnnotations(string[] classNames)
    {
        var names = classNames.Select(n => n.AsMemory()).ToArray();
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(VectorColumn.SlotNamesKind, new VectorDataViewType(TextDataViewType.Instance, names.Length),
            (ref VBuffer<ReadOnlyMemory<char>> value) => value = new VBuffer<ReadOnlyMemory<char>>(names.Length, (ReadOnlyMemory<char>[])names.Clone()));
        return builder.ToAnnotations();
    }
}
