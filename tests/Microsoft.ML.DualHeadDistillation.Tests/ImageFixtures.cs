using Microsoft.ML.Data;
using SkiaSharp;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Small image folders written as real PNG/JPEG files: classes differ by colour and stripes, sizes vary.</summary>
internal static class ImageFixtures
{
    public static readonly string[] ClassNames = ["red", "green", "blue"];
    public const int K = 3;

    public sealed class Row
    {
        public string Label { get; set; } = "";
        public string Path { get; set; } = "";
        [VectorType(K)] public float[] TeacherLogits { get; set; } = [];
    }

    private sealed class Key { public string Label { get; set; } = ""; }

    /// <summary>
    /// Writes <paramref name="labeled"/> + <paramref name="unlabeled"/> images to <paramref name="folder"/> (sizes from
    /// 11 to 40 pixels, odd ones included; every fifth one grey, every seventh a JPEG) and returns their rows.
    /// </summary>
    public static List<Row> Write(string folder, int labeled, int unlabeled, int seed = 5, bool grey = false)
    {
        var r = new Random(seed);
        var rows = new List<Row>();
        for (int i = 0; i < labeled + unlabeled; i++)
        {
            int c = i % K;
            int w = 11 + r.Next(30), h = 11 + r.Next(30);
            bool isGrey = grey || i % 5 == 4;
            bool jpeg = i % 7 == 6;
            string name = $"img{i:D4}.{(jpeg ? "jpg" : "png")}";
            using (var bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque))
            {
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        int noise = r.Next(40);
                        bool stripe = ((c == 0 ? x : c == 1 ? y : x + y) / 3) % 2 == 0;
                        byte v = (byte)(stripe ? 200 + noise / 2 : 40 + noise);
                        byte rr = c == 0 ? v : (byte)noise, gg = c == 1 ? v : (byte)noise, bb = c == 2 ? v : (byte)noise;
                        if (isGrey) rr = gg = bb = v;
                        bitmap.SetPixel(x, y, new SKColor(rr, gg, bb));
                    }
                using var image = SKImage.FromBitmap(bitmap);
                using var encoded = image.Encode(jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 95);
                using var file = File.Create(System.IO.Path.Combine(folder, name));
                encoded.SaveTo(file);
            }
            var t = new float[K];
            for (int k = 0; k < K; k++) t[k] = (k == c ? 2.5f : 0f) + (float)(r.NextDouble() - 0.5);
            rows.Add(new Row { Label = i < labeled ? ClassNames[c] : "", Path = name, TeacherLogits = t });
        }
        return rows;
    }

    /// <summary>The rows with the label as a key and the images loaded as MLImage (<paramref name="encoded"/>: as raw bytes) in column "Image".</summary>
    public static IDataView Load<TRow>(MLContext ml, string folder, IEnumerable<TRow> rows, bool encoded = false) where TRow : class
    {
        var data = ml.Data.LoadFromEnumerable(rows);
        var keys = ml.Data.LoadFromEnumerable(ClassNames.Select(n => new Key { Label = n }));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys).Fit(data).Transform(data);
        return encoded
            ? ml.Transforms.LoadRawImageBytes("Image", folder, "Path").Fit(keyed).Transform(keyed)
            : ml.Transforms.LoadImages("Image", folder, "Path").Fit(keyed).Transform(keyed);
    }

    public static DualHeadDistillOptions Options(int epochs = 2, int seed = 3) => new()
    {
        FeatureColumnName = "Image",
        Backbone = DualHeadBackbone.SmallCnn,
        ImageShape = [3, 16, 16],
        EmbeddingSize = 16,
        NumberOfEpochs = epochs,
        LabeledBatchSize = 8,
        UnlabeledBatchSize = 8,
        Seed = seed,
        DataWorkers = 2,
    };
}
