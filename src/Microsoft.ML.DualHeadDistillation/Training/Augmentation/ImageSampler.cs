using Microsoft.ML.DualHeadDistillation.Data.Images;
using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Training.Augmentation;

/// <summary>The crop, flip and colour factors drawn for one sample.</summary>
internal readonly record struct SampleView(int Top, int Left, int Height, int Width, bool Flip, float Brightness, float Contrast, float Saturation)
{
    public override string ToString() => $"crop {Width}x{Height} at ({Left}, {Top}){(Flip ? ", flipped" : "")}";
}

/// <summary>
/// Turns a stored square ([C, S, S] bytes) into the student's input ([C, H, W] floats in [0, 1]) for one row of one
/// epoch: the center crop, or the augmentation's random resized crop (torchvision's RandomResizedCrop: ten tries at
/// an area and log-uniform ratio, then the largest centered crop of a valid ratio), resampled with an antialiased
/// bilinear filter that stays inside the crop, optionally mirrored and colour-jittered. Draws come from
/// <see cref="CounterRandom"/> keyed by (seed, epoch, row). Thread-safe; each caller passes its own scratch.
/// </summary>
internal sealed class ImageSampler
{
    private readonly ImageAugmentation _augmentation;
    private readonly int _channels, _size, _height, _width, _seed, _viewCycle;

