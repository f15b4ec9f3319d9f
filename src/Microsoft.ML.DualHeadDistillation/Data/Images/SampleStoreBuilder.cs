using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Training;

namespace Microsoft.ML.DualHeadDistillation.Data.Images;

/// <summary>
/// Builds (or finds) the sample store of a Fit: one pass over the training rows decodes each image once, turns it
/// into its stored square and writes it with its label and teacher logits.
/// <list type="bullet">
/// <item>With a store folder, a first, cheaper pass fingerprints the rows (SHA-256 of the settings and every row's
/// label, raw image and teacher values) and a verified store with that fingerprint is reused: no decoding,
/// resizing or writing. A damaged or stale file is rebuilt with one warning.</item>
/// <item>Without one, the store lives in a fresh temporary folder and is deleted when the Fit ends.</item>
/// <item>The file is allocated whole before the first record (a disk too small fails at once, with the sizes),
/// written under a temporary name, checked by reading it back, then renamed: nothing partial is ever left.</item>
/// </list>
/// </summary>
internal sealed class SampleStoreBuilder
{
    private readonly TrainingColumns _columns;
    private readonly ImageColumn _images;
    private readonly SampleLayout _layout;
    private readonly TeacherOutputKind _teacherKind;
    private readonly Action<string> _log, _warn;
    private readonly FitCancellation _cancel;
    private readonly Teachers.CropTeacher? _viewTeacher;
    private readonly Training.Augmentation.ImageSampler? _views;
    private readonly int _viewCount;
    private readonly byte[][] _extraFingerprint;
    private readonly byte[][]? _teacherIdentity;

    /// <param name="columns">The training columns, bound to the data.</param>
    /// <param name="images">The image column.</param>
    /// <param name="storageSize">The side of the stored squares.</param>
    /// <param name="teacherKind">Whether the teacher column holds logits or probabilities.</param>
    /// <param name="cancel">Fit's cancellation.</param>
    /// <param name="log">Fit's log.</param>
    /// <param name="warn">Fit's warnings.</param>
    /// <param name="views">The student's sampler, drawing the cached views.</param>
    /// <param name="viewCount">V, the cached views per image (0: none).</param>
    /// <param name="extraFingerprint">More values the store's fingerprint covers.</param>
    /// <param name="teacherIdentity">When the teacher column comes from the trainer's own teacher: what identifies its outputs (model, preprocessing, names), fingerprinted instead of its values.</param>
    /// <param name="viewTeacher">CachedViews: the teacher that labels <paramref name="viewCount"/> views of every image, drawn by <paramref name="views"/> (the student's sampler) for epochs 1..V.</param>
    public SampleStoreBuilder(TrainingColumns columns, ImageColumn images, int storageSize, TeacherOutputKind teacherKind, FitCancellation cancel, Action<string> log, Action<string> warn,
        Teachers.CropTeacher? viewTeacher = null, Training.Augmentation.ImageSampler? views = null, int viewCount = 0, byte[][]? extraFingerprint = null,
        byte[][]? teacherIdentity = null)
    {
        _teacherIdentity = teacherIdentity;
        _columns = columns;
        _images = images;
        _viewTeacher = viewTeacher;
        _views = views;
        _viewCount = viewCount;
        _extraFingerprint = extraFingerprint ?? [];
        int teacherValues = columns.TeacherColumn is not null ? columns.ClassCount : viewTeacher is not null ? checked(viewCount * columns.ClassCount) : 0;
        _layout = new SampleLayout(images.Channels, storageSize, teacherValues);
        _teacherKind = teacherKind;
        _cancel = cancel;
        _log = log;
        _warn = warn;
    }

    public SampleLayout Layout => _layout;

    /// <summary>Images stored per second by the last <see cref="Build"/> (0 when a store was reused).</summary>
    public double ImagesPerSecond { get; private set; }
    public bool Reused { get; private set; }

