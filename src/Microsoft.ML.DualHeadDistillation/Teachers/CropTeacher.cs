using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Training.Augmentation;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Runs a fitted teacher on the student's crops (SameCropOnline, CachedViews): each sample's view of its stored
/// square, drawn exactly as the student's, is resampled to the teacher's input size, given the teacher's own
/// scaling, mean/std and channel order, and run in one ONNX Runtime call per batch. The logits come back in the
/// label's class order. Not thread-safe: one batch at a time.
/// </summary>
internal sealed class CropTeacher
{
    private readonly TeacherSoftLabelsTransformer _teacher;
    private readonly TeacherPreprocessing _preprocessing;
    private readonly ImageSampler _render;   // the student's views, rendered at the teacher's size
    private readonly int[] _rowShape;
    private readonly int[] _slotForClass;
    private readonly int _storeChannels, _teacherChannels, _classes;
    private float[] _inputs = [], _logits = [], _rendered = [];
    private readonly ImageSampler.Scratch _scratch = new();
    private long _ticks, _rows;

    public CropTeacher(TeacherSoftLabelsTransformer teacher, LabelInfo label, ImageInputSpec images)
    {
        _teacher = teacher;
        var runner = teacher.Runner;
        _preprocessing = teacher.Preprocessing ?? new TeacherPreprocessing();
        var dims = runner.ModelRowDims;
        if (dims.Length != 3)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.Teacher), $"Teacher model '{runner.Session.Path}' takes rows of shape [{string.Join(", ", dims)}]; a teacher that sees the student's crops must take images [C, H, W].");
        int h = dims[1] > 0 ? dims[1] : _preprocessing.CropHeight ?? throw Symbolic(runner.Session.Path, dims);
        int w = dims[2] > 0 ? dims[2] : _preprocessing.CropWidth ?? throw Symbolic(runner.Session.Path, dims);
        _teacherChannels = dims[0] > 0 ? dims[0] : 3;
        if (_teacherChannels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.Teacher), $"Teacher model '{runner.Session.Path}' takes {_teacherChannels}-channel images; expected 1 or 3.");
        _storeChannels = images.Crop.Channels;
        _rowShape = [_teacherChannels, h, w];
        _render = new ImageSampler(images.Augmentation, _storeChannels, images.StorageSize, new InputImageShape(_storeChannels, h, w), seed: 0, renderOnly: true);
        _classes = label.ClassCount;
        _slotForClass = TeacherAlignment.Create(nameof(DualHeadDistillOptions.Teacher), runner.ClassCount, teacher.ClassNames?.ToArray(), label).SlotForClass;
    }

    private static ArgumentOutOfRangeException Symbolic(string path, int[] dims) =>
        new(nameof(DualHeadDistillOptions.Teacher), $"Teacher model '{path}' has a symbolic image size [{string.Join(", ", dims)}]; set its Preprocessing.CropHeight/CropWidth to the size it expects.");

    /// <summary>The teacher's input per row, [C, H, W].</summary>
    public IReadOnlyList<int> RowShape => _rowShape;
    /// <summary>Seconds spent in the teacher (rendering its inputs included).</summary>
    public double Seconds => TimeSpan.FromTicks(Interlocked.Read(ref _ticks)).TotalSeconds;
    /// <summary>Samples the teacher labelled.</summary>
    public long Rows => Interlocked.Read(ref _rows);
    /// <summary>What identifies this teacher's outputs (model, names, preprocessing), for the sample store's fingerprint.</summary>
    public byte[][] FingerprintParts() => [.. _teacher.IdentityParts(), System.Text.Encoding.UTF8.GetBytes(string.Join(",", _rowShape))];

    public string Describe() => $"{Path.GetFileName(_teacher.Runner.Session.Path)} on the student's crops at [{string.Join(", ", _rowShape)}]";

    /// <summary>
    /// Labels <paramref name="count"/> samples: <paramref name="square"/>(i) is sample i's stored square and
    /// <paramref name="view"/>(i) its view; writes [count, K] logits in class order to <paramref name="destination"/>.
    /// </summary>
    public void Label(int count, Func<int, ReadOnlyMemory<byte>> square, Func<int, SampleView> view, Span<float> destination)
    {
        var watch = Stopwatch.StartNew();
        int size = _rowShape[0] * _rowShape[1] * _rowShape[2], plane = _rowShape[1] * _rowShape[2];
        int rendered = _storeChannels * plane;
        if (_inputs.Length < count * size) _inputs = new float[count * size];
        if (_rendered.Length < rendered) _rendered = new float[rendered];
        int k = _teacher.ClassCount;
        if (_logits.Length < count * k) _logits = new float[count * k];
        var p = _preprocessing;
        for (int i = 0; i < count; i++)
        {
            _render.Render(square(i).Span, view(i), _rendered.AsSpan(0, rendered), _scratch); // [0, 1], the student's crop at the teacher's size
            var input = _inputs.AsSpan(i * size, size);
            for (int c = 0; c < _rowShape[0]; c++)
            {
                int src = p.ChannelOrder == ChannelOrder.Bgr && _rowShape[0] == 3 ? 2 - c : c; // RGB channel feeding output channel c
                float mean = p.Mean is { } m && src < m.Length ? m[src] : 0f;
                float std = p.Std is { } sd && src < sd.Length ? sd[src] : 1f;
                var dst = input.Slice(c * plane, plane);
                for (int j = 0; j < plane; j++)
                {
                    float v = _storeChannels == _rowShape[0] ? _rendered[src * plane + j]
                        : _storeChannels == 1 ? _rendered[j]                                  // grey store, RGB teacher: replicate
                        : 0.299f * _rendered[j] + 0.587f * _rendered[plane + j] + 0.114f * _rendered[2 * plane + j]; // RGB store, grey teacher: luma
                    dst[j] = (v * 255f * p.Scale - mean) / std;
                }
            }
        }
        _teacher.Runner.Run(_inputs, count, _rowShape, _logits);
        for (int i = 0; i < count; i++)
            for (int c = 0; c < _classes; c++)
            {
                float v = _logits[i * k + _slotForClass[c]];
                if (!float.IsFinite(v))
                    throw new InvalidOperationException($"Teacher model '{_teacher.Runner.Session.Path}' gave {v} for class {c} of a crop; expected finite logits.");
                destination[i * _classes + c] = v;
            }
        Interlocked.Add(ref _ticks, watch.Elapsed.Ticks);
        Interlocked.Add(ref _rows, count);
    }
}
