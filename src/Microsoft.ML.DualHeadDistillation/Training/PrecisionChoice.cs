using Microsoft.ML.DualHeadDistillation.Native;
using TorchSharp;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>The arithmetic a run trains in (never <see cref="DualHeadPrecision.Auto"/>) and why: logged, reported and checkpointed.</summary>
internal sealed record PrecisionChoice(DualHeadPrecision Precision, string Reason)
{
    /// <summary>
    /// Resolves <see cref="DualHeadPrecision.Auto"/>: the checkpoint's precision when resuming; else bfloat16 on CUDA and on a CPU whose
    /// bfloat16 is native (<see cref="CpuBFloat16"/>, injectable in tests), float32 elsewhere. An explicit choice is kept.
    /// </summary>
    public static PrecisionChoice Resolve(DualHeadPrecision requested, DeviceType device, DualHeadPrecision? checkpoint = null, Students.BackboneDefinition? backbone = null)
    {
        switch (requested)
        {
            case DualHeadPrecision.Float32:
                return new(requested, "Precision = Float32 was asked for");
            case DualHeadPrecision.BFloat16:
                return new(requested, "Precision = BFloat16 was asked for");
            case DualHeadPrecision.Auto:
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.Precision), requested, "Unknown precision; expected Auto, Float32 or BFloat16.");
        }
        if (checkpoint is { } resumed && resumed != DualHeadPrecision.Auto)
            return new(resumed, $"Auto: the resumed checkpoint trained in {resumed}");
        if (device == DeviceType.CUDA)
            return new(DualHeadPrecision.BFloat16, "Auto: CUDA computes bfloat16 natively");
        return CpuBFloat16.IsNative switch
        {
            true when CpuBFloat16.IsCapped => new(DualHeadPrecision.Float32,
                "Auto: this CPU has native bfloat16 (avx512_bf16/amx_bf16) but ONEDNN_MAX_CPU_ISA caps oneDNN below it, so bfloat16 would be emulated (slower than float32)"),
            true when backbone is { BFloat16Pays: false } => new(DualHeadPrecision.Float32,
                $"Auto: this CPU has native bfloat16, but backbone {backbone.Name} trains faster in float32 (channels-last) than in bfloat16 on it (its depthwise convolutions are slow in bfloat16)"),
            true => new(DualHeadPrecision.BFloat16,
                "Auto: this CPU has native bfloat16 arithmetic (avx512_bf16/amx_bf16 in /proc/cpuinfo); runs are not bit-for-bit repeatable, set Precision = Float32 for that"),
            false => new(DualHeadPrecision.Float32,
                "Auto: this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo); libtorch would emulate it, slower than float32"),
            null => new(DualHeadPrecision.Float32, "Auto: this CPU's features cannot be read (not Linux), so float32, which is fast everywhere"),
        };
    }

    public override string ToString() => $"{Precision} ({Reason})";
}
