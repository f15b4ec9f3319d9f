using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// <c>soft-labels.index</c>, what the trainer reads: a 64-byte header (magic <c>DHSLIDX1</c>, K int32, 4 reserved bytes,
/// N int64, the teacher fingerprint's 32 bytes, 8 reserved bytes), then N records sorted by row-id hash, each the
/// 8-byte hash (little-endian) and K float32 logits. Fixed-size records: memory-mapped and binary-searched, 10M rows are
/// one file and no objects. The file depends only on the rows, not on how they were sharded.
/// </summary>
internal static class SoftLabelIndex
{
    public const string FileName = "soft-labels.index";
    public const int HeaderSize = 64;
    private static readonly byte[] s_magic = "DHSLIDX1"u8.ToArray();

    public static int RecordSize(int k) => 8 + 4 * k;

    public static byte[] Header(int k, long rows, string fingerprint)
    {
        var header = new byte[HeaderSize];
        s_magic.CopyTo(header, 0);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), k);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), rows);
        FingerprintBytes(fingerprint).CopyTo(header, 24);
        return header;
    }

    public static byte[] FingerprintBytes(string fingerprint)
    {
        try
        {
            var bytes = Convert.FromHexString(fingerprint);
            if (bytes.Length == 32) return bytes;
        }
        catch (FormatException) { }
        return SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(fingerprint)); // not a hex SHA-256: its hash identifies it
    }

    /// <summary>Checks a header against what the manifest says; the message names the file.</summary>
    public static void Check(ReadOnlySpan<byte> header, string path, int k, long rows, string fingerprint)
    {
        if (header.Length < HeaderSize || !header[..8].SequenceEqual(s_magic))
            throw new InvalidDataException($"'{path}' is not a soft-label index (no DHSLIDX1 header). Merge the shards again.");
        int fileK = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        long fileRows = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
        if (fileK != k || fileRows != rows || !header.Slice(24, 32).SequenceEqual(FingerprintBytes(fingerprint)))
            throw new InvalidDataException($"'{path}' holds {fileRows} rows of {fileK} logits for another teacher than its manifest ({rows} rows of {k}); the set was changed after the merge. Merge the shards again.");
    }
}
