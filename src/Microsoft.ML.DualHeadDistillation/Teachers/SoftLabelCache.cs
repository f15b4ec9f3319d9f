using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// An on-disk store of teacher outputs. One file per teacher, named by the teacher's fingerprint (SHA-256
/// of the model bytes, the preprocessing, the output selection and, for zero-shot teachers, the class
/// embeddings and logit scale); inside, one record per input row keyed by the SHA-256 of the row's raw
/// input. A different teacher or a different image therefore can never hit an old entry.
/// <para>
/// Format (version 2): the 8-byte magic <c>DHSL0002</c>, K as int32, then records of
/// key (32 bytes) + K little-endian float32 + the first 8 bytes of SHA-256(key + values). A record whose
/// checksum does not match, or a partial record at the end, is dropped on load (one warning per file) and
/// the row is recomputed; a file with another header is ignored (warning) and rebuilt.
/// </para>
/// <para>
/// Writers are safe against each other, in one process and across processes: <see cref="Flush"/> takes an
/// exclusive lock on <c>&lt;file&gt;.lock</c> (a FileStream opened with FileShare.None, retried for up to
/// <see cref="LockTimeout"/>), re-reads the file, writes the union of the file's entries and its own to a
/// temporary file unique to the writer (pid + GUID), and renames it over the file. An interrupted run leaves
/// the previous file intact.
/// </para>
/// </summary>
internal sealed class SoftLabelCache
{
    private static readonly byte[] s_magic = "DHSL0002"u8.ToArray();
    private const int HeaderSize = 12, KeySize = 32, ChecksumSize = 8;
    /// <summary>How long <see cref="Flush"/> waits for another writer's lock before giving up.</summary>
    internal static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(120);

    private Dictionary<Key, float[]> _entries = new();
    private readonly object _lock = new();
    private readonly HashSet<string> _warned = new();
    private readonly Action<string> _warn;
    private readonly string _path;
    private readonly int _k;
    private int _pending;

    private SoftLabelCache(string path, int k, Action<string> warn)
    {
        _path = path;
        _k = k;
        _warn = warn;
    }

    public string FilePath => _path;
    private string LockPath => _path + ".lock";
    private int RecordSize => KeySize + 4 * _k + ChecksumSize;
    /// <summary>Entries added since the last successful <see cref="Flush"/>.</summary>
    public int PendingCount { get { lock (_lock) return _pending; } }

