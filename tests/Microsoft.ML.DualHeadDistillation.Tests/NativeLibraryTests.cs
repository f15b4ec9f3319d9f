using System.Text;
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