    /// <summary>The store of <paramref name="data"/>: reused from <paramref name="folder"/> when a verified one matches, else built there (or in a temporary folder deleted with the store).</summary>
    public SampleStore Build(IDataView data, string? folder)
    {
        if (folder is null)
        {
            string temp = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "dualhead-store-" + Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(temp);
            try
            {
                return Write(data, temp, "samples", ownedFolder: temp, expected: null);
            }
            catch
            {
                TryDeleteFolder(temp);
                throw;
            }
        }
        if (!Directory.Exists(folder))
            throw new ArgumentException($"ImageStoreFolder '{folder}' does not exist; create it or leave ImageStoreFolder null for a temporary store.", nameof(DualHeadDistillOptions.ImageStoreFolder));
        var fingerprint = Pass(data, null, out _);
        string name = "dualhead-" + Convert.ToHexString(fingerprint)[..24].ToLowerInvariant();
        string path = System.IO.Path.Combine(folder, name + ".store");
        if (File.Exists(path))
        {
            var found = SampleStore.Open(path, _layout, fingerprint, out var reason, cancel: _cancel);
            if (found is not null && found.Rows == RowCount)
            {
                Reused = true;
                _log($"DualHeadDistill: reusing sample store {path} ({found.Rows} rows, {found.FileSize / 1e6:0.#} MB)");
                return found;
            }
            found?.Dispose();
            _warn($"DualHeadDistill: warning: sample store {path} is not usable ({reason ?? "its row count differs"}); rebuilding it.");
        }
        return Write(data, folder, name, ownedFolder: null, expected: fingerprint);
    }

    private long RowCount { get; set; }

