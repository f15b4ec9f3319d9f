using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Microsoft.ML.DualHeadDistillation.Native;

/// <summary>
/// The run-time half of the Debian 12 / Ubuntu 22.04 fix for TorchSharp 0.107. Its <c>libLibTorchSharp.so</c>
/// asks for GLIBCXX_3.4.32 (GCC 13's libstdc++), which those systems lack, and TorchSharp then reports a missing
/// libtorch reference. The package's build targets fix the copy in a build output; projects that run no
/// targets of ours (a ProjectReference from another repository, a notebook's <c>#r "nuget: ..."</c>) get this:
/// before TorchSharp's <c>torch</c> class first initialises, find the library TorchSharp is going to load, and
/// when it needs GLIBCXX_3.4.32 and the system's libstdc++ lacks it, write a copy with that requirement marked
/// weak to a per-user cache folder and load it. TorchSharp's own load by name then reuses it (the loader
/// matches its soname, libLibTorchSharp.so). If that cannot be done, a clear exception says why and how to fix it.
/// </summary>
internal static class TorchSharpNative
{
    /// <summary>The version requirement that is made weak (the only symbol bound to it is std::ios_base_library_init()).</summary>
    public const string Glibcxx = "GLIBCXX_3.4.32";
    /// <summary>A folder for the fixed copy; default <c>$XDG_CACHE_HOME/dualheadml</c> or <c>~/.cache/dualheadml</c>.</summary>
    public const string CacheVariable = "DUALHEADML_NATIVE_CACHE";
    private const string FileName = "libLibTorchSharp.so";
    private const string Ios_base_library_init = "_ZSt21ios_base_library_initv"; // std::ios_base_library_init(), GCC 13+

    private static readonly object s_gate = new();
    private static bool s_done;

    /// <summary>What the last call did (for tests and diagnostics): null before the first call.</summary>
    public static string? Outcome { get; private set; }

    /// <summary>Path of the fixed copy that was loaded, if one was.</summary>
    public static string? LoadedCopy { get; private set; }

