using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Microsoft.ML.DualHeadDistillation.Data.Images;

/// <summary>The fixed layout of a sample store: what one record holds.</summary>
/// <param name="Channels">C of the stored pixels.</param>
/// <param name="Size">S: every image is stored as a planar [C, S, S] square of bytes.</param>
/// <param name="TeacherValues">Teacher logits per record (0 without a teacher).</param>
internal readonly record struct SampleLayout(int Channels, int Size, int TeacherValues)
{
    public int PixelBytes => checked(Channels * Size * Size);
    /// <summary>Offset of the label (int32) in a record: after the pixels, aligned to 4.</summary>
    public int LabelOffset => (PixelBytes + 3) & ~3;
    public int TeacherOffset => LabelOffset + 4;
    public int RecordSize => checked(TeacherOffset + 4 * TeacherValues);
}

/// <summary>
/// The disk-backed training samples of one Fit: for every row its stored image (planar bytes, [C, S, S]), its
/// 0-based class (-1 unlabeled) and its teacher logits, in a file of fixed-size records with 64-bit offsets.
/// Rows are read with positional reads (pread; thread-safe, no shared cursor), so many workers read at once and
/// resident memory does not grow with the file: the kernel's page cache, not the process, holds what was read
/// (a memory mapping would count every touched page in the process's RSS).
/// <para>
/// A 4 KiB header holds the layout, the row counts, the input fingerprint, the per-channel pixel statistics, an
/// XxHash3 of all records and an XxHash64 of the header itself; <see cref="Open"/> checks them all, so a damaged,
/// truncated or stale file is refused (and rebuilt by <see cref="SampleStoreBuilder"/>).
/// </para>
/// </summary>
internal sealed class SampleStore : IDisposable
{
    internal const int HeaderSize = 4096;
    private static ReadOnlySpan<byte> Magic => "DHSTORE1"u8;
    internal const int FormatVersion = 1; // header, fixed-size records, then the label block

    private readonly SafeFileHandle _file;
    private readonly string? _ownedFolder;

    private SampleStore(string path, SafeFileHandle file, SampleLayout layout, long rows, long labeledRows, byte[] fingerprint, double[] mean, double[] std, string? ownedFolder)
    {
        Path = path;
        _file = file;
        Layout = layout;
        Rows = rows;
        LabeledRows = labeledRows;
        Fingerprint = fingerprint;
        PixelMean = mean;
        PixelStd = std;
        _ownedFolder = ownedFolder;
    }

    public string Path { get; }
    public SampleLayout Layout { get; }
    public long Rows { get; }
    public long LabeledRows { get; }
    public byte[] Fingerprint { get; }
    /// <summary>Per-channel mean of the stored pixels, in [0, 1] (pixel / 255), over all rows.</summary>
    public double[] PixelMean { get; }
    /// <summary>Per-channel population standard deviation of the stored pixels, in [0, 1].</summary>
    public double[] PixelStd { get; }
    public long FileSize => HeaderSize + Rows * Layout.RecordSize + 4 * Rows;
    /// <summary>Bytes after the header: the records, then every row's label (int32) in row order, so labels are one read.</summary>
    internal static long BodySize(long rows, SampleLayout layout) => rows * layout.RecordSize + 4 * rows;

    /// <summary>Reads record <paramref name="row"/> whole into <paramref name="record"/> (<see cref="SampleLayout.RecordSize"/> bytes).</summary>
    public void Read(long row, Span<byte> record) => ReadRecordStart(row, record[..Layout.RecordSize]);

    /// <summary>Reads the stored square of <paramref name="row"/> into <paramref name="pixels"/> (<see cref="SampleLayout.PixelBytes"/> bytes).</summary>
    public void ReadPixels(long row, Span<byte> pixels) => ReadRecordStart(row, pixels[..Layout.PixelBytes]);

    /// <summary>The first <paramref name="destination"/>.Length bytes of record <paramref name="row"/>.</summary>
    private void ReadRecordStart(long row, Span<byte> destination)
    {
        if ((ulong)row >= (ulong)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"The sample store has {Rows} rows.");
        long offset = HeaderSize + row * Layout.RecordSize;
        int read = 0;
        while (read < destination.Length)
        {
            int n = RandomAccess.Read(_file, destination[read..], offset + read);
            if (n == 0) throw new InvalidDataException($"Sample store '{Path}' ended inside row {row}; it was truncated after it was checked.");
            read += n;
        }
    }

    public static int Label(ReadOnlySpan<byte> record, SampleLayout layout) => BinaryPrimitives.ReadInt32LittleEndian(record[layout.LabelOffset..]);
    public static ReadOnlySpan<float> Teacher(ReadOnlySpan<byte> record, SampleLayout layout) =>
        MemoryMarshal.Cast<byte, float>(record.Slice(layout.TeacherOffset, 4 * layout.TeacherValues));

    /// <summary>All labels, in row order: one read of the label block after the records (4 bytes per row stay in memory).</summary>
    public int[] ReadLabels(Training.FitCancellation cancel)
    {
        var labels = new int[checked((int)Rows)];
        var bytes = MemoryMarshal.AsBytes(labels.AsSpan());
        long offset = HeaderSize + Rows * Layout.RecordSize;
        int read = 0;
        while (read < bytes.Length)
        {
            cancel.ThrowIfRequested();
            int n = RandomAccess.Read(_file, bytes.Slice(read, Math.Min(bytes.Length - read, 1 << 20)), offset + read);
            if (n == 0) throw new InvalidDataException($"Sample store '{Path}' ended inside its label block; it was truncated after it was checked.");
            read += n;
        }
        return labels;
    }

