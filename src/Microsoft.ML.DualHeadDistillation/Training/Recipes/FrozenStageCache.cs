using System.IO.MemoryMappedFiles;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training.Recipes;

/// <summary>
/// The outputs of a student's frozen stages, one slot per (row, view), in a memory-mapped file that is deleted when the
/// cache is disposed (so a set larger than memory lives in the page cache, not the heap). A slot is written the first
/// time its row is trained on (the stages then run as usual) and read back afterwards, so later epochs run neither
/// the frozen stages' forward nor, as always for frozen stages, their backward. Valid only while the frozen stages do
/// not change (their parameters do not learn, their BatchNorm layers are in eval mode) and the row's input is the same
/// every time it is read: no augmentation (one view), or CachedViews (view (epoch - 1) mod V). Values are float32 (a
/// bfloat16 compute copy's outputs convert exactly); a channels-last output is kept channels-last, so a read gives the
/// tensor a fresh forward gives, value for value and stride for stride.
/// </summary>
internal sealed class FrozenStageCache : IDisposable
{
    private readonly int _rows, _views;
    private readonly string _folder;
    private readonly bool[] _filled;
    private FileStream? _file;
    private MemoryMappedFile? _map;
    private MemoryMappedViewAccessor? _view;
    private long[]? _shape; // [C, h, w] of one row, as the prefix had it
    private bool _channelsLast;
    private long _values; // floats per slot
    private ScalarType _dtype;

    /// <param name="rows">Training rows (slots per view).</param>
    /// <param name="views">Distinct inputs per row: 1 without augmentation, V under CachedViews.</param>
    /// <param name="folder">Where the file goes.</param>
    public FrozenStageCache(int rows, int views, string folder)
    {
        if (rows < 1 || views < 1) throw new ArgumentOutOfRangeException(nameof(rows), $"A frozen-stage cache needs rows and views >= 1 (got {rows} rows, {views} views).");
        _rows = rows;
        _views = views;
        _folder = folder;
        _filled = new bool[(long)rows * views > int.MaxValue ? throw new ArgumentOutOfRangeException(nameof(rows), "More than 2^31 cached (row, view) slots.") : rows * views];
    }

    /// <summary>Why the outputs of frozen stages cannot be cached for these rows (their input changes between epochs), or null.</summary>
    public static string? WhyNot(Batches.TrainingRows rows, Specs.ImageInputSpec? images, bool resolutionSchedule)
    {
        if (resolutionSchedule) return "a resolution schedule changes the input size";
        if (images is { TeacherView: Specs.DualHeadTeacherView.CachedViews }) return null;
        if (rows.IsAugmented) return "augmentation draws a new crop every epoch (TeacherView CachedViews would repeat them)";
        return null;
    }

    /// <summary>Distinct inputs per row for these rows: the cached views, else 1.</summary>
    public static int ViewsOf(Specs.ImageInputSpec? images) => images is { TeacherView: Specs.DualHeadTeacherView.CachedViews } && !images.Augmentation.IsIdentity ? images.TeacherViews : 1;

    /// <summary>The view rows are read in at <paramref name="epoch"/> (1-based).</summary>
    public int ViewOf(int epoch) => (epoch - 1) % _views;

    /// <summary>Bytes of the file (0 before the first write).</summary>
    public long Bytes => _values * sizeof(float) * _filled.LongLength;

    /// <summary>Batches read back from the cache so far.</summary>
    public long Reads { get; private set; }

    /// <summary>Slots written so far.</summary>
    public int FilledSlots { get; private set; }

    /// <summary>True when every one of <paramref name="rows"/> has its output for <paramref name="view"/>.</summary>
    public bool Holds(ReadOnlySpan<int> rows, int view)
    {
        foreach (int row in rows)
            if (!_filled[Slot(row, view)]) return false;
        return true;
    }

