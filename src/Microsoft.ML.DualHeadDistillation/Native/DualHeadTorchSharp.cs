using Microsoft.ML.DualHeadDistillation.Native;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>TorchSharp's native library on Linux systems whose libstdc++ is older than GCC 13's (Debian 12, Ubuntu 22.04).</summary>
public static class DualHeadTorchSharp
{
    /// <summary>
    /// Makes TorchSharp 0.107's <c>libLibTorchSharp.so</c> loadable when the system libstdc++ lacks GLIBCXX_3.4.32:
    /// loads a copy with that requirement marked weak from a per-user cache folder (<c>DUALHEADML_NATIVE_CACHE</c>,
    /// default <c>$XDG_CACHE_HOME/dualheadml</c> or <c>~/.cache/dualheadml</c>). The trainer, checkpoints and student
    /// modules call it before touching TorchSharp; call it yourself only if your code uses <c>torch</c> before them.
    /// Does nothing elsewhere (Windows, macOS, newer libstdc++, an already fixed copy). Throws
    /// <see cref="InvalidOperationException"/> naming the file and the fix when the copy cannot be made or loaded.
    /// </summary>
    public static void EnsureNativeLibrary() => TorchSharpNative.EnsureLoadable();
}
