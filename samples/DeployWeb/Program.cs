// Serving a saved DualHeadML model over HTTP with ASP.NET Core. PredictionEngine is not thread-safe, so
// requests borrow one from a pool (Microsoft.Extensions.ObjectPool, in the ASP.NET Core shared framework);
// the ITransformer itself is loaded once and shared.
//
//   MODEL_PATH=/tmp/qs-model/model.zip dotnet run --project samples/DeployWeb -- --urls http://127.0.0.1:5080
//   curl -s -X POST http://127.0.0.1:5080/predict -H 'Content-Type: application/json' -d @/tmp/qs-model/request.json
using DualHeadML.Deploy;
using Microsoft.Extensions.ObjectPool;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;

var builder = WebApplication.CreateBuilder(args);

// The model: configuration key MODEL_PATH (environment variable, --MODEL_PATH argument or appsettings.json).
string? modelPath = builder.Configuration["MODEL_PATH"];
if (string.IsNullOrWhiteSpace(modelPath))
{
    Console.Error.WriteLine("MODEL_PATH is not set: set the environment variable (or pass --MODEL_PATH path) to a model saved with mlContext.Model.Save, e.g. MODEL_PATH=/tmp/qs-model/model.zip.");
    return 1;
}
var mlContext = new MLContext();
ITransformer model;
DataViewSchema inputSchema;
try
{
    model = DualHeadModel.Load(mlContext, modelPath, out inputSchema); // errors name the file: missing, truncated, corrupt
}
catch (Exception e) when (e is FileNotFoundException or InvalidDataException)
{
    Console.Error.WriteLine($"Cannot serve MODEL_PATH={modelPath}: {e.Message}");
    return 1;
}

// Class names: the Score column's slot names (class i is key i+1).
var outputSchema = model.GetOutputSchema(inputSchema);
VBuffer<ReadOnlyMemory<char>> slotNames = default;
outputSchema["Score"].GetSlotNames(ref slotNames);
string[] classNames = slotNames.DenseValues().Select(s => s.ToString()).ToArray();
int featureSize = inputSchema["Features"].Type is VectorDataViewType { Size: > 0 } vector ? vector.Size : 784;

builder.Services.AddSingleton<ObjectPool<PredictionEngine<ImageInput, Prediction>>>(_ =>
    new DefaultObjectPoolProvider { MaximumRetained = Environment.ProcessorCount * 2 }
        .Create(new PredictionEnginePolicy(mlContext, model))); // engines are disposed with the pool at shutdown

var app = builder.Build();

app.MapGet("/model", () => Results.Ok(new { modelPath, featureSize, classNames }));

app.MapPost("/predict", (PredictRequest request, ObjectPool<PredictionEngine<ImageInput, Prediction>> pool) =>
{
    if (request.Features is not { } features || features.Length != featureSize || !features.All(float.IsFinite))
        return Results.BadRequest(new { error = $"'features' must hold {featureSize} numbers: the 28x28 grayscale pixels scaled to [0, 1], row by row." });

    PredictionEngine<ImageInput, Prediction> engine = pool.Get();
    Prediction prediction;
    try
    {
        prediction = engine.Predict(new ImageInput { Features = features });
    }
    finally
    {
        pool.Return(engine);
    }
    int index = (int)prediction.PredictedLabel - 1;
    return Results.Ok(new PredictResponse(
        classNames[index],
        index,
        prediction.Score[index],
        classNames.Select((name, k) => (name, k)).ToDictionary(c => c.name, c => prediction.Score[c.k])));
});

app.Run();
return 0;

/// <summary>Request body of POST /predict: 784 pixels in [0, 1].</summary>
public sealed record PredictRequest(float[]? Features);

/// <summary>Response of POST /predict.</summary>
public sealed record PredictResponse(string ClassName, int ClassIndex, float Probability, Dictionary<string, float> Probabilities);

/// <summary>How the pool makes engines: one PredictionEngine per concurrent request, reused afterwards.</summary>
internal sealed class PredictionEnginePolicy(MLContext mlContext, ITransformer model) : PooledObjectPolicy<PredictionEngine<ImageInput, Prediction>>
{
    public override PredictionEngine<ImageInput, Prediction> Create() =>
        mlContext.Model.CreatePredictionEngine<ImageInput, Prediction>(model);

    public override bool Return(PredictionEngine<ImageInput, Prediction> engine) => true;
}
