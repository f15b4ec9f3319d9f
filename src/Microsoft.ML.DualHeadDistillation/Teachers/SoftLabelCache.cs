using System.Security.Cryptography;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// An on-disk store of teacher outputs. One file per teacher, named by the teacher's fingerprint (SHA-256
/// of the model bytes, the preprocessing, the output selection and, for zero-shot teachers, the class
/// embeddings and logit scale); inside, one record per input row keyed by the SHA-256 of the row's raw
/// input. A different teacher or a different image therefore can never hit an old entry. The file is
/// rewritten atomically (temporary file + rename), so an interrupted run leaves the previous file intact.
/// </summary>
internal sealed class SoftLabelCache
{
    private static readonly byte[] s_magic = "DHSL0001"u8.ToArray();
    private readonly Dictionary<Key, float[]> _entries = new();
    private readonly object _lock = new();
    private readonly string _path;
    private readonly int _k;
    private bool _dirty;

    private SoftLabelCache(string path, int k)
    {
        _path = path;
        _k = k;
    }

    public string FilePath => _path;

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

    public static SoftLabelCache Open(string directory, string fingerprint, int k)
    {
        Directory.CreateDirectory(directory);
        var cache = new SoftLabelCache(Path.Combine(directory, $"teacher-{fingerprint}.bin"), k);
        if (File.Exists(cache._path)) cache.Load();
        return cache;
    }

    private void Load()
    {
        using var stream = File.OpenRead(_path);
        using var reader = new BinaryReader(stream);
        var magic = reader.ReadBytes(s_magic.Length);
        int k = magic.Length == s_magic.Length ? reader.ReadInt32() : -1;
        if (!magic.AsSpan().SequenceEqual(s_magic) || k != _k)
            throw new InvalidDataException($"Soft-label cache '{_path}' is not a cache file for a {_k}-output teacher; delete it to rebuild.");
        long count = (stream.Length - stream.Position) / (32 + 4L * k);
        for (long i = 0; i < count; i++)
        {
            var key = Key.From(reader.ReadBytes(32));
            var values = new float[k];
            for (int j = 0; j < k; j++) values[j] = reader.ReadSingle();
            _entries[key] = values;
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
            _dirty = true;
        }
    }

    /// <summary>Writes new entries to disk (whole file, atomically).</summary>
    public void Flush()
    {
        lock (_lock)
        {
            if (!_dirty) return;
            string temp = _path + $".{Environment.ProcessId}.tmp";
            try
            {
                using (var stream = File.Create(temp))
                using (var writer = new BinaryWriter(stream))
                {
                    writer.Write(s_magic);
                    writer.Write(_k);
                    foreach (var (key, values) in _entries)
                    {
                        key.Write(writer);
                        foreach (float v in values) writer.Write(v);
                    }
                }
                File.Move(temp, _path, overwrite: true);
                _dirty = false;
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }
    }

    private readonly record struct Key(ulong A, ulong B, ulong C, ulong D)
    {
        public static Key From(ReadOnlySpan<byte> b) =>
            new(BitConverter.ToUInt64(b), BitConverter.ToUInt64(b[8..]), BitConverter.ToUInt64(b[16..]), BitConverter.ToUInt64(b[24..]));

        public void Write(BinaryWriter w)
        {
            w.Write(A); w.Write(B); w.Write(C); w.Write(D);
        }
    }
}
