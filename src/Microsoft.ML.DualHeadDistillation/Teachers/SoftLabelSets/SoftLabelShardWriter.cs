using System.Security.Cryptography;
using Parquet;
using Parquet.Schema;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Writes one shard of a soft-label set as a Parquet file, whole or not at all: rows go to a hidden temporary file in
/// the output folder (<c>.shard-IIIII-of-NNNNN.parquet.&lt;pid&gt;.tmp</c>), <see cref="Commit"/> finishes it, flushes it to
/// disk, reads its footer back and renames it to <see cref="SoftLabelShard.FileName"/>. Disposing without a commit (an
/// error, a cancellation) deletes the temporary file; a killed process leaves it behind, and the next run of the same
/// shard deletes it (<see cref="RemoveStaleTemporaryFiles"/>) before writing again. Rows must come in ascending
/// <see cref="SoftLabelRowIds.Hash"/> order and belong to the shard.
/// </summary>
internal sealed class SoftLabelShardWriter : IDisposable
{
    private readonly SoftLabelShard _shard;
    private readonly SoftLabelShardInfo _info;
    private readonly string _target, _temp;
    private readonly int _k, _rowGroupSize;
    private readonly FileStream _stream;
    private readonly ParquetWriter _writer;
    private readonly ParquetSchema _schema;
    private readonly IncrementalHash _checksum = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly List<string> _ids = new();
    private readonly List<byte[]> _hashes = new(), _embeddings = new();
    private readonly float[][] _logits;
    private ulong _lastHash;
    private string? _lastId;
    private long _rows;
    private bool _committed, _disposed;

    /// <summary>
    /// Starts the shard file in <paramref name="directory"/> (created if needed) with <paramref name="rowGroupSize"/> rows per
    /// Parquet row group (null: about 4 MB of logits and embeddings a group, at most 8,192 rows; the merge holds one group of
    /// every shard in memory).
    /// </summary>
    public SoftLabelShardWriter(string directory, SoftLabelShard shard, SoftLabelShardInfo info, int? rowGroupSize = null)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (rowGroupSize is < 1) throw new ArgumentOutOfRangeException(nameof(rowGroupSize), rowGroupSize, "rowGroupSize must be at least 1.");
        if (info.ClassNames.Count < 1) throw new ArgumentException("ClassNames must hold the K class names.", nameof(info));
        SoftLabelShardFormat.CheckFingerprint(info.TeacherFingerprint, "TeacherFingerprint");
        _shard = shard;
        _info = info;
        _k = info.ClassNames.Count;
        _rowGroupSize = rowGroupSize ?? SoftLabelShardFormat.DefaultRowGroupSize(_k, info.EmbeddingSize);
        Directory.CreateDirectory(directory);
        _target = Path.Combine(Path.GetFullPath(directory), shard.FileName);
        _temp = Path.Combine(Path.GetFullPath(directory), $".{shard.FileName}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        _logits = Enumerable.Range(0, _k).Select(_ => new float[_rowGroupSize]).ToArray();
        _schema = SoftLabelShardFormat.Schema(_k, info.EmbeddingSize > 0);
        _stream = new FileStream(_temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        try
        {
            _writer = ParquetWriter.CreateAsync(_schema, _stream, new ParquetOptions { CompressionMethod = CompressionMethod.Snappy }).GetAwaiter().GetResult();
        }
        catch
        {
            _stream.Dispose();
            File.Delete(_temp);
            throw;
        }
    }

    /// <summary>The final file (written by <see cref="Commit"/>).</summary>
    public string FilePath => _target;
    /// <summary>The temporary file rows are written to until the commit.</summary>
    public string TemporaryPath => _temp;
    public long Rows => _rows;

    /// <summary>Deletes the temporary files a killed earlier run of <paramref name="shard"/> left in <paramref name="directory"/> (and only that shard's).</summary>
    public static int RemoveStaleTemporaryFiles(string directory, SoftLabelShard shard)
    {
        if (!Directory.Exists(directory)) return 0;
        int removed = 0;
        foreach (var file in Directory.EnumerateFiles(directory, $".{shard.FileName}.*.tmp"))
        {
            File.Delete(file);
            removed++;
        }
        return removed;
    }

    /// <summary>Adds a row: its id, the SHA-256 of its content (32 bytes), K finite logits and, with embeddings, E floats (stored as float16).</summary>
    public void Add(string rowId, ReadOnlySpan<byte> contentSha256, ReadOnlySpan<float> logits, ReadOnlySpan<float> embedding = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed) throw new InvalidOperationException("The shard is committed; no more rows can be added.");
        ArgumentException.ThrowIfNullOrEmpty(rowId);
        if (SoftLabelRowIds.Normalize(rowId) != rowId) throw new ArgumentException($"Row id '{rowId}' is not in normal form ('{SoftLabelRowIds.Normalize(rowId)}'): '/' separators and no leading './', as SoftLabelRowIds.Normalize gives.", nameof(rowId));
        if (contentSha256.Length != 32) throw new ArgumentException($"Row '{rowId}': the content hash has {contentSha256.Length} bytes; expected 32 (SHA-256).", nameof(contentSha256));
        if (logits.Length != _k) throw new ArgumentException($"Row '{rowId}': {logits.Length} logits; expected {_k} (one per class).", nameof(logits));
        for (int c = 0; c < _k; c++)
            if (!float.IsFinite(logits[c])) throw new ArgumentOutOfRangeException(nameof(logits), $"Row '{rowId}', class {c} ('{_info.ClassNames[c]}'): the teacher's logit is {logits[c]}; expected a finite value. Nothing was written for this shard.");
        if (embedding.Length != _info.EmbeddingSize) throw new ArgumentException($"Row '{rowId}': an embedding of {embedding.Length} values; expected {_info.EmbeddingSize}.", nameof(embedding));
        ulong hash = SoftLabelRowIds.Hash(rowId);
        if (!_shard.OwnsHash(hash)) throw new ArgumentException($"Row '{rowId}' belongs to shard {SoftLabelShard.ShardOf(hash, _shard.Count)} of {_shard.Count}, not {_shard.Index}.", nameof(rowId));
        if (_lastId is not null && (hash < _lastHash || (hash == _lastHash && string.CompareOrdinal(rowId, _lastId) <= 0)))
            throw new ArgumentException(hash == _lastHash && rowId == _lastId
                ? $"Row id '{rowId}' was given twice; row ids must be unique."
                : $"Row '{rowId}' comes after '{_lastId}' but hashes lower: add rows in SoftLabelRowIds.Hash order.", nameof(rowId));
        _lastHash = hash;
        _lastId = rowId;
        byte[] half = [];
        if (embedding.Length > 0)
        {
            half = new byte[embedding.Length * 2];
            for (int j = 0; j < embedding.Length; j++)
            {
                if (!float.IsFinite(embedding[j])) throw new ArgumentOutOfRangeException(nameof(embedding), $"Row '{rowId}', embedding slot {j} is {embedding[j]}; expected a finite value.");
                var value = (Half)embedding[j];
                if (!Half.IsFinite(value)) throw new ArgumentOutOfRangeException(nameof(embedding), $"Row '{rowId}', embedding slot {j} is {embedding[j]}, beyond float16's range; expected an L2-normalised embedding.");
                System.Buffers.Binary.BinaryPrimitives.WriteHalfLittleEndian(half.AsSpan(j * 2), value);
            }
        }
        int slot = _ids.Count;
        _ids.Add(rowId);
        _hashes.Add(contentSha256.ToArray());
        if (half.Length > 0) _embeddings.Add(half);
        for (int c = 0; c < _k; c++) _logits[c][slot] = logits[c];
        SoftLabelShardFormat.AppendRow(_checksum, rowId, contentSha256, logits, half);
        _rows++;
        if (_ids.Count == _rowGroupSize) FlushRowGroup();
    }

