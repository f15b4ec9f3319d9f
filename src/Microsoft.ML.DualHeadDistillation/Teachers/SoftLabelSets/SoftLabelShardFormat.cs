using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Parquet.Schema;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>What a labeling job knows before its first row: the teacher, the classes and the input listing.</summary>
internal sealed record SoftLabelShardInfo
{
    /// <summary>The teacher's fingerprint (<see cref="TeacherSoftLabelsTransformer.Fingerprint"/>): model file hash, preprocessing, class names, prompts.</summary>
    public required string TeacherFingerprint { get; init; }
    /// <summary>A readable description of the teacher (model file and hash, preprocessing, prompts), kept in the metadata.</summary>
    public required string TeacherDescription { get; init; }
    /// <summary>The K class names in logit order.</summary>
    public required IReadOnlyList<string> ClassNames { get; init; }
    /// <summary>E when the shard keeps the teacher's L2-normalised image embedding (float16), else 0.</summary>
    public int EmbeddingSize { get; init; }
    /// <summary>Rows of the whole input listing (every shard).</summary>
    public required long InputRows { get; init; }
    /// <summary><see cref="SoftLabelRowIds.ListingFingerprint"/> of the whole input listing.</summary>
    public required string InputFingerprint { get; init; }
    /// <summary>Rows of the input that belong to this shard (labeled plus skipped).</summary>
    public required long ShardInputRows { get; init; }
}

/// <summary>A row the labeling job could not label (an unreadable image), recorded in the shard's metadata.</summary>
public sealed record SoftLabelSkippedRow(string RowId, string Reason);

/// <summary>
/// The shard file layout. Columns: <c>row_id</c> (string), <c>content_sha256</c> (32 bytes: SHA-256 of the image file),
/// <c>logit_0</c> … <c>logit_{K-1}</c> (float32, class order in the metadata), and with embeddings
/// <c>image_embedding_f16</c> (E little-endian IEEE float16 values, L2-normalised). Rows are sorted by the row id's hash.
/// Key-value metadata (<c>dualhead.*</c>): format, shard, shards, teacher_fingerprint, teacher, classes (JSON), embedding_size,
/// input_rows, input_fingerprint, shard_input_rows, rows, skipped (JSON), rows_sha256 (a checksum of every row, checked on read).
/// </summary>
internal static class SoftLabelShardFormat
{
    public const string Format = "dualhead-soft-label-shard/1";
    public const string Prefix = "dualhead.";
    public const string RowId = "row_id", ContentHash = "content_sha256", Embedding = "image_embedding_f16";

    /// <summary>Rows per row group: about 4 MB of logits and embeddings, between 64 and 8,192 rows.</summary>
    public static int DefaultRowGroupSize(int k, int embeddingSize) => Math.Clamp((4 << 20) / (4 * k + 2 * embeddingSize + 64), 64, 8192);

    /// <summary>A teacher fingerprint is 64 lowercase hex digits (a SHA-256).</summary>
    public static bool IsFingerprint(string? value) => value is { Length: 64 } && value.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    public static void CheckFingerprint(string? value, string name)
    {
        if (!IsFingerprint(value)) throw new ArgumentException($"{name} '{value}' is not a teacher fingerprint (64 lowercase hex digits, TeacherSoftLabelsTransformer.Fingerprint).", name);
    }

    /// <summary>Lowercase hex SHA-256 of <paramref name="stream"/> from its current position to its end, a MiB at a time (cancellable per MiB).</summary>
    public static string Sha256Hex(Stream stream, CancellationToken cancel)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            cancel.ThrowIfCancellationRequested();
            sha.AppendData(buffer, 0, n);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    public static string LogitColumn(int k) => string.Create(CultureInfo.InvariantCulture, $"logit_{k}");

    public static ParquetSchema Schema(int k, bool embeddings)
    {
        var fields = new List<Field> { new DataField<string>(RowId), new DataField<byte[]>(ContentHash) };
        for (int c = 0; c < k; c++) fields.Add(new DataField<float>(LogitColumn(c)));
        if (embeddings) fields.Add(new DataField<byte[]>(Embedding));
        return new ParquetSchema(fields);
    }

    /// <summary>Feeds one row into the shard's running checksum (id, content hash, logits, embedding bytes).</summary>
    public static void AppendRow(IncrementalHash hash, string rowId, ReadOnlySpan<byte> contentHash, ReadOnlySpan<float> logits, ReadOnlySpan<byte> embedding)
    {
        var id = Encoding.UTF8.GetBytes(rowId);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, id.Length);
        hash.AppendData(length);
        hash.AppendData(id);
        hash.AppendData(contentHash);
        Span<byte> value = stackalloc byte[4];
        foreach (float v in logits)
        {
            BinaryPrimitives.WriteSingleLittleEndian(value, v);
            hash.AppendData(value);
        }
        hash.AppendData(embedding);
    }

    public static Dictionary<string, string> Metadata(SoftLabelShard shard, SoftLabelShardInfo info, long rows, IReadOnlyList<SoftLabelSkippedRow> skipped, string checksum) => new()
    {
        [Prefix + "format"] = Format,
        [Prefix + "shard"] = shard.Index.ToString(CultureInfo.InvariantCulture),
        [Prefix + "shards"] = shard.Count.ToString(CultureInfo.InvariantCulture),
        [Prefix + "teacher_fingerprint"] = info.TeacherFingerprint,
        [Prefix + "teacher"] = info.TeacherDescription,
        [Prefix + "classes"] = JsonSerializer.Serialize(info.ClassNames),
        [Prefix + "embedding_size"] = info.EmbeddingSize.ToString(CultureInfo.InvariantCulture),
        [Prefix + "input_rows"] = info.InputRows.ToString(CultureInfo.InvariantCulture),
        [Prefix + "input_fingerprint"] = info.InputFingerprint,
        [Prefix + "shard_input_rows"] = info.ShardInputRows.ToString(CultureInfo.InvariantCulture),
        [Prefix + "rows"] = rows.ToString(CultureInfo.InvariantCulture),
        [Prefix + "skipped"] = JsonSerializer.Serialize(skipped.Select(s => new[] { s.RowId, s.Reason })),
        [Prefix + "rows_sha256"] = checksum,
    };
}
