using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Parquet;
using Parquet.Schema;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Reads a shard file written by <see cref="SoftLabelShardWriter"/>: its metadata on open (every key checked), then its
/// rows one row group at a time. Every error names the file and says what to do about it.
/// </summary>
internal sealed class SoftLabelShardReader : IDisposable
{
    private readonly FileStream _stream;
    private readonly ParquetReader _reader;
    private readonly DataField[] _fields;

    private SoftLabelShardReader(string path, FileStream stream, ParquetReader reader, SoftLabelShard shard, SoftLabelShardInfo info, long rows, IReadOnlyList<SoftLabelSkippedRow> skipped, string checksum)
    {
        FilePath = path;
        _stream = stream;
        _reader = reader;
        Shard = shard;
        Info = info;
        Rows = rows;
        Skipped = skipped;
        Checksum = checksum;
        _fields = reader.Schema.GetDataFields();
    }

    public string FilePath { get; }
    public SoftLabelShard Shard { get; }
    public SoftLabelShardInfo Info { get; }
    /// <summary>Rows in the file (its Parquet footer, checked against the metadata).</summary>
    public long Rows { get; }
    public IReadOnlyList<SoftLabelSkippedRow> Skipped { get; }
    /// <summary>The rows' SHA-256 as the writer computed it (<c>dualhead.rows_sha256</c>).</summary>
    public string Checksum { get; }
    public int ClassCount => Info.ClassNames.Count;