    /// <summary>
    /// Opens and checks a finished store. Returns null with a reason when the file is damaged, truncated, of another
    /// format, or was built from other rows or settings (<paramref name="expected"/>, when given).
    /// </summary>
    /// <param name="path">The store file.</param>
    /// <param name="layout">What each record holds (sizes, channels, teacher values, views).</param>
    /// <param name="expected">The fingerprint of the rows and settings it must have been built from, or null.</param>
    /// <param name="reason">Why it cannot be used, when null is returned.</param>
    /// <param name="ownedFolder">A folder the store owns (deleted with it), or null.</param>
    /// <param name="cancel">Stops the check of a large store.</param>
    /// <param name="verifyRecords">False only for a store this process has just written and read back (its records' hash was checked then).</param>
    public static SampleStore? Open(string path, SampleLayout layout, byte[]? expected, out string? reason, string? ownedFolder = null, bool verifyRecords = true,
        Training.FitCancellation? cancel = null)
    {
        reason = null;
        SafeFileHandle? file = null;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
            long length = RandomAccess.GetLength(file);
            var header = new byte[HeaderSize];
            if (length < HeaderSize || RandomAccess.Read(file, header, 0) != HeaderSize) return Fail("it is shorter than its header", out reason);
            if (!header.AsSpan(0, 8).SequenceEqual(Magic)) return Fail("it is not a sample store", out reason);
            if (XxHash64.HashToUInt64(header.AsSpan(0, HeaderSize - 8)) != BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(HeaderSize - 8)))
                return Fail("its header is damaged", out reason);
            int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
            if (version != FormatVersion) return Fail($"it has format {version}, this version writes {FormatVersion}", out reason);
            var stored = new SampleLayout(Int(header, 12), Int(header, 16), Int(header, 20));
            if (stored != layout) return Fail($"it holds {stored}, this Fit needs {layout}", out reason);
            long rows = Long(header, 32), labeled = Long(header, 40);
            if (Long(header, 48) != layout.RecordSize || rows < 0 || length != HeaderSize + BodySize(rows, layout))
                return Fail($"its length {length} does not fit {rows} records of {layout.RecordSize} bytes and their labels (truncated?)", out reason);
            var fingerprint = header.AsSpan(64, 32).ToArray();
            if (expected is not null && !fingerprint.AsSpan().SequenceEqual(expected)) return Fail("it was built from other rows or settings (stale)", out reason);
            ulong dataHash = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(96));
            if (verifyRecords && HashRecords(file, BodySize(rows, layout), cancel) != dataHash) return Fail("its records do not match their checksum (damaged)", out reason);
            int c = layout.Channels;
            var mean = new double[c];
            var std = new double[c];
            for (int i = 0; i < c; i++)
            {
                mean[i] = BitConverter.Int64BitsToDouble(Long(header, 104 + 8 * i));
                std[i] = BitConverter.Int64BitsToDouble(Long(header, 104 + 8 * (3 + i)));
            }
            var store = new SampleStore(path, file, layout, rows, labeled, fingerprint, mean, std, ownedFolder);
            file = null;
            return store;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail($"it cannot be read ({e.Message})", out reason);
        }
        finally
        {
            file?.Dispose();
        }
    }

    private static SampleStore? Fail(string why, out string reason)
    {
        reason = why;
        return null;
    }

    private static int Int(byte[] b, int at) => BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(at));
    private static long Long(byte[] b, int at) => BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(at));

    internal static ulong HashRecords(SafeFileHandle file, long bytes, Training.FitCancellation? cancel = null)
    {
        var hash = new XxHash3();
        var buffer = new byte[1 << 20];
        long done = 0;
        while (done < bytes)
        {
            cancel?.ThrowIfRequested(); // per MiB: checking a large store takes seconds
            int n = RandomAccess.Read(file, buffer.AsSpan(0, (int)Math.Min(buffer.Length, bytes - done)), HeaderSize + done);
            if (n == 0) break;
            hash.Append(buffer.AsSpan(0, n));
            done += n;
        }
        return hash.GetCurrentHashAsUInt64();
    }

    /// <summary>The header of a finished store (written last, after every record).</summary>
    internal static byte[] Header(SampleLayout layout, long rows, long labeled, byte[] fingerprint, ulong dataHash, double[] mean, double[] std)
    {
        var h = new byte[HeaderSize];
        Magic.CopyTo(h);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(12), layout.Channels);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(16), layout.Size);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(20), layout.TeacherValues);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(32), rows);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(40), labeled);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(48), layout.RecordSize);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(56), HeaderSize);
        fingerprint.CopyTo(h.AsSpan(64, 32));
        BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(96), dataHash);
        for (int i = 0; i < mean.Length; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(104 + 8 * i), BitConverter.DoubleToInt64Bits(mean[i]));
            BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(104 + 8 * (3 + i)), BitConverter.DoubleToInt64Bits(std[i]));
        }
        BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(HeaderSize - 8), XxHash64.HashToUInt64(h.AsSpan(0, HeaderSize - 8)));
        return h;
    }

    public void Dispose()
    {
        _file.Dispose();
        if (_ownedFolder is { } folder)
        {
            // A temporary store: its folder (made for this Fit only) goes with it.
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