    /// <summary>Writes the rows of <paramref name="prefix"/> ([n, C, h, w], row i of <paramref name="rows"/>) that are not cached yet.</summary>
    public void Write(ReadOnlySpan<int> rows, int view, Tensor prefix)
    {
        if (prefix.dim() != 4 || prefix.shape[0] != rows.Length)
            throw new ArgumentException($"The frozen stages' output has shape [{string.Join(", ", prefix.shape)}]; expected [{rows.Length}, C, h, w].", nameof(prefix));
        bool channelsLast = prefix.stride(1) == 1 && prefix.shape[1] > 1;
        if (_shape is null) Open(prefix, channelsLast);
        else if (!prefix.shape.Skip(1).SequenceEqual(_shape) || channelsLast != _channelsLast || prefix.dtype != _dtype)
            throw new InvalidOperationException($"The frozen stages' output changed shape or layout within a run ([{string.Join(", ", prefix.shape.Skip(1))}] after [{string.Join(", ", _shape)}]).");
        using var scope = NewDisposeScope();
        var host = (channelsLast ? prefix.permute(0, 2, 3, 1) : prefix).to(ScalarType.Float32).cpu().contiguous();
        var values = host.data<float>().ToArray();
        for (int i = 0; i < rows.Length; i++)
        {
            long slot = Slot(rows[i], view);
            if (_filled[slot]) continue;
            _view!.WriteArray(slot * _values * sizeof(float), values, (int)(i * _values), (int)_values);
            _filled[slot] = true;
            FilledSlots++;
        }
    }

    /// <summary>The cached outputs of <paramref name="rows"/> for <paramref name="view"/>, as the frozen stages gave them (dtype, layout) on <paramref name="device"/>.</summary>
    public Tensor Read(ReadOnlySpan<int> rows, int view, Device device)
    {
        if (_shape is null) throw new InvalidOperationException("Nothing is cached yet.");
        var buffer = new float[checked((int)(rows.Length * _values))];
        for (int i = 0; i < rows.Length; i++)
        {
            long slot = Slot(rows[i], view);
            if (!_filled[slot]) throw new InvalidOperationException($"Row {rows[i]} (view {view}) is not cached.");
            _view!.ReadArray(slot * _values * sizeof(float), buffer, (int)(i * _values), (int)_values);
        }
        Reads++;
        long c = _shape[0], h = _shape[1], w = _shape[2];
        using var scope = NewDisposeScope();
        var flat = tensor(buffer, _channelsLast ? [rows.Length, h, w, c] : [rows.Length, c, h, w]);
        var laid = _channelsLast ? flat.permute(0, 3, 1, 2) : flat;
        return laid.to(_dtype).to(device).MoveToOuterDisposeScope();
    }

    private long Slot(int row, int view)
    {
        if ((uint)row >= (uint)_rows || (uint)view >= (uint)_views)
            throw new ArgumentOutOfRangeException(nameof(row), $"Row {row}, view {view} is outside the cache's {_rows} rows x {_views} views.");
        return (long)view * _rows + row;
    }

    private void Open(Tensor prefix, bool channelsLast)
    {
        _shape = prefix.shape.Skip(1).ToArray();
        _channelsLast = channelsLast;
        _dtype = prefix.dtype;
        _values = _shape.Aggregate(1L, (a, b) => a * b);
        if (_values > int.MaxValue / 1024)
            throw new InvalidOperationException($"A frozen stage output of {_values} values per row is too large to cache.");
        Directory.CreateDirectory(_folder);
        string path = Path.Combine(_folder, $"dualhead-frozen-stages-{Environment.ProcessId}-{Guid.NewGuid():N}.bin");
        _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 4096, FileOptions.DeleteOnClose);
        _file.SetLength(Bytes);
        _map = MemoryMappedFile.CreateFromFile(_file, null, Bytes, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        _view = _map.CreateViewAccessor(0, Bytes);
    }

    public void Dispose()
    {
        _view?.Dispose();
        _map?.Dispose();
        _file?.Dispose();
        _view = null;
        _map = null;
        _file = null;
    }
}
