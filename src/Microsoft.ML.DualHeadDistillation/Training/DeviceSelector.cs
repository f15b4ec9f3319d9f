using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>Picks the TorchSharp device from the options and the MLContext's GPU settings.</summary>
internal static class DeviceSelector
{
    public static (Device Device, string? Warning) Select(DualHeadDevice requested, bool? fallbackOption, int? gpuDeviceId, bool contextFallback)
    {
        bool fallback = fallbackOption ?? contextFallback;
        switch (requested)
        {
            case DualHeadDevice.Cpu:
                return (CPU, null);
            case DualHeadDevice.Auto:
                return gpuDeviceId is int id && cuda.is_available() ? (new Device(DeviceType.CUDA, id), null) : (CPU, null);
            case DualHeadDevice.Cuda:
                if (cuda.is_available()) return (new Device(DeviceType.CUDA, gpuDeviceId ?? 0), null);
                if (fallback) return (CPU, "CUDA was requested but is not available (no CUDA libtorch backend or no GPU); training on the CPU because FallbackToCpu is set.");
                throw new InvalidOperationException("Device is Cuda but CUDA is not available: reference a CUDA libtorch backend (for example TorchSharp-cuda-windows) on a machine with an NVIDIA GPU, or set FallbackToCpu = true, or use Device = Cpu.");
            default:
                throw new ArgumentOutOfRangeException(nameof(requested), requested, "Unknown device.");
        }
    }
}
