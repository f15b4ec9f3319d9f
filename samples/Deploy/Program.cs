// Deploying the distilled student three ways, and checking that they agree on Fashion-MNIST's test images:
//   (a) mlContext.Model.Load + batch Transform + Evaluate,
//   (b) a PredictionEngine, one image at a time,
//   (c) plain ONNX Runtime on the exported student.onnx (StudentOnnx.cs; no ML.NET).
// Exits with 1 if they disagree. Neither libtorch nor TorchSharp's native library is needed or loaded.
//
//   dotnet run -c Release --project samples/Quickstart -- --save-model /tmp/qs-model/model.zip --export-onnx /tmp/qs-model/student.onnx
//   dotnet run --project samples/Deploy -- /tmp/qs-model/model.zip /tmp/qs-model/student.onnx [--rows 1000] [--request-json request.json]
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DualHeadML.Deploy;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.OnnxRuntime;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (args.Length < 2 || args[0].StartsWith("--", StringComparison.Ordinal) || args[1].StartsWith("--", StringComparison.Ordinal))
{
    Console.Error.WriteLine("usage: dotnet run --project samples/Deploy -- MODEL.zip STUDENT.onnx [--rows N] [--request-json PATH]");
    return 2;
}
string modelPath = args[0], onnxPath = args[1];
int rows = int.Parse(ArgValue("--rows") ?? "1000", CultureInfo.InvariantCulture);
const float Tolerance = 1e-5f;
var failures = new List<string>();

// Fashion-MNIST's test images (installed by scripts/install-data.sh); pixels already scaled to [0, 1].
string dir;
try { dir = FashionMnist.Locate(allowDownload: false); }
catch (FileNotFoundException e) { Console.Error.WriteLine(e.Message); return 2; }
var test = FashionMnist.Load(dir, train: false);
rows = Math.Clamp(rows, 1, test.Count);
var images = Enumerable.Range(0, rows)
    .Select(i => new ImageInput { Label = FashionMnist.ClassNames[test.Labels[i]], Features = test.Image(i).ToArray() })
    .ToArray();
Console.WriteLine($"Fashion-MNIST test images from {dir}: using the first {rows:N0}");

if (ArgValue("--request-json") is string requestPath)
{
    // A request body for samples/DeployWeb's POST /predict: the first test image.
    File.WriteAllText(requestPath, JsonSerializer.Serialize(new { features = images[0].Features }));
    Console.WriteLine($"Wrote {requestPath}: test image 0, a {images[0].Label}");
}

// ---- (a) Load the saved pipeline; batch Transform and Evaluate. ----
var mlContext = new MLContext(seed: 1);
var watch = Stopwatch.StartNew();
// DualHeadModel.Load = mlContext.Model.Load plus integrity checks (CRC-32 of every entry, the student's SHA-256),
// errors that name the file, and a model that several PredictionEngines can share and dispose.
ITransformer model = DualHeadModel.Load(mlContext, modelPath, out DataViewSchema inputSchema);
Console.WriteLine($"\n(a) Loaded {modelPath} in {watch.Elapsed.TotalMilliseconds:0} ms; input columns: " +
    string.Join(", ", inputSchema.Select(c => $"{c.Name} ({c.Type})")));

IDataView data = mlContext.Data.LoadFromEnumerable(images);
IDataView scored = model.Transform(data);
ReadPredictions(mlContext.Data.TakeRows(scored, 32)); // warm-up
watch.Restart();
Prediction[] batch = ReadPredictions(scored);
double batchSeconds = watch.Elapsed.TotalSeconds;
var metrics = mlContext.MulticlassClassification.Evaluate(scored); // Label (key), Score, PredictedLabel

// Class names: the Score column's slot names (class i is key i+1).
VBuffer<ReadOnlyMemory<char>> slotNames = default;
scored.Schema["Score"].GetSlotNames(ref slotNames);
string[] classNames = slotNames.DenseValues().Select(s => s.ToString()).ToArray();
// Or map the key back to its value, as a column:
var named = mlContext.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel").Fit(scored).Transform(scored);
string[] batchNames = named.GetColumn<ReadOnlyMemory<char>>("PredictedClass").Select(m => m.ToString()).ToArray();