    private SampleStore Write(IDataView data, string folder, string name, string? ownedFolder, byte[]? expected)
    {
        string final = System.IO.Path.Combine(folder, name + ".store");
        string temp = System.IO.Path.Combine(folder, $"{name}.{Guid.NewGuid():N}.partial");
        // The row count sets the file size: a cheap first count when the view does not know it.
        long rows = data.GetRowCount() ?? CountRows(data);
        long bytes = SampleStore.HeaderSize + SampleStore.BodySize(rows, _layout);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            byte[] fingerprint;
            Stats stats;
            using (var stream = Create(temp, bytes))
            {
                stream.Write(new byte[SampleStore.HeaderSize]); // the header is written last
                fingerprint = Pass(data, stream, out stats);
                if (stats.Rows != rows)
                    throw new InvalidOperationException($"The training data gave {stats.Rows} rows while writing the sample store but reported {rows}; the data changed while it was read.");
                if (expected is not null && !fingerprint.AsSpan().SequenceEqual(expected))
                    throw new InvalidOperationException("The training data changed between the fingerprint pass and the store pass (another fingerprint); Fit needs data that reads the same twice.");
                stream.Flush();
                var recordsHash = _viewTeacher is null ? stats.DataHash : LabelViews(stream.SafeFileHandle, rows);
                // The label block after the records: labels are one read when the store is opened.
                var labelBytes = MemoryMarshal.AsBytes(stats.Labels.AsSpan());
                RandomAccess.Write(stream.SafeFileHandle, labelBytes, SampleStore.HeaderSize + rows * _layout.RecordSize);
                recordsHash.Append(labelBytes);
                ulong written = recordsHash.GetCurrentHashAsUInt64();
                ulong dataHash = SampleStore.HashRecords(stream.SafeFileHandle, SampleStore.BodySize(rows, _layout), _cancel);
                if (dataHash != written)
                    throw new IOException($"Sample store '{temp}' reads back differently from what was written (checksum mismatch); the disk or file system is faulty.");
                stream.Position = 0;
                stream.Write(SampleStore.Header(_layout, rows, stats.Labeled, fingerprint, dataHash, stats.Mean, stats.Std));
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, final, overwrite: true);
            ImagesPerSecond = rows / Math.Max(watch.Elapsed.TotalSeconds, 1e-9);
            var store = SampleStore.Open(final, _layout, fingerprint, out var reason, ownedFolder, verifyRecords: false)
                ?? throw new IOException($"Sample store '{final}' was written but does not read back ({reason}).");
            _log(FormattableString.Invariant($"DualHeadDistill: wrote sample store {final}: {rows} rows of [{_layout.Channels}, {_layout.Size}, {_layout.Size}] pixels{(_layout.TeacherValues > 0 ? $" + {_layout.TeacherValues} teacher logits" : "")}, {bytes / 1e6:0.#} MB, {ImagesPerSecond:0} images/s"));
            return store;
        }
        catch (IOException e) when (IsDiskFull(e))
        {
            TryDelete(temp);
            long free = TryFreeSpace(folder);
            throw new IOException(FormattableString.Invariant(
                $"The sample store needs {bytes / 1e6:0.#} MB in '{folder}' ({rows} rows of {_layout.RecordSize} bytes) but the disk is full ({free / 1e6:0.#} MB free). Nothing was left behind; free space, choose another ImageStoreFolder, or a smaller ImageStorageSize."), e);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// CachedViews: the teacher labels views 1..V of every stored image (the crops the student trains on in epochs
    /// 1..V, then again in V+1..2V, ...), in batches; the logits go into each record, which is written back.
    /// Returns the XxHash3 of the final records, to compare with what the file reads back.
    /// </summary>
    private XxHash3 LabelViews(Microsoft.Win32.SafeHandles.SafeFileHandle file, long rows)
    {
        var teacher = _viewTeacher!;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int batch = 64, size = _layout.RecordSize, pb = _layout.PixelBytes, k = _columns.ClassCount;
        var records = new byte[batch * size];
        var logits = new float[batch * k];
        var hash = new XxHash3();
        for (long start = 0; start < rows; start += batch)
        {
            _cancel.ThrowIfRequested();
            int n = (int)Math.Min(batch, rows - start);
            long offset = SampleStore.HeaderSize + start * size;
            var span = records.AsSpan(0, n * size);
            if (RandomAccess.Read(file, span, offset) != span.Length) throw new IOException("The sample store being written reads back short.");
            for (int v = 0; v < _viewCount; v++)
            {
                long first = start;
                teacher.Label(n, i => records.AsMemory(i * size, pb), i => _views!.ViewOf(v + 1, first + i), logits);
                for (int i = 0; i < n; i++)
                    MemoryMarshal.AsBytes(logits.AsSpan(i * k, k)).CopyTo(records.AsSpan(i * size + _layout.TeacherOffset + v * k * 4, k * 4));
            }
            RandomAccess.Write(file, span, offset);
            hash.Append(span);
        }
        _log(FormattableString.Invariant($"DualHeadDistill: teacher labelled {_viewCount} views of {rows} images ({teacher.Describe()}) in {watch.Elapsed.TotalSeconds:0.0}s"));
        return hash;
    }

    private static FileStream Create(string path, long bytes) => new(path, new FileStreamOptions
    {
        Mode = FileMode.CreateNew,
        Access = FileAccess.ReadWrite,
        Share = FileShare.None,
        BufferSize = 1 << 20,
        PreallocationSize = bytes, // fallocate: a disk without the room fails here, before any work
    });

    private static bool IsDiskFull(IOException e)
    {
        const int ENOSPC = 28, ERROR_DISK_FULL = 112, ERROR_HANDLE_DISK_FULL = 39;
        int code = e.HResult & 0xFFFF;
        return code is ENOSPC or ERROR_DISK_FULL or ERROR_HANDLE_DISK_FULL || e.Message.Contains("space", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("disk was full", StringComparison.OrdinalIgnoreCase);
    }

    private static long TryFreeSpace(string folder)
    {
        try { return new DriveInfo(System.IO.Path.GetFullPath(folder)).AvailableFreeSpace; } catch (Exception) { return -1; }
    }

    private long CountRows(IDataView data)
    {
        long n = 0;
        using var cursor = data.GetRowCursor([]);
        while (cursor.MoveNext())
        {
            if ((n & 4095) == 0) _cancel.ThrowIfRequested();
            n++;
        }
        return n;
    }

    /// <summary>What the store pass found: counts, the running hash of the records written, pixel statistics and every row's label.</summary>
    private sealed record Stats(long Rows, long Labeled, XxHash3 DataHash, double[] Mean, double[] Std, int[] Labels);

    /// <summary>
    /// One pass over the rows: the fingerprint always; with <paramref name="output"/>, every record is also written
    /// there and the statistics are gathered.
    /// </summary>
    private byte[] Pass(IDataView data, Stream? output, out Stats stats)
    {
        var schema = data.Schema;
        var labelCol = schema[_columns.Label.ColumnName];
        var imageCol = schema[_images.Name];
        // A teacher known by its identity (the trainer's own) is fingerprinted by it: the fingerprint pass then
        // leaves the teacher column inactive, so the teacher runs once, in the store pass, not twice.
        bool teacherByIdentity = _teacherIdentity is not null;
        DataViewSchema.Column? teacherCol = _columns.TeacherColumn is { } t && (output is not null || !teacherByIdentity) ? schema[t] : null;
        var active = new List<DataViewSchema.Column> { labelCol, imageCol };
        if (teacherCol is { } tc) active.Add(tc);

        using var fingerprint = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        fingerprint.AppendData(Encoding.UTF8.GetBytes(FormattableString.Invariant(
            $"dualhead-store v{SampleStore.FormatVersion}; {_layout}; label '{labelCol.Name}' [{string.Join("|", _columns.Label.ClassNames)}]; image '{imageCol.Name}' {_images.Kind}; teacher '{_columns.TeacherColumn}' {_teacherKind}; views {_viewCount}")));
        foreach (var part in _extraFingerprint) fingerprint.AppendData(part);
        foreach (var part in _teacherIdentity ?? []) fingerprint.AppendData(part);
        var dataHash = new XxHash3();
        int c = _layout.Channels, k = _columns.ClassCount;
        var sum = new double[c];
        var sumSquares = new double[c];
        long labeled = 0, row = 0;
        var labels = new List<int>();
        var record = new byte[_layout.RecordSize];
        byte[] pixels = [];
        var teacherRaw = new float[teacherCol is { } tcol ? ((VectorDataViewType)tcol.Type).Size : 0];
        int[] slotForClass = _columns.Teacher?.SlotForClass ?? [];
        using var cursor = data.GetRowCursor(active);
        var labelGetter = cursor.GetGetter<uint>(labelCol);
        var reader = _images.Bind(cursor);
        var teacherGetter = teacherCol is { } t2 ? cursor.GetGetter<VBuffer<float>>(t2) : null;
        VBuffer<float> tbuf = default;
        uint key = 0;
        var rowBytes = new byte[8];
        while (cursor.MoveNext())
        {
            _cancel.ThrowIfRequested(); // per row: an upstream teacher or decoder may take long per row
            labelGetter(ref key);
            if (key > k)
                throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.LabelColumnName), $"Row {row} of label column '{labelCol.Name}' holds key {key}, outside 1..{k}.");
            BinaryPrimitives.WriteUInt32LittleEndian(rowBytes, key);
            fingerprint.AppendData(rowBytes.AsSpan(0, 4));
            var (h, w) = reader.Read(row, ref pixels, fingerprint, decode: output is not null);
            if (teacherGetter is not null)
            {
                teacherGetter(ref tbuf);
                if (tbuf.Length != teacherRaw.Length)
                    throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.TeacherColumnName), $"Row {row} of teacher column '{teacherCol!.Value.Name}' has {tbuf.Length} values; expected {teacherRaw.Length}.");
                VectorColumn.CopyDense(tbuf, teacherRaw);
                if (!teacherByIdentity) fingerprint.AppendData(MemoryMarshal.AsBytes(teacherRaw.AsSpan()));
            }
            if (output is not null)
            {
                record.AsSpan().Clear();
                var square = record.AsSpan(0, _layout.PixelBytes);
                if (Math.Min(h, w) < _layout.Size && row == 0)
                    _log($"DualHeadDistill: note: images of column '{_images.Name}' are upscaled to the storage size {_layout.Size} (row 0 is {w}x{h}).");
                ImageSquare.Store(pixels, c, h, w, _layout.Size, square);
                int plane = _layout.Size * _layout.Size;
                for (int ch = 0; ch < c; ch++)
                {
                    long s = 0, s2 = 0;
                    foreach (byte v in square.Slice(ch * plane, plane))
                    {
                        s += v;
                        s2 += v * v;
                    }
                    sum[ch] += s;
                    sumSquares[ch] += s2;
                }
                int label = key == 0 ? -1 : (int)key - 1;
                if (label >= 0) labeled++;
                labels.Add(label);
                BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(_layout.LabelOffset), label);
                if (teacherGetter is not null)
                {
                    var logits = MemoryMarshal.Cast<byte, float>(record.AsSpan(_layout.TeacherOffset, 4 * k));
                    for (int j = 0; j < k; j++) logits[j] = TrainingSet.ToLogit(teacherRaw[slotForClass[j]], _teacherKind, row, slotForClass[j], teacherCol!.Value.Name);
                }
                output.Write(record);
                dataHash.Append(record);
            }
            row++;
        }
        RowCount = row;
        double n = (double)row * _layout.Size * _layout.Size;
        var mean = sum.Select(s => n > 0 ? s / n / 255.0 : 0).ToArray();
        var std = sum.Select((s, i) => n > 0 ? Math.Sqrt(Math.Max(0, sumSquares[i] / n - (s / n) * (s / n))) / 255.0 : 0).ToArray();
        stats = new Stats(row, labeled, dataHash, mean, std, [.. labels]);
        return fingerprint.GetHashAndReset();
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static void TryDeleteFolder(string path)
    {
        try { Directory.Delete(path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