    /// <summary>Makes sure TorchSharp's native library can load. Cheap after the first call. Must run before <c>torch</c> is touched.</summary>
    public static void EnsureLoadable()
    {
        if (s_done) { s_failure?.Throw(); return; }
        lock (s_gate)
        {
            if (s_done) { s_failure?.Throw(); return; }
            try
            {
                Outcome = Prepare();
            }
            catch (Exception e)
            {
                // Decided once per process: later calls rethrow the same error instead of re-reading the files.
                s_failure = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e);
                throw;
            }
            finally
            {
                s_done = true;
            }
        }
    }

    private static System.Runtime.ExceptionServices.ExceptionDispatchInfo? s_failure;

    /// <summary>For a base-constructor argument: runs <see cref="EnsureLoadable"/> and returns its argument.</summary>
    public static T Ensured<T>(T value)
    {
        EnsureLoadable();
        return value;
    }

    private static string Prepare()
    {
        if (!OperatingSystem.IsLinux() || !(RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64))
            return "not Linux x64/arm64: nothing to do";
        if (!NativeLibrary.TryLoad("libstdc++.so.6", out IntPtr stdcxx))
            return "no libstdc++.so.6: left to TorchSharp";
        if (NativeLibrary.TryGetExport(stdcxx, Ios_base_library_init, out _))
            return $"the system libstdc++ provides {Glibcxx}: nothing to do";

        Assembly torchSharp = typeof(TorchSharp.torch).Assembly; // typeof does not run torch's static constructor
        string rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var (source, libtorchDirs) = Locate(torchSharp, rid);
        if (source is null) return $"no {FileName} found: left to TorchSharp";

        byte[] original = File.ReadAllBytes(source);
        if (!ElfVersionNeeds.IsElf64LittleEndian(original)) return $"{source} is not a 64-bit ELF file: left to TorchSharp";
        var needs = ElfVersionNeeds.Read(original);
        if (!needs.TryGetValue(Glibcxx, out ushort flags)) return $"{source} does not need {Glibcxx}: nothing to do";
        if ((flags & ElfVersionNeeds.WeakFlag) != 0) return $"{source} already has a weak {Glibcxx} requirement: nothing to do";

        string stdcxxPath = LoadedPath("libstdc++.so.6") ?? "libstdc++.so.6";
        string cacheRoot = CacheRoot();
        string hash = Convert.ToHexString(SHA256.HashData(original))[..16].ToLowerInvariant();
        string copy = Path.Combine(cacheRoot, "libtorchsharp", hash, FileName);

        string? libtorch = libtorchDirs.FirstOrDefault(d => File.Exists(Path.Combine(d, "libtorch_cpu.so")));
        if (libtorch is null)
            throw Failure(source, stdcxxPath, copy, $"libtorch (libtorch_cpu.so) was not found next to it or in the NuGet packages folder",
                "reference the libtorch backend, e.g. `dotnet add package libtorch-cpu-linux-x64 --version 2.10.0` (a notebook: #r \"nuget: libtorch-cpu-linux-x64, 2.10.0\")");

        byte[] patched = (byte[])original.Clone();
        if (ElfVersionNeeds.MarkWeak(patched, new[] { Glibcxx }) != 1)
            throw Failure(source, stdcxxPath, copy, $"its {Glibcxx} entry could not be marked weak", RebuildFix);
        try
        {
            WriteAtomically(copy, patched);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Failure(source, stdcxxPath, copy, $"the copy could not be written ({e.Message})",
                $"export {CacheVariable}=/a/writable/folder   (any folder you can write; the fixed copy is cached there)");
        }

        try
        {
            // LibTorchSharp's DT_NEEDED libraries (libtorch.so, libtorch_cpu.so, libc10.so) are found by soname
            // once loaded by path; its RUNPATH ($ORIGIN) points at the cache folder, which holds only the copy.
            NativeLibrary.Load(Path.Combine(libtorch, "libtorch.so"));
            NativeLibrary.Load(copy);
        }
        catch (DllNotFoundException e)
        {
            throw Failure(source, stdcxxPath, copy, $"loading it failed: {e.Message}", RebuildFix);
        }
        // The very call TorchSharp makes first: by name, relative to its assembly. It must now reuse the copy.
        if (!NativeLibrary.TryLoad("LibTorchSharp", torchSharp, null, out _))
            throw Failure(source, stdcxxPath, copy, "TorchSharp's load by name still does not find it", RebuildFix);
        LoadedCopy = copy;
        return $"loaded {copy} (a copy of {source} with {Glibcxx} marked weak; libtorch from {libtorch})";
    }

    private const string RebuildFix =
        "reference the DualHeadML package (its build targets fix the copy in your output), or run on a system whose libstdc++ has GLIBCXX_3.4.32 (GCC 13+)";

    private static InvalidOperationException Failure(string source, string stdcxx, string copy, string reason, string fix) => new(
        $"TorchSharp cannot load its native library: {source} requires {Glibcxx} (GCC 13's libstdc++), which this system's libstdc++ " +
        $"({stdcxx}) does not provide (Debian 12 and Ubuntu 22.04 stop at GLIBCXX_3.4.30). DualHeadML loads a copy with that requirement " +
        $"marked weak from {copy}, but {reason}. Fix: {fix}");

    /// <summary>
    /// The file TorchSharp 0.107 will load, in its order: a load by name (the app's native search directories,
    /// then TorchSharp.dll's folder), then the folder it consolidates from NuGet packages (TorchSharp.dll's
    /// folder + "cpu", filled from torchsharp/VERSION/runtimes/RID/native). Also the folders where libtorch may be.
    /// </summary>
    private static (string? Source, List<string> LibtorchDirs) Locate(Assembly torchSharp, string rid)
    {
        string torchDir = Path.GetDirectoryName(torchSharp.Location) ?? AppContext.BaseDirectory;
        var searchDirs = ((AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") as string) ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        searchDirs.Add(torchDir);
        string consolidated = Path.Combine(torchDir, "cpu");

        // TorchSharp's "interactive scenario": TorchSharp.dll inside a NuGet packages folder (torchsharp/VERSION/lib/TFM).
        string? packages = null, version = null;
        string up4 = Path.GetFullPath(Path.Combine(torchDir, "..", "..", "..", "..")), up2 = Path.GetFullPath(Path.Combine(torchDir, "..", ".."));
        if (torchDir.Contains("torchsharp") && torchDir.Contains("lib") && Directory.Exists(up4))
            (packages, version) = (up4, Path.GetFileName(up2));
        packages ??= Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        version ??= torchSharp.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
            ?? torchSharp.GetName().Version?.ToString(3);

        var candidates = searchDirs.Select(d => Path.Combine(d, FileName)).ToList();
        candidates.Add(Path.Combine(consolidated, FileName));
        if (version is not null) candidates.Add(Path.Combine(packages, "torchsharp", version, "runtimes", rid, "native", FileName));
        string? source = candidates.FirstOrDefault(File.Exists);

        var libtorchDirs = new List<string>();
        if (source is not null) libtorchDirs.Add(Path.GetDirectoryName(source)!);
        libtorchDirs.AddRange(searchDirs);
        libtorchDirs.Add(consolidated);
        string libtorchPackage = Path.Combine(packages, $"libtorch-cpu-{rid}");
        if (Directory.Exists(libtorchPackage))
            libtorchDirs.AddRange(Directory.GetDirectories(libtorchPackage).OrderByDescending(d => NumericVersion(Path.GetFileName(d)))
                .Select(d => Path.Combine(d, "runtimes", rid, "native")));
        return (source, libtorchDirs);
    }

    /// <summary>A package folder's version for sorting (2.10.0 after 2.5.1); pre-release tags and unparsable names sort first.</summary>
    private static Version NumericVersion(string folder)
        => Version.TryParse(folder.Split('-', 2)[0], out var v) ? v : new Version(0, 0);

    private static string CacheRoot()
    {
        if (Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } explicitRoot) return explicitRoot;
        string xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(xdg, "dualheadml");
    }

    /// <summary>Writes a temporary file in the same folder, then renames it over the target: readers see the old file or the whole new one.</summary>
    private static void WriteAtomically(string path, byte[] content)
    {
        if (File.Exists(path) && new FileInfo(path).Length == content.Length && File.ReadAllBytes(path).AsSpan().SequenceEqual(content)) return;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllBytes(tmp, content);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>The path the process mapped for a library name (from /proc/self/maps), if any.</summary>
    internal static string? LoadedPath(string nameStart)
    {
        try
        {
            return File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length >= 6).Select(f => string.Join(' ', f.Skip(5)))
                .FirstOrDefault(p => Path.GetFileName(p).StartsWith(nameStart, StringComparison.Ordinal));
        }
        catch (IOException) { return null; }
    }
}