    private void FlushRowGroup()
    {
        int n = _ids.Count;
        if (n == 0) return;
        using (var group = _writer.CreateRowGroup())
        {
            var fields = _schema.GetDataFields();
            group.WriteAsync(fields[0], _ids).GetAwaiter().GetResult();
            group.WriteAsync(fields[1], _hashes).GetAwaiter().GetResult();
            for (int c = 0; c < _k; c++) group.WriteAsync<float>(fields[2 + c], _logits[c].AsMemory(0, n)).GetAwaiter().GetResult();
            if (_info.EmbeddingSize > 0) group.WriteAsync(fields[2 + _k], _embeddings).GetAwaiter().GetResult();
        }
        _ids.Clear();
        _hashes.Clear();
        _embeddings.Clear();
    }

    /// <summary>
    /// Writes the last row group and the metadata (with <paramref name="skipped"/>, the shard's rows that could not be
    /// labeled), flushes to disk, checks the footer reads back, and renames the file into place (replacing an older
    /// file of the same shard). Checks that every row of the shard was labeled or skipped.
    /// </summary>
    public void Commit(IReadOnlyList<SoftLabelSkippedRow>? skipped = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed) return;
        skipped ??= [];
        var skippedIds = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in skipped)
        {
            if (!_shard.Owns(s.RowId)) throw new ArgumentException($"Skipped row '{s.RowId}' does not belong to shard {_shard}.", nameof(skipped));
            if (!skippedIds.Add(s.RowId)) throw new ArgumentException($"Skipped row '{s.RowId}' is listed twice.", nameof(skipped));
        }
        if (_rows + skipped.Count != _info.ShardInputRows)
            throw new InvalidOperationException($"Shard {_shard}: {_rows} rows labeled and {skipped.Count} skipped, but {_info.ShardInputRows} input rows belong to it; the shard file was not written.");
        FlushRowGroup();
        string checksum = Convert.ToHexString(_checksum.GetHashAndReset()).ToLowerInvariant();
        _writer.CustomMetadata = SoftLabelShardFormat.Metadata(_shard, _info, _rows, skipped, checksum);
        _writer.DisposeAsync().AsTask().GetAwaiter().GetResult(); // writes the footer
        _stream.Dispose();
        using (var sync = new FileStream(_temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) sync.Flush(flushToDisk: true);
        using (var check = SoftLabelShardReader.Open(_temp, _target)) // the footer and metadata read back before the file replaces anything
        {
            if (check.Rows != _rows) throw new IOException($"Shard file '{_temp}' reads back {check.Rows} rows; {_rows} were written. '{_target}' was left as it was.");
        }
        File.Move(_temp, _target, overwrite: true);
        _committed = true;
    }

    /// <summary>Deletes the temporary file unless <see cref="Commit"/> succeeded.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _checksum.Dispose();
        if (_committed) return;
        try { _writer.DisposeAsync().AsTask().GetAwaiter().GetResult(); } catch (Exception) { /* the file is deleted below */ }
        _stream.Dispose();
        try { File.Delete(_temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
