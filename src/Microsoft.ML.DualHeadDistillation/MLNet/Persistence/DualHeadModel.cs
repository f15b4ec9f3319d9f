using Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// Loading saved models that contain a DualHeadDistill student. A saved student is ML.NET's own
/// OnnxTransformer plus one stateless mapping of this package (<see cref="PredictedIndexMapping"/>).
/// ML.NET records the assembly of that mapping in the zip and loads it by name, so plain
/// <c>mlContext.Model.Load("model.zip", out var schema)</c> works in any application that references this
/// package, with no call of ours first (a fresh-process test checks it). TorchSharp's native library is
/// not loaded to load or score. <see cref="Load(MLContext, string, out DataViewSchema)"/> adds errors that
/// name the file; <see cref="Register"/> is for hosts that load assemblies in unusual ways.
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
    /// <c>mlContext.Model.Load(path)</c> (after <see cref="Register"/>), with errors that name the file: a missing
    /// file is a <see cref="FileNotFoundException"/>, a file that is not a readable ML.NET model (truncated,
    /// corrupted, not a zip) an <see cref="InvalidDataException"/>.
    /// </summary>
    public static ITransformer Load(MLContext mlContext, string path, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' was not found.", path);
        using var stream = File.OpenRead(path);
        return Load(mlContext, stream, path, out inputSchema);
    }

    /// <summary>As <see cref="Load(MLContext, string, out DataViewSchema)"/>, from a stream.</summary>
    public static ITransformer Load(MLContext mlContext, Stream stream, out DataViewSchema inputSchema)
        => Load(mlContext, stream, "the model stream", out inputSchema);

    private static ITransformer Load(MLContext mlContext, Stream stream, string source, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(stream);
        Register(mlContext);
        try
        {
            return mlContext.Model.Load(stream, out inputSchema);
        }
        catch (Exception e) when (e.GetBaseException() is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new InvalidOperationException(
                $"Loading {Describe(source)} needs ONNX Runtime's native library: add the package Microsoft.ML.OnnxRuntime (CPU) or Microsoft.ML.OnnxRuntime.Gpu to the application. ({e.GetBaseException().Message})", e);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
        {
            throw new InvalidDataException($"Could not load an ML.NET model from {Describe(source)}: the file is truncated, corrupted or not a model saved with mlContext.Model.Save ({e.GetBaseException().Message})", e);
        }
    }

    private static string Describe(string source) => source.StartsWith("the ", StringComparison.Ordinal) ? source : $"'{source}'";
}
