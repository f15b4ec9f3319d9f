using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Small Gaussian-blob data with a noisy teacher, for fast trainer tests.</summary>
internal static class SyntheticData
{
    public const int D = 8, K = 3;
    public static readonly string[] ClassNames = ["cat", "dog", "bird"];

    public sealed class Row
    {
        public string Label { get; set; } = "";
        [VectorType(D)] public float[] Features { get; set; } = [];
        [VectorType(K)] public float[] TeacherLogits { get; set; } = [];
    }

    private sealed class Key { public string Label { get; set; } = ""; }

    /// <summary>Rows with <paramref name="labeled"/> labeled and <paramref name="unlabeled"/> unlabeled (empty label).</summary>
    public static List<Row> Rows(int labeled, int unlabeled, int seed = 7, Func<int, float[]>? unlabeledFeatures = null)
    {
        var r = new Random(seed);
        var rows = new List<Row>();
        for (int i = 0; i < labeled + unlabeled; i++)
        {
            int c = i % K;
            var x = new float[D];
            for (int j = 0; j < D; j++) x[j] = (float)(r.NextDouble() * 2 - 1) + (j % K == c ? 1.5f : 0f);
            var t = new float[K];
            for (int k = 0; k < K; k++) t[k] = (k == c ? 3f : 0f) + (float)(r.NextDouble() - 0.5);
            bool isLabeled = i < labeled;
            rows.Add(new Row
            {
                Label = isLabeled ? ClassNames[c] : "",
                Features = !isLabeled && unlabeledFeatures is not null ? unlabeledFeatures(i) : x,
                TeacherLogits = t,
            });
        }
        return rows;
    }

    /// <summary>Loads rows and maps the label to a key whose key i+1 is ClassNames[i].</summary>
    public static IDataView Load(MLContext ml, IEnumerable<Row> rows, string[]? teacherSlotNames = null)
    {
        var definition = SchemaDefinition.Create(typeof(Row));
        if (teacherSlotNames is not null)
        {
            var names = new VBuffer<ReadOnlyMemory<char>>(K, teacherSlotNames.Select(n => n.AsMemory()).ToArray());
            definition["TeacherLogits"].AddAnnotation("SlotNames", names, new VectorDataViewType(TextDataViewType.Instance, K));
        }
        var data = ml.Data.LoadFromEnumerable(rows, definition);
        var keys = ml.Data.LoadFromEnumerable(ClassNames.Select(n => new Key { Label = n }));
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys).Fit(data).Transform(data);
    }

    public static DualHeadDistillOptions MlpOptions(int epochs = 2, int seed = 3) => new()
    {
        Backbone = DualHeadBackbone.Mlp,
        EmbeddingSize = 16,
        MlpHiddenLayers = [32],
        NumberOfEpochs = epochs,
        LabeledBatchSize = 8,
        UnlabeledBatchSize = 16,
        Seed = seed,
        Device = DualHeadDevice.Cpu,
    };

    public static float[] Weights(DualHeadDistillTransformer model) =>
        model.Student.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    public static float[] HeadWeights(TorchSharp.torch.nn.Module module) =>
        module.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();
}
