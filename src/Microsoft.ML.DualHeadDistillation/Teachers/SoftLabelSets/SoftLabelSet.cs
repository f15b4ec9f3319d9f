using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// A merged soft-label set opened for reading: the teacher's K logits of every labeled row, looked up by row id.
/// The index (<c>soft-labels.index</c>) is memory-mapped and binary-searched, so 10M rows cost their bytes in the page
/// cache (8 + 4K per row) and no objects. Opening checks the manifest, the index's header and size and, unless
/// <c>verify: false</c>, the index's SHA-256 against the manifest. Thread-safe for lookups; dispose to unmap.
/// </summary>
public sealed class SoftLabelSet : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly int _recordSize;
    private bool _disposed;

    private SoftLabelSet(string directory, SoftLabelSetManifest manifest, MemoryMappedFile file, MemoryMappedViewAccessor view)
    {
        Directory = directory;
        Manifest = manifest;
        _file = file;
        _view = view;
        _recordSize = SoftLabelIndex.RecordSize(manifest.Classes.Count);
    }

    public string Directory { get; }
    public SoftLabelSetManifest Manifest { get; }
    public IReadOnlyList<string> ClassNames => Manifest.Classes;
    public int ClassCount => Manifest.Classes.Count;
    public long Count => Manifest.Rows;
    public string TeacherFingerprint => Manifest.TeacherFingerprint;

    /// <summary>Opens the set merged in <paramref name="directory"/> (<c>dualhead label merge</c>, or <see cref="SoftLabelSetMerger.Merge"/>).</summary>
    public static SoftLabelSet Open(string directory, bool verify = true, CancellationToken cancel = default)
    {
        directory = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"Soft-label set '{directory}' was not found.");
        var manifest = SoftLabelSetManifest.Read(directory);
        string path = Path.Combine(directory, manifest.Index.File);
        if (!File.Exists(path)) throw new FileNotFoundException($"Soft-label set '{directory}' has no {manifest.Index.File}: merge its shards again (dualhead label merge {directory}).", path);
        int k = manifest.Classes.Count;
        long expected = SoftLabelIndex.HeaderSize + manifest.Rows * SoftLabelIndex.RecordSize(k);
        long actual = new FileInfo(path).Length;
        if (actual != expected || manifest.Index.Bytes != expected)
            throw new InvalidDataException($"'{path}' has {actual} bytes; {manifest.Rows} rows of {k} logits take {expected}. It is damaged or belongs to another merge: merge the shards again.");
        // The header and the SHA-256 are checked through the handle that is then mapped: an index renamed over this one
        // meanwhile (another merge) cannot slip in unchecked.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        try
        {
            if (stream.Length != expected)
                throw new InvalidDataException($"'{path}' has {stream.Length} bytes; {manifest.Rows} rows of {k} logits take {expected}. It was replaced after the merge: merge the shards again.");
            var header = new byte[SoftLabelIndex.HeaderSize];
            stream.ReadExactly(header);
            SoftLabelIndex.Check(header, path, k, manifest.Rows, manifest.TeacherFingerprint);
            if (verify)
            {
                stream.Position = 0;
                if (SoftLabelShardFormat.Sha256Hex(stream, cancel) != manifest.Index.Sha256)
                    throw new InvalidDataException($"'{path}' does not match the SHA-256 in its manifest: it is damaged. Merge the shards again (dualhead label merge {directory}).");
            }
            var file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            try
            {
                return new SoftLabelSet(directory, manifest, file, file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read));
            }
            catch
            {
                file.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Writes the K logits of <paramref name="rowId"/> into <paramref name="logits"/>; false when the set does not hold it.</summary>
    public bool TryGet(string rowId, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int k = ClassCount;
        if (logits.Length != k) throw new ArgumentException($"logits has {logits.Length} slots; the set has {k} classes.", nameof(logits));
        ulong hash = SoftLabelRowIds.Hash(rowId);
        long lo = 0, hi = Count - 1;
        while (lo <= hi)
        {
            long mid = lo + ((hi - lo) >> 1);
            long at = SoftLabelIndex.HeaderSize + mid * _recordSize;
            ulong h = _view.ReadUInt64(at); // little-endian on every platform .NET runs ML.NET on
            if (h == hash)
            {
                for (int c = 0; c < k; c++) logits[c] = _view.ReadSingle(at + 8 + 4 * c);
                return true;
            }
            if (h < hash) lo = mid + 1; else hi = mid - 1;
        }
        return false;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.Dispose();
        _file.Dispose();
    }
}
