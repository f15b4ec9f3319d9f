namespace Microsoft.ML.DualHeadDistillation.Native;

/// <summary>Whether this CPU does bfloat16 arithmetic natively (libtorch's oneDNN then runs bfloat16 convolutions and matrix products fast).</summary>
internal static class CpuBFloat16
{
    private static readonly Lazy<bool?> s_native = new(Read);
    private static readonly AsyncLocal<(bool? Native, bool Capped)?> s_fake = new();

    /// <summary>True with AVX512-BF16 or AMX-BF16, false without, null where it cannot be read (not Linux).</summary>
    public static bool? IsNative => s_fake.Value is { } fake ? fake.Native : s_native.Value;

    /// <summary>
    /// The probe is injectable: until the result is disposed, this flow of execution (and the tasks it starts) sees a CPU
    /// with (<paramref name="native"/>) or without native bfloat16 and oneDNN capped or not. For tests of what depends on it.
    /// </summary>
    public static IDisposable Fake(bool? native, bool capped = false)
    {
        var previous = s_fake.Value;
        s_fake.Value = (native, capped);
        return new Restore(() => s_fake.Value = previous);
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    /// <summary>
    /// True when ONEDNN_MAX_CPU_ISA (or its older name DNNL_MAX_CPU_ISA) is set, which caps oneDNN below its native bfloat16
    /// kernels when set to AVX512_CORE or lower: bfloat16 is then emulated, and runs repeat bit for bit.
    /// </summary>
    public static bool IsCapped => s_fake.Value is { } fake ? fake.Capped :
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ONEDNN_MAX_CPU_ISA")) || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DNNL_MAX_CPU_ISA"));

    /// <summary>The Fit warning under Precision = BFloat16 on a CPU with native bfloat16 (measured on AVX512-BF16: two 2-epoch Fits differed by up to 0.02 in a weight).</summary>
    public const string NotRepeatableWarning =
        "Precision = BFloat16 runs on this CPU's native bfloat16 kernels (oneDNN, avx512_bf16/amx_bf16), whose results are not bit-for-bit repeatable: two Fits with the same seed can differ slightly. For repeatable runs use Float32, or start the process with ONEDNN_MAX_CPU_ISA=AVX512_CORE (bfloat16 is then emulated, and slower).";

    private static bool? Read()
    {
        const string cpuinfo = "/proc/cpuinfo";
        if (!OperatingSystem.IsLinux() || !File.Exists(cpuinfo)) return null;
        try
        {
            foreach (var line in File.ReadLines(cpuinfo))
            {
                if (!line.StartsWith("flags", StringComparison.Ordinal)) continue;
                var flags = line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return flags.Contains("avx512_bf16") || flags.Contains("amx_bf16");
            }
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
