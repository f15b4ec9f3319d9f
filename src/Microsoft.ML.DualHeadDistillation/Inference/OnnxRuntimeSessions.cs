using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.DualHeadDistillation.Inference;

/// <summary>Opens ONNX Runtime sessions with errors that say what is missing.</summary>
internal static class OnnxRuntimeSessions
{
    public static InferenceSession Create(byte[] model, string what)
    {
        try
        {
            return new InferenceSession(model);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            throw new InvalidOperationException(
                $"ONNX Runtime's native library could not be loaded to run {what}. Add the package Microsoft.ML.OnnxRuntime (CPU) or Microsoft.ML.OnnxRuntime.Gpu to the application. ({e.GetBaseException().Message})", e);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"ONNX Runtime could not load {what}: {e.Message}", e);
        }
    }
}
