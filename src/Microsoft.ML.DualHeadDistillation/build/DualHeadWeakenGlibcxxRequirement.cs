// One source for the libLibTorchSharp.so fix, used twice:
//  * compiled into the library (DUALHEAD_LIBRARY is defined there): the run-time fix in TorchSharpNative;
//  * compiled by MSBuild's RoslynCodeTaskFactory from build/Microsoft.ML.DualHeadDistillation.targets
//    (the file ships next to the targets in the package): the build-time fix of the output copy.
// TorchSharp 0.107's libLibTorchSharp.so needs GLIBCXX_3.4.32 (GCC 13's libstdc++) for one symbol that
// no relocation uses; marking that Vernaux entry VER_FLG_WEAK (0x2) lets the loader accept older libstdc++.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Microsoft.ML.DualHeadDistillation.Native
{
    /// <summary>Reads and edits the version requirements (.gnu.version_r, SHT_GNU_verneed) of a 64-bit little-endian ELF file.</summary>
    internal static class ElfVersionNeeds
    {
        /// <summary>VER_FLG_WEAK: a missing version is then a warning for the loader, not an error.</summary>
        public const ushort WeakFlag = 0x2;

        /// <summary>True for a 64-bit little-endian ELF image (linux-x64, linux-arm64).</summary>
        public static bool IsElf64LittleEndian(byte[] b) =>
            b.Length >= 64 && b[0] == 0x7f && b[1] == (byte)'E' && b[2] == (byte)'L' && b[3] == (byte)'F' && b[4] == 2 && b[5] == 1;

        /// <summary>Version name (for example GLIBCXX_3.4.32) to its vna_flags, over every needed library.</summary>
        public static Dictionary<string, ushort> Read(byte[] b)
        {
            var result = new Dictionary<string, ushort>();
            Walk(b, (name, flagsOffset) => { result[name] = BitConverter.ToUInt16(b, flagsOffset); });
            return result;
        }

        /// <summary>Sets VER_FLG_WEAK on each named requirement that is not weak yet; returns how many entries changed.</summary>
        public static int MarkWeak(byte[] b, ICollection<string> versions)
        {
            int changed = 0;
            Walk(b, (name, flagsOffset) =>
            {
                ushort flags = BitConverter.ToUInt16(b, flagsOffset);
                if (!versions.Contains(name) || (flags & WeakFlag) != 0) return;
                flags |= WeakFlag;
                b[flagsOffset] = (byte)(flags & 0xff);
                b[flagsOffset + 1] = (byte)(flags >> 8);
                changed++;
            });
            return changed;
        }

        private static void Walk(byte[] b, Action<string, int> entry)
        {
            if (!IsElf64LittleEndian(b)) throw new InvalidDataException("not a 64-bit little-endian ELF file");
            try
            {
                long shoff = BitConverter.ToInt64(b, 0x28);
                int shentsize = BitConverter.ToUInt16(b, 0x3A);
                int shnum = BitConverter.ToUInt16(b, 0x3C);
                for (int s = 0; s < shnum; s++)
                {
                    int sh = checked((int)(shoff + (long)s * shentsize));
                    if (BitConverter.ToUInt32(b, sh + 4) != 0x6ffffffe) continue; // SHT_GNU_verneed
                    long off = BitConverter.ToInt64(b, sh + 0x18);
                    uint link = BitConverter.ToUInt32(b, sh + 0x28);
                    long strOff = BitConverter.ToInt64(b, checked((int)(shoff + (long)link * shentsize)) + 0x18);
                    for (long vn = off; ;)
                    {
                        int cnt = BitConverter.ToUInt16(b, checked((int)vn) + 2);
                        long va = vn + BitConverter.ToUInt32(b, checked((int)vn) + 8);
                        for (int i = 0; i < cnt; i++)
                        {
                            int start = checked((int)(strOff + BitConverter.ToUInt32(b, checked((int)va) + 8))), end = start;
                            while (b[end] != 0) end++;
                            entry(Encoding.ASCII.GetString(b, start, end - start), checked((int)va) + 4);
                            uint vnaNext = BitConverter.ToUInt32(b, checked((int)va) + 12);
                            if (vnaNext == 0) break;
                            va += vnaNext;
                        }
                        uint next = BitConverter.ToUInt32(b, checked((int)vn) + 12);
                        if (next == 0) break;
                        vn += next;
                    }
                }
            }
            catch (Exception e) when (e is ArgumentException || e is IndexOutOfRangeException || e is OverflowException)
            {
                throw new InvalidDataException("malformed ELF section or version tables", e);
            }
        }
    }
}

#if !DUALHEAD_LIBRARY
namespace Microsoft.ML.DualHeadDistillation.Build
{
    /// <summary>The MSBuild task of build/Microsoft.ML.DualHeadDistillation.targets: patches copies in the build/publish output.</summary>
    public sealed class DualHeadWeakenGlibcxxRequirement : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required] public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();
        [Microsoft.Build.Framework.Required] public string Versions { get; set; } = "";

        public override bool Execute()
        {
            var wanted = new HashSet<string>(Versions.Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries));
            foreach (var item in Files)
            {
                string path = item.ItemSpec;
                if (!File.Exists(path)) continue;
                byte[] b = File.ReadAllBytes(path);
                if (!Native.ElfVersionNeeds.IsElf64LittleEndian(b))
                {
                    Log.LogWarning("DualHeadML: {0} is not a 64-bit little-endian ELF file; not patched.", path);
                    continue;
                }
                int changed;
                try { changed = Native.ElfVersionNeeds.MarkWeak(b, wanted); }
                catch (InvalidDataException e)
                {
                    Log.LogWarning("DualHeadML: {0}: {1}; not patched.", path, e.Message);
                    continue;
                }
                if (changed == 0) continue;
                // Write to a temporary file first so an interrupted build never leaves a half-written library.
                string tmp = path + ".dualhead-tmp";
                File.WriteAllBytes(tmp, b);
                File.Replace(tmp, path, null);
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, "DualHeadML: marked {0} version requirement(s) weak in {1}", changed, path);
            }
            return !Log.HasLoggedErrors;
        }
    }
}
#endif