    public static string Fingerprint(params byte[][] parts)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var part in parts)
        {
            hash.AppendData(BitConverter.GetBytes(part.Length));
            hash.AppendData(part);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>
    /// Opens (and loads) the cache file of a teacher. Returns null, after one warning, when the folder cannot
    /// be created or written (checked by writing a probe file now, before any row is computed).
    /// </summary>
    public static SoftLabelCache? Open(string directory, string fingerprint, int k, Action<string> warn)
    {
        try
        {
            Directory.CreateDirectory(directory);
            string probe = Path.Combine(directory, $".probe-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
            try
            {
                using var stream = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                stream.WriteByte(0);
            }
            finally
            {
                try { File.Delete(probe); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            warn($"Soft-label cache folder '{directory}' cannot be written ({e.GetType().Name}: {e.Message}); the teacher runs without a cache: soft labels are computed and not stored.");
            return null;
        }
        var cache = new SoftLabelCache(Path.Combine(directory, $"teacher-{fingerprint}.bin"), k, warn);
        try
        {
            cache.ReadInto(cache._entries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            cache.Warn($"Soft-label cache '{cache._path}' could not be read ({e.GetType().Name}: {e.Message}); it is ignored and its rows are recomputed.");
            cache._entries.Clear();
        }
        return cache;
    }

    private void Warn(string message)
    {
        // The same damage is seen again when Flush re-reads the file: report it once.
        if (_warned.Add(message)) _warn(message);
    }

    /// <summary>
    /// Reads the file's valid records into <paramref name="into"/>. Damaged records, a partial last record and
    /// a wrong header give warnings, never exceptions; only I/O failures throw.
    /// </summary>
    private void ReadInto(Dictionary<Key, float[]> into)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
        }
        catch (FileNotFoundException)
        {
            return;
        }
        using (stream)
        {
            long length = stream.Length;
            var header = new byte[HeaderSize];
            int got = stream.ReadAtLeast(header, HeaderSize, throwOnEndOfStream: false);
            if (got < HeaderSize)
            {
                Warn($"Soft-label cache '{_path}' is {length} bytes long, shorter than the {HeaderSize}-byte header of a soft-label cache file; it is ignored and will be rebuilt.");
                return;
            }
            if (!header.AsSpan(0, s_magic.Length).SequenceEqual(s_magic))
            {
                string found = header.AsSpan(0, 4).SequenceEqual("DHSL"u8) ? $"a soft-label cache file of another version ({System.Text.Encoding.ASCII.GetString(header, 0, 8)})" : "not a soft-label cache file";
                Warn($"Soft-label cache '{_path}' is {found}; this version reads {System.Text.Encoding.ASCII.GetString(s_magic)} files. It is ignored and will be rebuilt.");
                return;
            }
            int k = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
            if (k != _k)
            {
                Warn($"Soft-label cache '{_path}' holds {k} values per row but this teacher gives {_k}; it is ignored and will be rebuilt.");
                return;
            }
            int size = RecordSize;
            var record = new byte[size];
            Span<byte> hash = stackalloc byte[32];
            long total = 0, damaged = 0;
            while (true)
            {
                int n = stream.ReadAtLeast(record, size, throwOnEndOfStream: false);
                if (n == 0) break;
                if (n < size)
                {
                    Warn($"Soft-label cache '{_path}' ends with a partial record ({n} of {size} bytes, at offset {length - n}); it was dropped and that row will be recomputed.");
                    break;
                }
                total++;
                SHA256.HashData(record.AsSpan(0, size - ChecksumSize), hash);
                if (!hash[..ChecksumSize].SequenceEqual(record.AsSpan(size - ChecksumSize)))
                {
                    damaged++;
                    continue;
                }
                var values = new float[_k];
                for (int j = 0; j < _k; j++) values[j] = BinaryPrimitives.ReadSingleLittleEndian(record.AsSpan(KeySize + 4 * j));
                into[Key.From(record)] = values;
            }
            if (damaged > 0)
                Warn($"Soft-label cache '{_path}': {damaged} of {total} records failed their checksum and were dropped; those rows will be recomputed.");
        }
    }

    public bool TryGet(ReadOnlySpan<byte> key, Span<float> destination)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(Key.From(key), out var values)) return false;
            values.CopyTo(destination);
            return true;
        }
    }

    public void Add(ReadOnlySpan<byte> key, ReadOnlySpan<float> values)
    {
        lock (_lock)
        {
            _entries[Key.From(key)] = values.ToArray();
            _pending++;
        }
    }

    /// <summary>
    /// Merges new entries into the file: under the lock file, re-reads the file, writes the union to a temporary
    /// file of this writer's own and renames it into place. Throws an IOException naming the file on failure
    /// (the entries stay pending, so a later Flush tries again).
    /// </summary>
    public void Flush()
    {
        lock (_lock)
        {
            if (_pending == 0) return;
            string temp = $"{_path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
            try
            {
                using var fileLock = AcquireLock();
                var merged = new Dictionary<Key, float[]>(_entries.Count);
                ReadInto(merged); // what other writers stored since this cache was opened
                foreach (var (key, values) in _entries) merged[key] = values;
                using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
                {
                    var header = new byte[HeaderSize];
                    s_magic.CopyTo(header, 0);
                    BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), _k);
                    stream.Write(header);
                    var record = new byte[RecordSize];
                    Span<byte> hash = stackalloc byte[32];
                    foreach (var (key, values) in merged)
                    {
                        key.Write(record);
                        for (int j = 0; j < _k; j++) BinaryPrimitives.WriteSingleLittleEndian(record.AsSpan(KeySize + 4 * j), values[j]);
                        SHA256.HashData(record.AsSpan(0, RecordSize - ChecksumSize), hash);
                        hash[..ChecksumSize].CopyTo(record.AsSpan(RecordSize - ChecksumSize));
                        stream.Write(record);
                    }
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, _path, overwrite: true);
                _entries = merged;
                _pending = 0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"Soft-label cache '{_path}': {_pending} new entries could not be written ({e.GetType().Name}: {e.Message}).", e);
            }
            finally
            {
                try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
    }

    /// <summary>The exclusive lock of the cache file: FileShare.None, which .NET maps to flock(LOCK_EX) on Unix and to a sharing lock on Windows, so it holds across processes.</summary>
    private FileStream AcquireLock()
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (IsSharingViolation(e)) // held by another writer
            {
                if (watch.Elapsed > LockTimeout)
                    throw new IOException($"Soft-label cache lock '{LockPath}' is still held by another writer after {LockTimeout.TotalSeconds:0} s.", e);
                Thread.Sleep(Random.Shared.Next(2, 25));
            }
        }
    }

    /// <summary>
    /// The lock is taken by another handle: ERROR_SHARING_VIOLATION / ERROR_LOCK_VIOLATION on Windows; on Unix
    /// .NET reports flock's EWOULDBLOCK as an IOException whose HResult is the errno (11 on Linux, 35 on macOS).
    /// Other failures (missing folder, disk full, no permission) are not retried.
    /// </summary>
    private static bool IsSharingViolation(IOException e) =>
        e.GetType() == typeof(IOException) && (OperatingSystem.IsWindows()
            ? (e.HResult & 0xFFFF) is 32 or 33
            : e.HResult == (OperatingSystem.IsLinux() ? 11 : 35));

    private readonly record struct Key(ulong A, ulong B, ulong C, ulong D)
    {
        public static Key From(ReadOnlySpan<byte> b) =>
            new(BinaryPrimitives.ReadUInt64LittleEndian(b), BinaryPrimitives.ReadUInt64LittleEndian(b[8..]),
                BinaryPrimitives.ReadUInt64LittleEndian(b[16..]), BinaryPrimitives.ReadUInt64LittleEndian(b[24..]));

        public void Write(Span<byte> b)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(b, A);
            BinaryPrimitives.WriteUInt64LittleEndian(b[8..], B);
            BinaryPrimitives.WriteUInt64LittleEndian(b[16..], C);
            BinaryPrimitives.WriteUInt64LittleEndian(b[24..], D);
        }
    }
}
