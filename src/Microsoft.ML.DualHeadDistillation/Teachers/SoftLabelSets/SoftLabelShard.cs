using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Shard <see cref="Index"/> of <see cref="Count"/> of a teacher-labeling job: the rows whose stable id hashes to it
/// (<see cref="SoftLabelRowIds.Hash"/> mod <see cref="Count"/>). One Parquet file per shard, named
/// <c>shard-IIIII-of-NNNNN.parquet</c>, so a retried Kubernetes pod with the same <c>JOB_COMPLETION_INDEX</c> rewrites
/// its own file and never another's.
/// </summary>
public readonly record struct SoftLabelShard
{
    public SoftLabelShard(int index, int count)
    {
        if (count < 1 || count > MaxCount) throw new ArgumentOutOfRangeException(nameof(count), count, $"The shard count must be in 1..{MaxCount} (shard files are numbered with five digits).");
        if (index < 0 || index >= count) throw new ArgumentOutOfRangeException(nameof(index), index, $"The shard index must be in 0..{count - 1} (shards are numbered from 0, as Kubernetes' JOB_COMPLETION_INDEX is).");
        Index = index;
        Count = count;
    }

    /// <summary>The most shards a job can have (file names carry five digits).</summary>
    public const int MaxCount = 99_999;

    /// <summary>0-based shard index.</summary>
    public int Index { get; }
    /// <summary>N, the number of shards.</summary>
    public int Count { get; }
    /// <summary>The whole input as one shard (a single-process run).</summary>
    public static SoftLabelShard Whole => new(0, 1);

    /// <summary>The shard's file name in the output folder.</summary>
    public string FileName => FileNameOf(Index, Count);

    public static string FileNameOf(int index, int count) => string.Create(CultureInfo.InvariantCulture, $"shard-{index:D5}-of-{count:D5}.parquet");

    /// <summary>True when the row with this id belongs to this shard.</summary>
    public bool Owns(string rowId) => OwnsHash(SoftLabelRowIds.Hash(rowId));

    /// <summary>True when a row whose id hashes to <paramref name="hash"/> (<see cref="SoftLabelRowIds.Hash"/>) belongs to this shard: the one rule of the format.</summary>
    public bool OwnsHash(ulong hash) => ShardOf(hash, Count) == Index;

    /// <summary>The shard (of <paramref name="count"/>) a row whose id hashes to <paramref name="hash"/> belongs to.</summary>
    public static int ShardOf(ulong hash, int count) => (int)(hash % (ulong)count);

    /// <summary>Parses "I/N" (for example "2/8"); <paramref name="option"/> names the option in errors.</summary>
    public static SoftLabelShard Parse(string text, string option)
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i) || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n))
            throw new ArgumentException($"{option} '{text}': expected I/N, the 0-based shard index and the shard count, for example 0/4.", option);
        if (n < 1 || i >= n || n > MaxCount) throw new ArgumentException($"{option} '{text}': the index must be in 0..N-1 and N in 1..{MaxCount}.", option);
        return new SoftLabelShard(i, n);
    }

    /// <summary>Parses a file name written by <see cref="FileName"/>; false for any other name.</summary>
    public static bool TryParseFileName(string fileName, out SoftLabelShard shard)
    {
        shard = default;
        var m = System.Text.RegularExpressions.Regex.Match(fileName, @"^shard-([0-9]{5})-of-([0-9]{5})\.parquet$");
        if (!m.Success) return false;
        int i = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), n = int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        if (n < 1 || i >= n) return false;
        shard = new SoftLabelShard(i, n);
        return true;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Index}/{Count}");
}

/// <summary>Row ids of soft-label sets: stable strings (an image's path relative to the labeled folder, '/'-separated).</summary>
internal static class SoftLabelRowIds
{
    /// <summary>The first 8 bytes of SHA-256(UTF-8 id), big-endian: stable across processes, machines and .NET versions.</summary>
    public static ulong Hash(string rowId)
    {
        ArgumentNullException.ThrowIfNull(rowId);
        Span<byte> digest = stackalloc byte[32];
        int max = Encoding.UTF8.GetMaxByteCount(rowId.Length);
        byte[]? rented = max > 512 ? new byte[max] : null;
        Span<byte> utf8 = rented ?? stackalloc byte[512];
        int n = Encoding.UTF8.GetBytes(rowId, utf8);
        SHA256.HashData(utf8[..n], digest);
        return BinaryPrimitives.ReadUInt64BigEndian(digest);
    }

    /// <summary>
    /// The id of a file under <paramref name="root"/>: its path relative to the root with '/' separators (a relative
    /// <paramref name="path"/> is taken relative to <paramref name="root"/>). On Linux '\' is a file name character and stays.
    /// </summary>
    public static string FromPath(string root, string path)
    {
        string full = Path.GetFullPath(root);
        return Normalize(Path.GetRelativePath(full, Path.GetFullPath(path, full)));
    }

    /// <summary>An id as written: the platform's directory separator as '/', no leading "./".</summary>
    public static string Normalize(string id)
    {
        var s = Path.DirectorySeparatorChar == '/' ? id : id.Replace(Path.DirectorySeparatorChar, '/');
        while (s.StartsWith("./", StringComparison.Ordinal)) s = s[2..];
        return s;
    }

    /// <summary>
    /// The identity of a labeling job's input listing: the count and the sum (mod 2^128) of the first 16 bytes of each
    /// id's SHA-256, in hex. Independent of order, so the merge recomputes it from the shards' labeled and skipped rows
    /// and so checks that they are exactly the input: a row missing, added or counted twice changes it.
    /// </summary>
    public static string ListingFingerprint(IEnumerable<string> ids)
    {
        var sum = new ListingSum();
        foreach (var id in ids) sum.Add(id);
        return sum.ToString();
    }

    /// <summary>The running form of <see cref="ListingFingerprint"/>.</summary>
    public sealed class ListingSum
    {
        private UInt128 _sum;
        private long _count;

        public void Add(string id)
        {
            Span<byte> digest = stackalloc byte[32];
            SHA256.HashData(Encoding.UTF8.GetBytes(id), digest);
            _sum += BinaryPrimitives.ReadUInt128LittleEndian(digest);
            _count++;
        }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{_count}:{_sum:x32}");
    }
}
