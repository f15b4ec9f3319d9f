namespace Microsoft.ML.DualHeadDistillation.Native;

/// <summary>Whether this CPU does bfloat16 arithmetic natively (libtorch's oneDNN then runs bfloat16 convolutions and matrix products fast).</summary>
internal static class CpuBFloat16
{
    private static readonly Lazy<bool?> s_native = new(Read);

    /// <summary>True with AVX512-BF16 or AMX-BF16, false without, null where it cannot be read (not Linux).</summary>
    public static bool? IsNative => s_native.Value;

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
