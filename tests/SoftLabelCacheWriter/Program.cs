// Usage: SoftLabelCacheWriter <teacher.onnx> <cache-dir> <rows.bin> <first> <count> <loops>
// rows.bin: int32 rows, int32 D, then rows*D float32. Runs <loops> times Fit + Transform (every row read) +
// Dispose of a cached teacher, loop i on its own slice of rows [first, first + count); prints one line of
// counts and every cache warning, and exits 1 on any exception.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Teachers;

if (args.Length < 6)
{
    Console.Error.WriteLine("usage: SoftLabelCacheWriter <teacher.onnx> <cache-dir> <rows.bin> <first> <count> <loops>");
    return 2;
}
string model = args[0], cache = args[1];
int first = int.Parse(args[3]), count = int.Parse(args[4]), loops = int.Parse(args[5]);
float[][] rows;
using (var reader = new BinaryReader(File.OpenRead(args[2])))
{
    int n = reader.ReadInt32(), d = reader.ReadInt32();
    rows = new float[n][];
    for (int i = 0; i < n; i++)
    {
        rows[i] = new float[d];
        for (int j = 0; j < d; j++) rows[i][j] = reader.ReadSingle();
    }
}
var ml = new MLContext(seed: 0);
var warnings = new List<string>();
ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.Message); };
var definition = SchemaDefinition.Create(typeof(VectorRow));
definition["Pixels"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, rows[0].Length);
long computed = 0, hits = 0;
try
{
    for (int loop = 0; loop < loops; loop++)
    {
        int start = first + loop * count / loops, end = first + (loop + 1) * count / loops;
        var data = ml.Data.LoadFromEnumerable(rows[start..end].Select(r => new VectorRow { Pixels = r }), definition);
        using var teacher = ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions { InputColumnName = "Pixels", ModelPath = model, CacheDirectory = cache, BatchSize = 8 }).Fit(data);
        int read = teacher.Transform(data).GetColumn<float[]>("TeacherLogits").Count();
        if (read != end - start) throw new InvalidOperationException($"read {read} rows, expected {end - start}");
        computed += teacher.Statistics.RowsComputed;
        hits += teacher.Statistics.CacheHits;
        foreach (var w in teacher.CacheWarnings) Console.WriteLine("cache warning: " + w);
    }
}
catch (Exception e)
{
    Console.Error.WriteLine(e);
    return 1;
}
Console.WriteLine($"computed {computed} hits {hits} log warnings {warnings.Count}");
return 0;

public sealed class VectorRow
{
    [VectorType] public float[] Pixels { get; set; } = [];
}
