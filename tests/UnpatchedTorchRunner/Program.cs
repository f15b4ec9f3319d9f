// Usage: UnpatchedTorchRunner train | torch-first
//   train:       trains a tiny DualHeadDistill model through the library, evaluates it, prints one JSON line.
//   torch-first: touches TorchSharp directly before the library does (no run-time fix), prints the error.
// Either way it reports which libLibTorchSharp.so the process mapped (from /proc/self/maps).
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;

static string? Mapped() => File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
    .Where(f => f.Length >= 6).Select(f => f[5]).FirstOrDefault(p => p.EndsWith("/libLibTorchSharp.so"));

string mode = args.FirstOrDefault() ?? "train";
if (mode == "torch-first")
{
    try
    {
        using var t = TorchSharp.torch.ones(2);
        Console.WriteLine(JsonSerializer.Serialize(new { ok = true, mapped = Mapped() }));
        return 0;
    }
    catch (Exception e)
    {
        var inner = e is TypeInitializationException { InnerException: { } i } ? i : e;
        Console.WriteLine(JsonSerializer.Serialize(new { ok = false, error = inner.GetType().Name + ": " + inner.Message.Split('\n')[0], mapped = Mapped() }));
        return 3;
    }
}

const int D = 8, K = 3;
string[] names = ["cat", "dog", "bird"];
var r = new Random(7);
var rows = Enumerable.Range(0, 300).Select(i =>
{
    int c = i % K;
    var x = Enumerable.Range(0, D).Select(j => (float)(r.NextDouble() * 2 - 1) + (j % K == c ? 1.5f : 0f)).ToArray();
    var t = Enumerable.Range(0, K).Select(k => (k == c ? 3f : 0f) + (float)(r.NextDouble() - 0.5)).ToArray();
    return new Row { Label = i < 60 || i >= 240 ? names[c] : "", Features = x, TeacherLogits = t };
}).ToList();

var ml = new MLContext(seed: 1);
var keys = ml.Data.LoadFromEnumerable(names.Select(n => new Key { Label = n }));
var toKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys);
var train = ml.Data.LoadFromEnumerable(rows.Take(240));
var test = ml.Data.LoadFromEnumerable(rows.Skip(240));
try
{
    var model = toKey.Append(ml.MulticlassClassification.Trainers.DualHeadDistill(new DualHeadDistillOptions
    {
        Backbone = DualHeadBackbone.Mlp,
        NumberOfEpochs = 3,
        Seed = 3,
    })).Fit(train);
    double accuracy = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
    Console.WriteLine(JsonSerializer.Serialize(new { ok = true, accuracy, mapped = Mapped() }));
    model.LastTransformer.Dispose();
    return 0;
}
catch (Exception e)
{
    Console.WriteLine(JsonSerializer.Serialize(new { ok = false, error = e.GetType().Name + ": " + e.Message, mapped = Mapped() }));
    return 1;
}

sealed class Row
{
    public string Label { get; set; } = "";
    [VectorType(8)] public float[] Features { get; set; } = [];
    [VectorType(3)] public float[] TeacherLogits { get; set; } = [];
}

sealed class Key { public string Label { get; set; } = ""; }
