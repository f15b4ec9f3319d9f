using Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// Saving and loading models that contain a DualHeadDistill student. A saved student is ML.NET's own
/// OnnxTransformer plus one stateless mapping of this package (<see cref="PredictedIndexMapping"/>).
/// ML.NET records the assembly of that mapping in the zip and loads it by name, so plain
/// <c>mlContext.Model.Load("model.zip", out var schema)</c> works in any application that references this
/// package, with no call of ours first (a fresh-process test checks it). TorchSharp's native library is
/// not loaded to load or score. <see cref="Save"/> writes atomically; <see cref="Load(MLContext, string, out DataViewSchema)"/>
/// verifies what it reads (CRC-32 of every entry, the student's SHA-256), names the file in every error and
/// returns a model that several PredictionEngines can share and dispose. <see cref="Register"/> is for hosts
/// that load assemblies in unusual ways.
/// </summary>
public static class DualHeadModel
{
    /// <summary>
    /// Registers this package's assembly with <paramref name="mlContext"/>'s component catalog. Not needed in
    /// ordinary applications (ML.NET loads the assembly by the name stored in the model); useful where
    /// assemblies cannot be loaded by name (plug-in hosts with their own load contexts).
    /// </summary>
    public static void Register(MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        mlContext.ComponentCatalog.RegisterAssembly(typeof(DualHeadModel).Assembly);
    }

    /// <summary>
    /// Saves <paramref name="model"/> as <c>mlContext.Model.Save</c> does, but atomically: the zip is written to a
    /// temporary file beside <paramref name="path"/>, read back and checked, then renamed over it. A failure (a full
    /// disk, a missing folder, a model that cannot be saved) leaves no partial file and an existing model file as it was.
    /// </summary>
    /// <remarks>
    /// A <see cref="DualHeadDistillTransformer"/> that reads images (trained on a LoadImages or LoadRawImageBytes column)
    /// is saved with its image preparation (<paramref name="inputSchema"/> is then not used): <see cref="Load(MLContext, string, out DataViewSchema)"/>
    /// gives a model whose input is the image column as encoded bytes (a <c>byte[]</c> property, or LoadRawImageBytes),
    /// scored exactly as the trained model scores it; plain <c>mlContext.Model.Load</c> gives the student on its
    /// [C, H, W] center-crop input. Save such a model itself, not a pipeline that contains it.
    /// </remarks>
    public static void Save(MLContext mlContext, ITransformer model, DataViewSchema inputSchema, string path)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        switch (model)
        {
            case DualHeadDistillTransformer { Input.IsImage: true } images:
                Export.AtomicFile.Write(path, ImageModelZip.Save(mlContext, images));
                return;
            case LoadedImageModel loaded:
                Export.AtomicFile.Write(path, loaded.ZipBytes);
                return;
            case DualHeadInt8Model int8:
                Export.AtomicFile.Write(path, int8.ZipBytes);
                return;
        }
        Export.AtomicFile.Write(path, stream => mlContext.Model.Save(model, inputSchema, stream));
    }

    /// <summary>
    /// Loads a saved model with checks <c>mlContext.Model.Load</c> does not make: every zip entry is checked against
    /// its CRC-32 and the student's ONNX graph against the SHA-256 sealed into it at save, and the file must hold a
    /// DualHeadDistill student. A missing file is a <see cref="FileNotFoundException"/>; a damaged, truncated or
    /// foreign one an <see cref="InvalidDataException"/> naming it. The returned model may be shared by several
    /// PredictionEngines: disposing one (which disposes the model) releases the native session, and the model
    /// reloads itself from memory on next use, so the other engines keep working.
    /// </summary>
    public static ITransformer Load(MLContext mlContext, string path, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' was not found.", path);
        return Load(mlContext, File.ReadAllBytes(path), path, out inputSchema);
    }

    /// <summary>As <see cref="Load(MLContext, string, out DataViewSchema)"/>, from a stream (read to its end).</summary>
    public static ITransformer Load(MLContext mlContext, Stream stream, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return Load(mlContext, buffer.ToArray(), "the model stream", out inputSchema);
    }

    /// <summary>
    /// What the student in a saved model is, from its ONNX metadata, after the checks of
    /// <see cref="Load(MLContext, string, out DataViewSchema)"/> (no ONNX Runtime session is made): classes, student,
    /// alpha/beta, and <see cref="Export.StudentOnnxMetadata.Precision"/> with an int8 student's checked accuracy.
    /// </summary>
    public static Export.StudentOnnxMetadata Describe(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' was not found.", path);
        return Export.StudentOnnxMetadata.Read(SavedModelVerifier.StudentMetadata(File.ReadAllBytes(path), path), path);
    }

    internal static ITransformer Load(MLContext mlContext, byte[] bytes, string source, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        SavedModelVerifier.Verify(bytes, source);
        var images = ImageModelZip.Read(bytes, source);
        Register(mlContext);
        try
        {
            var loaded = mlContext.Model.Load(new MemoryStream(bytes, writable: false), out inputSchema);
            var model = new ReloadableModel(mlContext, bytes, loaded);
            return images is null ? model : ImageModelZip.Wrap(mlContext, images, model, bytes, out inputSchema);
        }
        catch (Exception e) when (e.GetBaseException() is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new InvalidOperationException(
                $"Loading {SavedModelVerifier.Describe(source)} needs ONNX Runtime's native library: add the package Microsoft.ML.OnnxRuntime (CPU) or Microsoft.ML.OnnxRuntime.Gpu to the application. ({e.GetBaseException().Message})", e);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
        {
            throw new InvalidDataException($"Could not load an ML.NET model from {SavedModelVerifier.Describe(source)}: the file is truncated, corrupted or not a model saved with mlContext.Model.Save ({e.GetBaseException().Message})", e);
        }
    }
}