    /// <param name="augmentation">The crops and flips to draw.</param>
    /// <param name="channels">1 or 3.</param>
    /// <param name="storageSize">The side of the stored squares.</param>
    /// <param name="crop">The student's input shape.</param>
    /// <param name="seed">The run's seed (views are drawn per row, epoch and seed).</param>
    /// <param name="viewCycle">With V &gt; 0, epoch e reuses the views of epoch (e - 1) mod V + 1 (CachedViews); 0: every epoch draws afresh.</param>
    /// <param name="renderOnly">For rendering given views at another size (a teacher's input): the output may exceed the stored square.</param>
    public ImageSampler(ImageAugmentation augmentation, int channels, int storageSize, InputImageShape crop, int seed, int viewCycle = 0, bool renderOnly = false)
    {
        if (!renderOnly && (crop.Height > storageSize || crop.Width > storageSize))
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageStorageSize), $"ImageStorageSize {storageSize} is smaller than the student's input {crop.Height}x{crop.Width}; the stored square must hold the crop.");
        _augmentation = augmentation;
        _channels = channels;
        _size = storageSize;
        _height = crop.Height;
        _width = crop.Width;
        _seed = seed;
        _viewCycle = viewCycle;
    }

    public int OutputSize => _channels * _height * _width;
    /// <summary>True when every epoch gives the same (center-crop) sample.</summary>
    public bool IsIdentity => _augmentation.IsIdentity;

    /// <summary>The view of row <paramref name="row"/> in epoch <paramref name="epoch"/> (1-based).</summary>
    public SampleView View(int epoch, long row)
    {
        var a = _augmentation;
        if (_viewCycle > 0) epoch = (epoch - 1) % _viewCycle + 1;
        var random = CounterRandom.For(_seed, epoch, row);
        int s = _size;
        int top, left, h, w;
        if (a.RandomResizedCrop)
            (top, left, h, w) = RandomResizedCrop(random, s, s, a);
        else
            (h, w, top, left) = (_height, _width, (s - _height) / 2, (s - _width) / 2);
        bool flip = a.HorizontalFlip && random.Uniform(60) < 0.5;
        float Factor(int index, float strength) => strength > 0 ? (float)random.Uniform(index, 1 - strength, 1 + strength) : 1f;
        return new SampleView(top, left, h, w, flip, Factor(61, a.Brightness), Factor(62, a.Contrast), Factor(63, a.Saturation));
    }

    private static (int Top, int Left, int H, int W) RandomResizedCrop(CounterRandom random, int height, int width, ImageAugmentation a)
    {
        double area = (double)height * width;
        double logLow = Math.Log(a.MinRatio), logHigh = Math.Log(a.MaxRatio);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * random.Uniform(4 * attempt, a.MinScale, a.MaxScale);
            double ratio = Math.Exp(random.Uniform(4 * attempt + 1, logLow, logHigh));
            int w = (int)Math.Round(Math.Sqrt(target * ratio));
            int h = (int)Math.Round(Math.Sqrt(target / ratio));
            if (w > 0 && h > 0 && w <= width && h <= height)
                return (random.Below(4 * attempt + 2, height - h + 1), random.Below(4 * attempt + 3, width - w + 1), h, w);
        }
        double inRatio = (double)width / height;
        int cw, ch;
        if (inRatio < a.MinRatio) (cw, ch) = (width, (int)Math.Round(width / a.MinRatio));
        else if (inRatio > a.MaxRatio) (ch, cw) = (height, (int)Math.Round(height * a.MaxRatio));
        else (cw, ch) = (width, height);
        return ((height - ch) / 2, (width - cw) / 2, ch, cw);
    }

    /// <summary>Per-worker buffers.</summary>
    internal sealed class Scratch
    {
        internal float[] Rows = [];
        internal int[] StartX = [], CountX = [], StartY = [], CountY = [];
        internal float[] WeightX = [], WeightY = [];
    }

    /// <summary>Writes the sample of <paramref name="square"/> for (epoch, row) into <paramref name="destination"/>.</summary>
    public SampleView Write(ReadOnlySpan<byte> square, int epoch, long row, Span<float> destination, Scratch scratch)
    {
        var view = ViewOf(epoch, row);
        Render(square, view, destination, scratch);
        return view;
    }

    /// <summary>The view used for (epoch, row): the center crop without augmentation.</summary>
    public SampleView ViewOf(int epoch, long row) =>
        _augmentation.IsIdentity ? new SampleView((_size - _height) / 2, (_size - _width) / 2, _height, _width, false, 1, 1, 1) : View(epoch, row);

    internal void Render(ReadOnlySpan<byte> square, SampleView view, Span<float> destination, Scratch scratch)
    {
        int c = _channels, s = _size, oh = _height, ow = _width;
        if (destination.Length != c * oh * ow) throw new ArgumentException($"The sample holds {destination.Length} values; [{c}, {oh}, {ow}] needs {c * oh * ow}.");
        if (view.Height == oh && view.Width == ow && !view.Flip)
        {
            ImageSquare.CenterCrop(square.Slice(0, c * s * s), c, s, oh, ow, destination, view.Top, view.Left);
        }
        else
        {
            int tapsX = Coefficients(view.Left, view.Width, ow, view.Flip, ref scratch.StartX, ref scratch.CountX, ref scratch.WeightX);
            int tapsY = Coefficients(view.Top, view.Height, oh, false, ref scratch.StartY, ref scratch.CountY, ref scratch.WeightY);
            int rows = view.Height;
            if (scratch.Rows.Length < rows * ow) scratch.Rows = new float[rows * ow];
            var tmp = scratch.Rows.AsSpan();
            ReadOnlySpan<int> startX = scratch.StartX.AsSpan(0, ow), countX = scratch.CountX.AsSpan(0, ow);
            ReadOnlySpan<float> weightX = scratch.WeightX;
            for (int k = 0; k < c; k++)
            {
                var plane = square.Slice(k * s * s, s * s);
                for (int y = 0; y < rows; y++) // horizontal pass over the crop's rows
                {
                    var src = plane.Slice((view.Top + y) * s, s);
                    var dst = tmp.Slice(y * ow, ow);
                    for (int x = 0; x < dst.Length; x++)
                    {
                        var taps = src.Slice(startX[x], countX[x]);
                        var weights = weightX.Slice(x * tapsX, taps.Length);
                        float sum = 0;
                        for (int j = 0; j < taps.Length; j++) sum += weights[j] * taps[j];
                        dst[x] = sum;
                    }
                }
                var output = destination.Slice(k * oh * ow, oh * ow);
                for (int y = 0; y < oh; y++) // vertical pass: whole rows at a time
                {
                    int start = scratch.StartY[y] - view.Top, n = scratch.CountY[y], wo = y * tapsY;
                    var dst = output.Slice(y * ow, ow);
                    dst.Clear();
                    for (int j = 0; j < n; j++)
                        AddScaled(scratch.WeightY[wo + j] * (1f / 255f), tmp.Slice((start + j) * ow, ow), dst);
                }
            }
        }
        Jitter(destination, view);
    }

    /// <summary>y += a * x, element by element (SIMD where available; each element gets the same operations either way).</summary>
    private static void AddScaled(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var va = new System.Numerics.Vector<float>(a);
            int width = System.Numerics.Vector<float>.Count;
            for (; i <= y.Length - width; i += width)
                (new System.Numerics.Vector<float>(y[i..]) + va * new System.Numerics.Vector<float>(x[i..])).CopyTo(y[i..]);
        }
        for (; i < y.Length; i++) y[i] += a * x[i];
    }

    /// <summary>
    /// Antialiased bilinear coefficients (PIL's triangle filter scaled by the shrink factor) mapping the window
    /// [offset, offset + length) of the source onto <paramref name="outSize"/> samples, never reading outside the
    /// window. Returns the taps per output (the stride of <paramref name="weights"/>).
    /// </summary>
    private static int Coefficients(int offset, int length, int outSize, bool flip, ref int[] starts, ref int[] counts, ref float[] weights)
    {
        double scale = (double)length / outSize;
        double support = Math.Max(scale, 1.0);
        int taps = (int)Math.Ceiling(support) * 2 + 1;
        if (starts.Length < outSize) (starts, counts) = (new int[outSize], new int[outSize]);
        if (weights.Length < outSize * taps) weights = new float[outSize * taps];
        Span<double> w = stackalloc double[taps];
        for (int i = 0; i < outSize; i++)
        {
            double center = (i + 0.5) * scale;
            int min = Math.Max((int)Math.Floor(center - support + 0.5), 0);
            int max = Math.Min((int)Math.Floor(center + support + 0.5), length);
            int n = Math.Min(max - min, taps);
            double total = 0;
            for (int j = 0; j < n; j++)
            {
                double x = Math.Abs((min + j - center + 0.5) / support);
                w[j] = x < 1 ? 1 - x : 0;
                total += w[j];
            }
            int o = flip ? outSize - 1 - i : i;
            starts[o] = offset + min;
            counts[o] = n;
            for (int j = 0; j < n; j++) weights[o * taps + j] = (float)(total != 0 ? w[j] / total : 0);
        }
        return taps;
    }

    private void Jitter(Span<float> x, SampleView view)
    {
        if (view.Brightness != 1f)
            for (int i = 0; i < x.Length; i++) x[i] = Math.Clamp(x[i] * view.Brightness, 0f, 1f);
        int plane = _height * _width, c = _channels;
        if (view.Contrast != 1f)
        {
            double mean = 0;
            for (int i = 0; i < plane; i++) mean += Grey(x, i, plane);
            float m = (float)(mean / plane), f = view.Contrast;
            for (int i = 0; i < x.Length; i++) x[i] = Math.Clamp(f * x[i] + (1 - f) * m, 0f, 1f);
        }
        if (view.Saturation != 1f && c == 3)
        {
            float f = view.Saturation;
            for (int i = 0; i < plane; i++)
            {
                float g = Grey(x, i, plane);
                for (int k = 0; k < 3; k++) x[k * plane + i] = Math.Clamp(f * x[k * plane + i] + (1 - f) * g, 0f, 1f);
            }
        }
    }

    private float Grey(Span<float> x, int i, int plane) => _channels == 3 ? 0.299f * x[i] + 0.587f * x[plane + i] + 0.114f * x[2 * plane + i] : x[i];
}