Console.WriteLine($"    classes: {string.Join(", ", classNames)}");
Console.WriteLine($"    accuracy {metrics.MicroAccuracy:P2} (macro {metrics.MacroAccuracy:P2}, log-loss {metrics.LogLoss:0.0000}) on {rows:N0} images");
Console.WriteLine($"    Transform: {rows / batchSeconds:N0} images/s ({batchSeconds * 1000:0} ms for {rows:N0})");
for (int i = 0; i < rows; i++)
    if (batchNames[i] != classNames[batch[i].PredictedLabel - 1]) { failures.Add($"(a) row {i}: MapKeyToValue says {batchNames[i]}, the slot names {classNames[batch[i].PredictedLabel - 1]}"); break; }

// ---- (b) A PredictionEngine: one image at a time (not thread-safe: one per thread, or a pool). ----
using var engine = mlContext.Model.CreatePredictionEngine<ImageInput, Prediction>(model);
for (int i = 0; i < 32; i++) engine.Predict(new ImageInput { Features = images[i].Features }); // warm-up
var engineScores = new float[rows][];
var engineKeys = new uint[rows];
watch.Restart();
for (int i = 0; i < rows; i++)
{
    Prediction p = engine.Predict(new ImageInput { Features = images[i].Features }); // no label when predicting
    engineScores[i] = p.Score;
    engineKeys[i] = p.PredictedLabel;
}
double engineSeconds = watch.Elapsed.TotalSeconds;
Console.WriteLine($"\n(b) PredictionEngine: {rows / engineSeconds:N0} images/s ({engineSeconds * 1000:0} ms for {rows:N0}, one at a time)");
for (int i = 0; i < 5; i++)
{
    string predicted = classNames[engineKeys[i] - 1];
    Console.WriteLine($"    image {i}: {predicted,-12} {engineScores[i][engineKeys[i] - 1],7:P1}   (true: {images[i].Label})");
}
int engineExact = Enumerable.Range(0, rows).Count(i => engineScores[i].AsSpan().SequenceEqual(batch[i].Score) && engineKeys[i] == batch[i].PredictedLabel);
Console.WriteLine($"    identical Score and PredictedLabel to (a): {engineExact:N0} of {rows:N0}");
if (engineExact != rows) failures.Add($"(b) the PredictionEngine's Score differs from Transform's on {rows - engineExact} images");

// ---- (c) Plain ONNX Runtime on the exported student, batched, from raw pixel bytes. ----
using var student = new StudentOnnx(onnxPath);
Console.WriteLine($"\n(c) {onnxPath}: input '{student.InputName}' [N, {student.FeatureSize}], image {string.Join("x", student.ImageShape)}, " +
    $"preprocessing: pixel x {student.Scale:R}, mean {string.Join(",", student.Mean)}, std {string.Join(",", student.Std)}");
