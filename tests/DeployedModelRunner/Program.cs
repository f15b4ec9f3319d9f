// Usage: DeployedModelRunner <model.zip> <features.bin> <output.json> [--no-register]
// features.bin: int32 rows, int32 D, then rows*D float32. Loads the model in a fresh MLContext, scores every
// row with Transform and with a PredictionEngine, and writes what it saw as JSON.
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: DeployedModelRunner <model.zip> <features.bin> <output.json> [--no-register]");
    return 2;
}
var (modelPath, featuresPath, outputPath) = (args[0], args[1], args[2]);
bool register = !args.Contains("--no-register");

float[][] rows;
using (var reader = new BinaryReader(File.OpenRead(featuresPath)))
{
    int n = reader.ReadInt32(), d = reader.ReadInt32();
    rows = new float[n][];
    for (int i = 0; i < n; i++)
    {
        rows[i] = new float[d];
        for (int j = 0; j < d; j++) rows[i][j] = reader.ReadSingle();
    }
}

bool packageLoadedBeforeLoad() => AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name == "Microsoft.ML.DualHeadDistillation");
bool loadedBefore = packageLoadedBeforeLoad();
var ml = new MLContext(seed: 0);
if (register) Register(ml);
ITransformer model;
try
{
    model = ml.Model.Load(modelPath, out _);
}
catch (Exception e)
{
    File.WriteAllText(outputPath, JsonSerializer.Serialize(new { error = e.GetType().Name + ": " + e.Message }));
    return 1;
}

int size = rows[0].Length;
var definition = SchemaDefinition.Create(typeof(Input));
definition[nameof(Input.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
var data = ml.Data.LoadFromEnumerable(rows.Select(r => new Input { Features = r }), definition);
var scored = model.Transform(data);
var withNames = ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel").Fit(scored).Transform(scored);
var scores = withNames.GetColumn<float[]>("Score").ToArray();
var keys = withNames.GetColumn<uint>("PredictedLabel").ToArray();
var names = withNames.GetColumn<ReadOnlyMemory<char>>("PredictedClass").Select(m => m.ToString()).ToArray();
VBuffer<ReadOnlyMemory<char>> slotNames = default;
scored.Schema["Score"].GetSlotNames(ref slotNames);

var engine = ml.Model.CreatePredictionEngine<Input, Output>(model, inputSchemaDefinition: definition);
var engineScores = rows.Select(r => engine.Predict(new Input { Features = r }).Score).ToArray();

var maps = File.ReadAllText("/proc/self/maps");
File.WriteAllText(outputPath, JsonSerializer.Serialize(new
{
    scores,
    keys,
    names,
    engineScores,
    slotNames = slotNames.DenseValues().Select(s => s.ToString()).ToArray(),
    scoreType = scored.Schema["Score"].Type.ToString(),
    predictedLabelType = scored.Schema["PredictedLabel"].Type.ToString(),
    packageLoadedBeforeLoad = loadedBefore,
    torchNativeLoaded = maps.Contains("libtorch", StringComparison.Ordinal) || maps.Contains("LibTorchSharp", StringComparison.Ordinal),
    onnxRuntimeLoaded = maps.Contains("libonnxruntime", StringComparison.Ordinal),
    assemblies = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name).OrderBy(n => n).ToArray(),
}));
return 0;

// Kept out of Main so that with --no-register the package's assembly is never loaded before Load.
[System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
static void Register(MLContext ml) => DualHeadModel.Register(ml); // the one line a deployment needs before Load

public sealed class Input
{
    /// <summary>Unknown at prediction time; the saved pipeline starts with MapValueToKey("Label").</summary>
    public string Label { get; set; } = "";

    public float[] Features { get; set; } = [];
}

public sealed class Output
{
    public float[] Score { get; set; } = [];
}
