using System.IO.Compression;
using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data.Images;

namespace Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

/// <summary>
/// A model that reads images, saved as an ML.NET model zip. ML.NET's zip can hold only ML.NET's own transformers,
/// so the zip holds the student as for a vector model (<see cref="PersistedScoringChain"/>, reading the center-crop
/// pixels from a float vector column named like the image column) plus one entry of this library,
/// <c>DualHeadImageInput.json</c>: the image column, channels, crop and stored-square size.
/// <see cref="DualHeadModel.Load(MLContext, string, out DataViewSchema)"/> puts the image preparation back in front
/// (decode, shorter side to S, center square, center crop: the code the trainer's un-augmented view uses), so the
/// loaded model scores encoded image bytes exactly as the trained model does. Plain <c>mlContext.Model.Load</c>
/// on the same file gives the vector form (input: the [C, H, W] center crop in [0, 1]).
/// </summary>
internal static class ImageModelZip
{
    public const string EntryName = "DualHeadImageInput.json";
    public const int FormatVersion = 1;

    internal sealed record Info(int FormatVersion, string Column, int Channels, int Height, int Width, int StorageSize)
    {
        public int FeatureSize => Channels * Height * Width;
    }

    /// <summary>The zip bytes of an image model (checked by <see cref="SavedModelVerifier"/> before they are returned).</summary>
    /// <remarks><paramref name="mlnetOnnx"/>: the ML.NET-flavored student graph to store (default: the model's own fp32 one; the int8 one for <see cref="DualHeadInt8Model"/>).</remarks>
    public static byte[] Save(MLContext ml, DualHeadDistillTransformer model, byte[]? mlnetOnnx = null)
    {
        var images = model.Input.Images!;
        var crop = images.Crop;
        var info = new Info(FormatVersion, model.FeatureColumnName, crop.Channels, crop.Height, crop.Width, images.StorageSize);
        using var buffer = PersistedScoringChain.SaveAndDispose(ml, model.BuildPersistedChain(mlnetOnnx), model.FeatureColumnName, info.FeatureSize);
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Update, leaveOpen: true))
        {
            using var entry = zip.CreateEntry(EntryName).Open();
            JsonSerializer.Serialize(entry, info);
        }
        var bytes = buffer.ToArray();
        SavedModelVerifier.Verify(bytes, "the model being saved");
        return bytes;
    }

    /// <summary>The image settings of a saved model, or null for a vector model. A damaged entry is an error naming <paramref name="source"/>.</summary>
    public static Info? Read(byte[] zipBytes, string source)
    {
        using var zip = new ZipArchive(new MemoryStream(zipBytes, writable: false), ZipArchiveMode.Read);
        var entry = zip.GetEntry(EntryName);
        if (entry is null) return null;
        Info? info;
        try
        {
            using var stream = entry.Open();
            info = JsonSerializer.Deserialize<Info>(stream);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{SavedModelVerifier.Describe(source)} is damaged: '{EntryName}' is not valid JSON ({e.Message}).", e);
        }
        if (info is null || info.FormatVersion != FormatVersion || string.IsNullOrEmpty(info.Column) || info.Channels is not (1 or 3)
            || info.Height < 1 || info.Width < 1 || info.StorageSize < Math.Max(info.Height, info.Width))
            throw new InvalidDataException($"{SavedModelVerifier.Describe(source)} holds an image model whose '{EntryName}' this library cannot use (format {info?.FormatVersion}; expected {FormatVersion} with a column, 1 or 3 channels and a stored square at least as large as the crop).");
        return info;
    }

    /// <summary>The loaded vector model with the image preparation in front; <paramref name="inputSchema"/> becomes the image column's.</summary>
    public static LoadedImageModel Wrap(MLContext ml, Info info, ReloadableModel vectorModel, byte[] zipBytes, out DataViewSchema inputSchema)
    {
        var inputDefinition = SchemaDefinition.Create(typeof(EncodedImage));
        inputDefinition[0].ColumnName = info.Column;
        var outputDefinition = SchemaDefinition.Create(typeof(CenterCrop));
        outputDefinition[0].ColumnName = info.Column;
        outputDefinition[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, info.FeatureSize);
        var empty = ml.Data.LoadFromEnumerable(Array.Empty<EncodedImage>(), inputDefinition);
        inputSchema = empty.Schema;
        var prepare = ml.Transforms.CustomMapping<EncodedImage, CenterCrop>((source, destination) => destination.Pixels = Prepare(info, source.Bytes),
            contractName: null, inputDefinition, outputDefinition).Fit(empty);
        return new LoadedImageModel(prepare, vectorModel, zipBytes);
    }

    /// <summary>One encoded image to the student's input, as the trainer's un-augmented view makes it.</summary>
    internal static float[] Prepare(Info info, byte[]? encoded)
    {
        string what = $"Image column '{info.Column}'";
        if (encoded is not { Length: > 0 }) throw new InvalidDataException($"{what} holds no bytes; expected an encoded image (PNG, JPEG, BMP, GIF, WebP).");
        byte[] pixels = [];
        var (h, w) = ImageColumn.Decode(encoded, what, info.Channels, ref pixels);
        int s = info.StorageSize;
        var square = new byte[info.Channels * s * s];
        ImageSquare.Store(pixels, info.Channels, h, w, s, square);
        var result = new float[info.FeatureSize];
        ImageSquare.CenterCrop(square, info.Channels, s, info.Height, info.Width, result);
        return result;
    }

    /// <summary>The image column as the loaded model reads it (renamed by the schema definition).</summary>
    internal sealed class EncodedImage
    {
        public byte[] Bytes { get; set; } = [];
    }

    /// <summary>The student's input, under the image column's name (it hides the bytes).</summary>
    internal sealed class CenterCrop
    {
        public float[] Pixels { get; set; } = [];
    }
}

/// <summary>
/// A saved image model as <see cref="DualHeadModel.Load(MLContext, string, out DataViewSchema)"/> returns it: the image
/// preparation, then the reloadable ML.NET chain. It cannot be saved with <c>mlContext.Model.Save</c> (the preparation is
/// not one of ML.NET's transformers); <see cref="DualHeadModel.Save"/> writes the file it was loaded from.
/// </summary>
internal sealed class LoadedImageModel : ITransformer, IDisposable
{
    private readonly TransformerChain<ITransformer> _chain;
    private readonly ReloadableModel _model;

    public LoadedImageModel(ITransformer prepare, ReloadableModel model, byte[] zipBytes)
    {
        _model = model;
        _chain = new TransformerChain<ITransformer>(prepare, model);
        ZipBytes = zipBytes;
    }

    /// <summary>The verified bytes of the file it was loaded from.</summary>
    public byte[] ZipBytes { get; }

    public bool IsRowToRowMapper => true;
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => _chain.GetOutputSchema(inputSchema);
    public IDataView Transform(IDataView input) => _chain.Transform(input);
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => ((ITransformer)_chain).GetRowToRowMapper(inputSchema);

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException("This image model was loaded with DualHeadModel.Load; ML.NET's Model.Save cannot hold its image preparation. Save it with DualHeadModel.Save (it writes the file it was loaded from) or copy that file.");

    public void Dispose() => _model.Dispose();
}