var features = new float[rows * student.FeatureSize];
for (int i = 0; i < rows; i++)
{
    // The raw bytes the dataset was read from (its pixels are byte / 255).
    byte[] raw = images[i].Features.Select(v => (byte)MathF.Round(v * 255f)).ToArray();
    student.Preprocess(raw, features.AsSpan(i * student.FeatureSize, student.FeatureSize));
}
// A 3-channel student (ResNet, MobileNet) reads the grey image three times over, as its pipeline's Concatenate did.
int pixels = images[0].Features.Length;
double featureDiff = features.Select((v, j) => Math.Abs(v - images[j / student.FeatureSize].Features[j % student.FeatureSize % pixels])).Max();
Console.WriteLine($"    preprocessing from metadata vs the dataset's features: max |difference| {featureDiff:G3}");
student.Predict(features, Math.Min(32, rows)); // warm-up
const int BatchSize = 256;
var probabilities = new float[rows * classNames.Length];
var ortIndex = new long[rows];
var ortNames = new string[rows];
watch.Restart();
for (int start = 0; start < rows; start += BatchSize)
{
    int n = Math.Min(BatchSize, rows - start);
    var slice = features.AsSpan(start * student.FeatureSize, n * student.FeatureSize).ToArray();
    var (p, index, name) = student.Predict(slice, n);
    p.CopyTo(probabilities, start * classNames.Length);
    index.CopyTo(ortIndex, start);
    name.CopyTo(ortNames, start);
}
double ortSeconds = watch.Elapsed.TotalSeconds;
Console.WriteLine($"    ONNX Runtime: {rows / ortSeconds:N0} images/s ({ortSeconds * 1000:0} ms for {rows:N0}, batches of {BatchSize})");
double maxDiff = 0;
int sameClass = 0, sameName = 0;
for (int i = 0; i < rows; i++)
{
    for (int k = 0; k < classNames.Length; k++)
        maxDiff = Math.Max(maxDiff, Math.Abs(probabilities[i * classNames.Length + k] - batch[i].Score[k]));
    if (ortIndex[i] + 1 == batch[i].PredictedLabel) sameClass++;
    if (ortNames[i] == batchNames[i]) sameName++;
}
int ortCorrect = Enumerable.Range(0, rows).Count(i => ortNames[i] == images[i].Label);
Console.WriteLine($"    accuracy {(double)ortCorrect / rows:P2}; max |probability difference| vs (a) {maxDiff:G3} (tolerance {Tolerance:G}); " +
    $"same class {sameClass:N0} of {rows:N0}, same class name {sameName:N0} of {rows:N0}");
if (!student.ClassNames.SequenceEqual(classNames)) failures.Add($"(c) the ONNX metadata's class names [{string.Join(", ", student.ClassNames)}] differ from the Score slot names");
if (maxDiff > Tolerance) failures.Add($"(c) ONNX Runtime's probabilities differ from Transform's by up to {maxDiff:G3} > {Tolerance:G}");
if (sameClass != rows || sameName != rows) failures.Add($"(c) ONNX Runtime predicts another class on {rows - Math.Min(sameClass, sameName)} images");

// The same metadata through the package's parser (for applications that reference DualHeadML anyway).
using (var session = new InferenceSession(onnxPath))
{
    var meta = StudentOnnxMetadata.Read(session.ModelMetadata.CustomMetadataMap, onnxPath);
    Console.WriteLine($"    metadata (StudentOnnxMetadata.Read): {meta.Student}; mode {meta.Mode}, alpha {meta.Alpha}, beta {meta.Beta}");
    if (!meta.ClassNames.SequenceEqual(student.ClassNames) || meta.InputName != student.InputName || meta.FeatureSize != student.FeatureSize)
        failures.Add("(c) StudentOnnxMetadata.Read disagrees with the plain metadata reading");
}

if (File.Exists("/proc/self/maps")) // Linux: which native libraries this process loaded
{
    string maps = File.ReadAllText("/proc/self/maps");
    bool torch = maps.Contains("libtorch", StringComparison.Ordinal) || maps.Contains("LibTorchSharp", StringComparison.Ordinal);
    Console.WriteLine($"\nNative libraries loaded: onnxruntime {maps.Contains("libonnxruntime", StringComparison.Ordinal)}, libtorch/LibTorchSharp {torch}");
}

Console.WriteLine();
if (failures.Count > 0)
{
    foreach (var f in failures) Console.Error.WriteLine($"DISAGREEMENT {f}");
    return 1;
}
Console.WriteLine($"OK: (a) Transform, (b) PredictionEngine and (c) plain ONNX Runtime agree on {rows:N0} images " +
    $"(a = b exactly; |a - c| <= {maxDiff:G3}; same classes).");
return 0;

Prediction[] ReadPredictions(IDataView view) =>
    mlContext.Data.CreateEnumerable<Prediction>(view, reuseRowObject: false).ToArray();

string? ArgValue(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
