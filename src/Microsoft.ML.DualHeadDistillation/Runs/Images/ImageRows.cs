using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>Image files as an ML.NET view: Label (a key over the run's classes; missing = unlabeled), Path, and Image (the encoded bytes).</summary>
public static class ImageRows
{
    /// <summary>One listed image: its label (empty: unlabeled) and path.</summary>
    public sealed class Row
    {
        public string Label { get; set; } = "";
        public string Path { get; set; } = "";
    }

    private sealed class ClassKey
    {
        public string Label { get; set; } = "";
    }

    /// <summary>The rows in the order given, labels mapped to keys 1..K in <paramref name="classes"/> order, images read lazily by LoadRawImageBytes.</summary>
    public static IDataView Load(MLContext ml, IEnumerable<ImageItem> items, IReadOnlyList<string> classes)
    {
        var rows = ml.Data.LoadFromEnumerable(items.Select(i => new Row { Label = i.Label ?? "", Path = i.Path }).ToArray());
        var keys = ml.Data.LoadFromEnumerable(classes.Select(c => new ClassKey { Label = c }).ToArray());
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys)
            .Append(ml.Transforms.LoadRawImageBytes("Image", null, "Path"))
            .Fit(rows).Transform(rows);
    }

    /// <summary>A file's bytes, read when the row's "Image" value is asked for.</summary>
    public sealed class FileRow
    {
        public string Path { get; set; } = "";
        [Microsoft.ML.Data.VectorType] public byte[] Image => File.ReadAllBytes(Path);
    }

    /// <summary>
    /// Path and Image (encoded bytes) only, read on the cursor's own thread: for `dualhead label`, whose workers each take
    /// one core. (LoadRawImageBytes reads ahead on helper threads that wait by spinning, which takes CPU from the next
    /// worker on the machine.)
    /// </summary>
    public static IDataView LoadSequential(MLContext ml, IEnumerable<string> paths)
        => ml.Data.LoadFromEnumerable(paths.Select(p => new FileRow { Path = p }).ToArray());
}