    /// <summary>Opens a shard file; <paramref name="displayName"/> is the name used in errors (default: the path).</summary>
    public static SoftLabelShardReader Open(string path, string? displayName = null)
    {
        string name = displayName ?? path;
        if (!File.Exists(path)) throw new FileNotFoundException($"Soft-label shard '{name}' was not found.", path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        ParquetReader? reader = null;
        try
        {
            try
            {
                reader = ParquetReader.CreateAsync(stream, leaveStreamOpen: true).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new InvalidDataException($"Soft-label shard '{name}' is not a readable Parquet file ({e.GetType().Name}: {e.Message}); it is damaged or was not finished. Delete it and run its shard again.", e);
            }
            var meta = reader.CustomMetadata ?? new Dictionary<string, string>();
            string Get(string key) => meta.TryGetValue(SoftLabelShardFormat.Prefix + key, out var v) ? v
                : throw new InvalidDataException($"Soft-label shard '{name}' has no '{SoftLabelShardFormat.Prefix}{key}' metadata: it was not written by dualhead label (or by an incompatible version).");
            long Long(string key) => long.TryParse(Get(key), NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v
                : throw new InvalidDataException($"Soft-label shard '{name}': metadata '{SoftLabelShardFormat.Prefix}{key}' is '{Get(key)}'; expected a whole number.");
            if (Get("format") != SoftLabelShardFormat.Format)
                throw new InvalidDataException($"Soft-label shard '{name}' has format '{Get("format")}'; this version reads '{SoftLabelShardFormat.Format}'.");
            long index = Long("shard"), count = Long("shards");
            if (count < 1 || index >= count) throw new InvalidDataException($"Soft-label shard '{name}': metadata says shard {index} of {count}.");
            string[] classes;
            List<string[]> skipped;
            try
            {
                classes = JsonSerializer.Deserialize<string[]>(Get("classes")) ?? [];
                skipped = JsonSerializer.Deserialize<List<string[]>>(Get("skipped")) ?? [];
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"Soft-label shard '{name}': its classes or skipped-rows metadata is not valid JSON ({e.Message}).", e);
            }
            if (classes.Length == 0) throw new InvalidDataException($"Soft-label shard '{name}' names no classes.");
            if (!SoftLabelShardFormat.IsFingerprint(Get("teacher_fingerprint")))
                throw new InvalidDataException($"Soft-label shard '{name}': teacher fingerprint '{Get("teacher_fingerprint")}' is not 64 hex digits; it was not written by dualhead label.");
            var info = new SoftLabelShardInfo
            {
                TeacherFingerprint = Get("teacher_fingerprint"),
                TeacherDescription = Get("teacher"),
                ClassNames = classes,
                EmbeddingSize = (int)Long("embedding_size"),
                InputRows = Long("input_rows"),
                InputFingerprint = Get("input_fingerprint"),
                ShardInputRows = Long("shard_input_rows"),
            };
            long rows = Long("rows");
            long footerRows = reader.RowGroups.Sum(g => g.RowCount);
            if (footerRows != rows) throw new InvalidDataException($"Soft-label shard '{name}' holds {footerRows} rows but its metadata says {rows}: the file is damaged. Delete it and run its shard again.");
            var expected = SoftLabelShardFormat.Schema(classes.Length, info.EmbeddingSize > 0).GetDataFields().Select(f => f.Name).ToArray();
            var actual = reader.Schema.GetDataFields().Select(f => f.Name).ToArray();
            if (!expected.SequenceEqual(actual))
                throw new InvalidDataException($"Soft-label shard '{name}' has columns [{string.Join(", ", actual)}]; expected [{string.Join(", ", expected)}].");
            return new SoftLabelShardReader(name, stream, reader, new SoftLabelShard((int)index, (int)count), info, rows,
                skipped.Select(s => new SoftLabelSkippedRow(s.ElementAtOrDefault(0) ?? "", s.ElementAtOrDefault(1) ?? "")).ToArray(), Get("rows_sha256"));
        }
        catch
        {
            reader?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            stream.Dispose();
            throw;
        }
    }

    /// <summary>SHA-256 of the file as opened (the same handle the rows are read from, so a file replaced meanwhile is not mixed in).</summary>
    public string FileSha256(CancellationToken cancel = default)
    {
        long position = _stream.Position;
        try
        {
            _stream.Position = 0;
            return SoftLabelShardFormat.Sha256Hex(_stream, cancel);
        }
        finally
        {
            _stream.Position = position;
        }
    }

    /// <summary>One row group: ids, content hashes, row-major [rows, K] logits and (with embeddings) float16 bytes.</summary>
    public sealed record RowGroup(string[] RowIds, byte[][] ContentHashes, float[] Logits, byte[][]? Embeddings);

    /// <summary>The rows, a row group at a time, in file order (ascending id hash).</summary>
    public IEnumerable<RowGroup> ReadRowGroups(CancellationToken cancel = default)
    {
        int k = ClassCount;
        for (int g = 0; g < _reader.RowGroupCount; g++)
        {
            cancel.ThrowIfCancellationRequested();
            RowGroup group;
            try
            {
                using var rg = _reader.OpenRowGroupReader(g);
                int n = checked((int)rg.RowCount);
                var ids = new string?[n];
                var hashes = new byte[]?[n];
                rg.ReadAsync(_fields[0], ids.AsMemory(), null, cancel).GetAwaiter().GetResult();
                rg.ReadAsync(_fields[1], hashes.AsMemory(), null, cancel).GetAwaiter().GetResult();
                var logits = new float[n * k];
                var column = new float[n];
                for (int c = 0; c < k; c++)
                {
                    rg.ReadAsync<float>(_fields[2 + c], column.AsMemory(), null, cancel).GetAwaiter().GetResult();
                    for (int r = 0; r < n; r++) logits[r * k + c] = column[r];
                }
                byte[][]? embeddings = null;
                if (Info.EmbeddingSize > 0)
                {
                    var read = new byte[]?[n];
                    rg.ReadAsync(_fields[2 + k], read.AsMemory(), null, cancel).GetAwaiter().GetResult();
                    embeddings = read!;
                }
                group = new RowGroup(ids!, hashes!, logits, embeddings);
            }
            catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
            {
                throw new InvalidDataException($"Soft-label shard '{FilePath}': row group {g} cannot be read ({e.GetType().Name}: {e.Message}); the file is damaged. Delete it and run its shard again.", e);
            }
            yield return group;
        }
    }

    /// <summary>Reads every row and checks it against the metadata: checksum, shard membership, order, finite logits.</summary>
    public void Verify(CancellationToken cancel = default)
    {
        foreach (var _ in VerifiedRows(cancel)) { }
    }

    /// <summary>The rows, each checked (see <see cref="Verify"/>); the checksum is compared after the last row.</summary>
    internal IEnumerable<(ulong Hash, string RowId, RowGroup Group, int Row)> VerifiedRows(CancellationToken cancel)
    {
        using var checksum = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        int k = ClassCount;
        ulong last = 0;
        string? lastId = null;
        long seen = 0;
        foreach (var group in ReadRowGroups(cancel))
        {
            for (int r = 0; r < group.RowIds.Length; r++)
            {
                string id = group.RowIds[r] ?? throw Damaged($"row {seen} has no row id");
                if (group.ContentHashes[r] is not { Length: 32 }) throw Damaged($"row '{id}' has no 32-byte content hash");
                var logits = group.Logits.AsSpan(r * k, k);
                for (int c = 0; c < k; c++)
                    if (!float.IsFinite(logits[c])) throw Damaged($"row '{id}', class {c} has logit {logits[c]}");
                var embedding = group.Embeddings?[r] ?? [];
                if (embedding.Length != Info.EmbeddingSize * 2) throw Damaged($"row '{id}' has an embedding of {embedding.Length} bytes; expected {Info.EmbeddingSize * 2}");
                for (int j = 0; j < embedding.Length; j += 2)
                    if (!Half.IsFinite(System.Buffers.Binary.BinaryPrimitives.ReadHalfLittleEndian(embedding.AsSpan(j)))) throw Damaged($"row '{id}' has a non-finite embedding value");
                ulong hash = SoftLabelRowIds.Hash(id);
                if (!Shard.OwnsHash(hash))
                    throw new InvalidDataException($"Soft-label shard '{FilePath}' holds row '{id}', which belongs to shard {SoftLabelShard.ShardOf(hash, Shard.Count)} of {Shard.Count}, not {Shard.Index}.");
                if (lastId is not null && (hash < last || (hash == last && string.CompareOrdinal(id, lastId) <= 0)))
                    throw new InvalidDataException(hash == last && id == lastId
                        ? $"Soft-label shard '{FilePath}' holds row id '{id}' twice."
                        : $"Soft-label shard '{FilePath}' is not in row-id hash order at row '{id}'; it was not written by dualhead label.");
                SoftLabelShardFormat.AppendRow(checksum, id, group.ContentHashes[r], logits, embedding);
                last = hash;
                lastId = id;
                seen++;
                yield return (hash, id, group, r);
            }
        }
        string actual = Convert.ToHexString(checksum.GetHashAndReset()).ToLowerInvariant();
        if (seen != Rows) throw Damaged($"{seen} rows read, {Rows} expected");
        if (actual != Checksum)
            throw new InvalidDataException($"Soft-label shard '{FilePath}': its rows do not match the checksum in its metadata (the file is damaged). Delete it and run shard {Shard} again.");
    }

    private InvalidDataException Damaged(string what) =>
        new($"Soft-label shard '{FilePath}' is damaged: {what}. Delete it and run shard {Shard} again.");

    public void Dispose()
    {
        _reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _stream.Dispose();
    }
}
