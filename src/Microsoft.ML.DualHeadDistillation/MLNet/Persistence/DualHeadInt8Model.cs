using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Export.Quantization;
using Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// A DualHeadDistill student in int8 (<see cref="DualHeadDistillTransformer.Quantize(IDataView, IDataView?, CancellationToken)"/>):
/// ML.NET's own OnnxTransformer on the quantised graph, so it scores in ONNX Runtime without libtorch, with the same
/// output columns as the fp32 model (Score, PredictedLabel, CeHeadProbabilities, KdHeadProbabilities). It is the model
/// <see cref="DualHeadModel.Save"/> writes, loaded back: what it scores is what the file holds.
/// <see cref="Check"/> is the accuracy guarantee (fp32 and int8 accuracy and agreement on the validation rows), also
/// in the graph's metadata (<c>dualhead.int8_check</c>) where <see cref="DualHeadModel.Describe(string)"/> reads it.
/// </summary>
/// <remarks>
/// A model that reads a feature vector scores the same column. A model trained on images scores encoded image bytes
/// (column named like the image column, <c>byte[]</c> or LoadRawImageBytes), as a model from <see cref="DualHeadModel.Load(MLContext, string, out DataViewSchema)"/> does.
/// </remarks>
public sealed class DualHeadInt8Model : ITransformer, IDisposable
{
    private readonly ITransformer _loaded;

    private DualHeadInt8Model(byte[] zipBytes, ITransformer loaded, DataViewSchema inputSchema, StudentExportResult check)
    {
        ZipBytes = zipBytes;
        _loaded = loaded;
        InputSchema = inputSchema;
        Check = check;
    }

    /// <summary>fp32 vs int8 on the validation rows (NaN accuracies and a warning when none were given), sizes, the quantiser's account.</summary>
    public StudentExportResult Check { get; }

    /// <summary>The input this model scores (the feature vector column, or the encoded image column).</summary>
    public DataViewSchema InputSchema { get; }

    internal byte[] ZipBytes { get; }

    internal static DualHeadInt8Model Create(DualHeadDistillTransformer model, byte[] int8MlnetOnnx, StudentExportResult check)
    {
        var ml = new MLContext(seed: 0);
        byte[] zip = model.Input.IsImage ? ImageModelZip.Save(ml, model, int8MlnetOnnx) : VectorZip();
        byte[] VectorZip()
        {
            using var saved = PersistedScoringChain.SaveAndDispose(ml, model.BuildPersistedChain(int8MlnetOnnx), model.FeatureColumnName, model.InputSize);
            return saved.ToArray();
        }
        var loaded = DualHeadModel.Load(ml, zip, "the int8 model", out var schema);
        return new DualHeadInt8Model(zip, loaded, schema, check);
    }

    public bool IsRowToRowMapper => _loaded.IsRowToRowMapper;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => _loaded.GetOutputSchema(inputSchema);

    public IDataView Transform(IDataView input) => _loaded.Transform(input);

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => _loaded.GetRowToRowMapper(inputSchema);

    void ICanSaveModel.Save(ModelSaveContext ctx) => _loaded.Save(ctx);

    /// <summary>Releases ONNX Runtime's session; the model rebuilds it on next use (as a loaded model does).</summary>
    public void Dispose() => (_loaded as IDisposable)?.Dispose();
}
