using System.Text;
using System.Text.Json;
using Microsoft.ML.DualHeadDistillation.Native;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>TorchSharp loads with no manual step: the build targets weakened the GLIBCXX_3.4.32 requirement in our output.</summary>
[TestClass]
public sealed class NativeLibraryTests
{
    [TestMethod]
    public void TorchInitialisesAndComputes()
    {
        using var a = ones(2, 3);
        using var s = a.sum();
        Assert.AreEqual(6f, s.item<float>());
    }

    [TestMethod]
    public void OutputCopyOfLibTorchSharpHasWeakGlibcxx3432Requirement()
    {
        if (!OperatingSystem.IsLinux()) return; // the fix concerns Linux only
        var path = Directory.GetFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).Single();
        var flags = VersionNeedFlags(File.ReadAllBytes(path));
        Assert.IsTrue(flags.ContainsKey("GLIBCXX_3.4.32"), "TorchSharp 0.107's library should ask for GLIBCXX_3.4.32");
        Assert.AreEqual(2, flags["GLIBCXX_3.4.32"] & 2, "the requirement should be marked weak (VER_FLG_WEAK)");
        Assert.AreEqual(0, flags["GLIBCXX_3.4.18"] & 2, "other requirements stay as they were");
    }

    /// <summary>
    /// The run-time fix: an app that runs none of our build targets (its output keeps TorchSharp's original
    /// libLibTorchSharp.so) fails when it touches TorchSharp first, but trains through the library, which
    /// loads a fixed copy from the per-user cache. With an unusable cache folder the error names the cause and the fix.
    /// </summary>
    [TestMethod]
    public void UnpatchedAppTrainsThroughTheRuntimeFix()
    {
        if (!OperatingSystem.IsLinux()) return; // the fix concerns Linux only
        string runner = Path.GetFullPath(ChildProcess.BuiltProgram("UnpatchedTorchRunner"));
        string original = Path.Combine(Path.GetDirectoryName(runner)!, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.AreEqual(0, VersionNeedFlags(File.ReadAllBytes(original))["GLIBCXX_3.4.32"] & 2, "the runner's output copy should be TorchSharp's original");
        bool oldLibstdcxx = !File.ReadAllText(TorchSharpNative.LoadedPath("libstdc++.so.6")!, Encoding.Latin1).Contains("GLIBCXX_3.4.32");
        Assert.IsTrue(oldLibstdcxx, "this test needs a libstdc++ without GLIBCXX_3.4.32 (Debian 12, Ubuntu 22.04)");

        string cache = Path.Combine(Path.GetTempPath(), $"dualheadml-native-test-{Guid.NewGuid():N}");
        var env = new Dictionary<string, string?> { [TorchSharpNative.CacheVariable] = cache };
        try
        {
            // NUGET_PACKAGES pointing nowhere keeps TorchSharp from copying libtorch (~478 MB) into the runner's folder.
            var first = ChildProcess.Run(runner, ["torch-first"], environment: new Dictionary<string, string?>(env) { ["NUGET_PACKAGES"] = Path.Combine(cache, "no-packages") });
            Console.WriteLine($"torch-first: {first.Output}");
            Assert.AreEqual(3, first.Exit, $"touching TorchSharp before the library should fail here: {first.Output}{first.Error}");
            StringAssert.Contains(first.Output, "doesn't contain a reference to libtorch-cpu", "TorchSharp's own (misleading) message");

            var train = ChildProcess.Run(runner, ["train"], environment: env);
            Console.WriteLine($"train: {train.Output}");
            Assert.AreEqual(0, train.Exit, train.Output + train.Error);
            using var json = JsonDocument.Parse(train.Output.Trim().Split('\n').Last());
            string mapped = json.RootElement.GetProperty("mapped").GetString()!;
            string copy = Directory.GetFiles(cache, "libLibTorchSharp.so", SearchOption.AllDirectories).Single();
            Assert.AreEqual(copy, mapped, "the process should have loaded the cached, fixed copy");
            Assert.AreEqual(2, VersionNeedFlags(File.ReadAllBytes(copy))["GLIBCXX_3.4.32"] & 2, "the cached copy is marked weak");
            Assert.AreEqual(0, VersionNeedFlags(File.ReadAllBytes(original))["GLIBCXX_3.4.32"] & 2, "the original is left untouched");
            Assert.IsTrue(json.RootElement.GetProperty("accuracy").GetDouble() > 0.9, train.Output);

            // A second run reuses the cached copy (same folder, keyed by the original's hash).
            var again = ChildProcess.Run(runner, ["train"], environment: env);
            Assert.AreEqual(0, again.Exit, again.Output + again.Error);
            Assert.AreEqual(1, Directory.GetFiles(cache, "*", SearchOption.AllDirectories).Length, "one cached file, no temporary left behind");

            // An unusable cache folder (below a regular file): a clear error naming libstdc++, GLIBCXX_3.4.32 and the fix.
            string notAFolder = Path.Combine(cache, "file");
            File.WriteAllText(notAFolder, "");
            var bad = ChildProcess.Run(runner, ["train"], environment: new Dictionary<string, string?> { [TorchSharpNative.CacheVariable] = Path.Combine(notAFolder, "sub") });
            Console.WriteLine($"unusable cache: {bad.Output}");
            Assert.AreEqual(1, bad.Exit, bad.Output + bad.Error);
            using var badJson = JsonDocument.Parse(bad.Output.Trim().Split('\n').Last());
            string error = badJson.RootElement.GetProperty("error").GetString()!;
            Console.WriteLine($"unusable cache error: {error}");
            foreach (var part in new[] { "InvalidOperationException", "libstdc++", "GLIBCXX_3.4.32", original, "export DUALHEADML_NATIVE_CACHE=" })
                StringAssert.Contains(error, part);
        }
        finally
        {
            if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true);
        }
    }

    [TestMethod]
    public void SharedPatchCodeMatchesTheTestsReader()
    {
        if (!OperatingSystem.IsLinux()) return;
        string runner = Path.GetFullPath(ChildProcess.BuiltProgram("UnpatchedTorchRunner"));
        byte[] b = File.ReadAllBytes(Path.Combine(Path.GetDirectoryName(runner)!, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"));
        var before = VersionNeedFlags(b);
        CollectionAssert.AreEquivalent(before.ToDictionary(kv => kv.Key, kv => (ushort)kv.Value), ElfVersionNeeds.Read(b));
        Assert.AreEqual(1, ElfVersionNeeds.MarkWeak(b, ["GLIBCXX_3.4.32"]));
        Assert.AreEqual(0, ElfVersionNeeds.MarkWeak(b, ["GLIBCXX_3.4.32"]), "idempotent");
        var after = VersionNeedFlags(b);
        foreach (var (name, flags) in before)
            Assert.AreEqual(name == "GLIBCXX_3.4.32" ? flags | 2 : flags, after[name], name);
        Assert.ThrowsExactly<InvalidDataException>(() => ElfVersionNeeds.Read(new byte[64]));
    }

    /// <summary>Version name -> vna_flags from the ELF .gnu.version_r section.</summary>
    private static Dictionary<string, int> VersionNeedFlags(byte[] b)
    {
        var result = new Dictionary<string, int>();
        long shoff = BitConverter.ToInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A), shnum = BitConverter.ToUInt16(b, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            int sh = (int)(shoff + s * shentsize);
            if (BitConverter.ToUInt32(b, sh + 4) != 0x6ffffffe) continue;
            long off = BitConverter.ToInt64(b, sh + 0x18);
            int link = (int)BitConverter.ToUInt32(b, sh + 0x28);
            long strOff = BitConverter.ToInt64(b, (int)(shoff + link * shentsize) + 0x18);
            for (long vn = off; ; )
            {
                int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                long va = vn + BitConverter.ToUInt32(b, (int)vn + 8);
                for (int i = 0; i < cnt; i++)
                {
                    int start = (int)(strOff + BitConverter.ToUInt32(b, (int)va + 8)), end = start;
                    while (b[end] != 0) end++;
                    result[Encoding.ASCII.GetString(b, start, end - start)] = BitConverter.ToUInt16(b, (int)va + 4);
                    va += BitConverter.ToUInt32(b, (int)va + 12);
                }
                uint next = BitConverter.ToUInt32(b, (int)vn + 12);
                if (next == 0) break;
                vn += next;
            }
        }
        return result;
    }
}
