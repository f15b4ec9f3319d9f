using System.Security.Cryptography;
using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Reads the teacher's input column — an ML.NET image (MLImage), encoded image bytes (LoadRawImageBytes) or a known-size float vector — and writes
/// the preprocessed teacher input of one row. Also fingerprints the raw value (SHA-256) for the soft-label cache.
/// </summary>
internal sealed class TeacherInputReader
{
    private readonly string _column;
    private readonly bool _isImage;
    private readonly bool _isEncoded;
    private readonly int _vectorSize;
    private readonly TeacherPreprocessing? _preprocessing;

    private TeacherInputReader(string column, bool isImage, bool isEncoded, int vectorSize, TeacherPreprocessing? preprocessing, int[] rowShape)
    {
        _column = column;
        _isImage = isImage;
        _isEncoded = isEncoded;
        _vectorSize = vectorSize;
        _preprocessing = preprocessing;
        RowShape = rowShape;
    }

    /// <summary>The per-row input the teacher receives ([C, H, W], or [D] for a plain vector).</summary>
    public int[] RowShape { get; }
    public int RowSize => RowShape.Aggregate(1, (a, b) => a * b);

    /// <summary>
    /// Checks the column against the model's per-row input dims (<paramref name="modelDims"/>, -1 for symbolic)
    /// and the preprocessing, and fixes the per-row shape.
    /// </summary>
    public static TeacherInputReader Create(DataViewSchema schema, string column, TeacherPreprocessing? preprocessing, int[] modelDims, string modelPath)
    {
        var col = schema.GetColumnOrNull(column)
            ?? throw new ArgumentOutOfRangeException("InputColumnName", $"Teacher input column '{column}' was not found in the data. Expected an image (LoadImages), encoded image bytes (LoadRawImageBytes) or a known-size vector of Single.");
        preprocessing?.Validate();
        bool isEncoded = col.Type is VectorDataViewType { ItemType: var byteItem } && byteItem == NumberDataViewType.Byte;
        bool isImage = col.Type.RawType == typeof(MLImage) || isEncoded;
        int vectorSize = 0;
        if (!isImage)
        {
            if (col.Type is not VectorDataViewType { ItemType: var item, IsKnownSize: true } vt || item != NumberDataViewType.Single)
                throw new ArgumentOutOfRangeException("InputColumnName", $"Teacher input column '{column}' has type {col.Type}; expected an image (MLImage), encoded image bytes (a vector of Byte) or a known-size vector of Single.");
            vectorSize = vt.Size;
        }

        int[] rowShape;
        if (preprocessing is null && !isImage)
        {
            rowShape = modelDims.Any(d => d < 0) ? [vectorSize] : modelDims;
            if (rowShape.Aggregate(1, (a, b) => a * b) != vectorSize)
                throw new ArgumentOutOfRangeException("InputColumnName", $"Teacher input column '{column}' has {vectorSize} values per row but teacher model '{modelPath}' expects [{string.Join(", ", modelDims)}] per row. Set Preprocessing (with SourceShape) to resize.");
        }
        else
        {
            var prep = preprocessing ?? new TeacherPreprocessing();
            int c;
            (int H, int W)? source = null;
            if (isImage)
            {
                c = 3;
                if (col.Type is Microsoft.ML.Transforms.Image.ImageDataViewType { Height: > 0, Width: > 0 } it) source = (it.Height, it.Width); // encoded images: size unknown until decoded
            }
            else
            {
                if (prep.SourceShape is not { } shape)
                    throw new ArgumentOutOfRangeException("Preprocessing", $"Teacher input column '{column}' is a pixel vector: set Preprocessing.SourceShape to its [C, H, W].");
                if (shape[0] * shape[1] * shape[2] != vectorSize)
                    throw new ArgumentOutOfRangeException("Preprocessing", $"Preprocessing.SourceShape [{string.Join(", ", shape)}] holds {shape[0] * shape[1] * shape[2]} values but teacher input column '{column}' has {vectorSize}.");
                c = shape[0];
                source = (shape[1], shape[2]);
            }
            // The preprocessed [C, H, W]: fixed by the model when it says so, else by the crop, else by the source size.
            (int, int, int)? produced = prep.CropHeight is int ch && prep.CropWidth is int cw ? (c, ch, cw)
                : source is { } src ? prep.OutputShape(c, src.H, src.W) : null;
            if (modelDims.Length == 3)
            {
                int h = modelDims[1] > 0 ? modelDims[1] : produced?.Item2 ?? throw Symbolic(modelPath, modelDims);
                int w = modelDims[2] > 0 ? modelDims[2] : produced?.Item3 ?? throw Symbolic(modelPath, modelDims);
                if (modelDims[0] > 0 && modelDims[0] != c)
                    throw new ArgumentOutOfRangeException("Preprocessing", $"Teacher model '{modelPath}' expects {modelDims[0]} channels per image; the input column '{column}' gives {c}.");
                if (produced is { } made && (made.Item2 != h || made.Item3 != w))
                    throw new ArgumentOutOfRangeException("Preprocessing", $"Preprocessing produces [{made.Item1}, {made.Item2}, {made.Item3}] but teacher model '{modelPath}' expects [{c}, {h}, {w}] per image. Set ResizeShorterSide / CropHeight / CropWidth to fit the model.");
                rowShape = [c, h, w];
            }
            else if (modelDims.Length == 1 && modelDims[0] > 0 && produced is { } p && p.Item1 * p.Item2 * p.Item3 == modelDims[0])
            {
                rowShape = [modelDims[0]]; // a model that takes the image flattened
            }
            else
            {
                throw new ArgumentOutOfRangeException("Preprocessing", $"Preprocessing produces {(produced is { } q ? $"[{q.Item1}, {q.Item2}, {q.Item3}]" : "images of varying size")} but teacher model '{modelPath}' expects [{string.Join(", ", modelDims)}] per row. Set Preprocessing (resize / crop) to fit the model.");
            }
        }
        return new TeacherInputReader(column, isImage, isEncoded, vectorSize, preprocessing, rowShape);
    }

    private static ArgumentOutOfRangeException Symbolic(string path, int[] dims) =>
        new("Preprocessing", $"Teacher model '{path}' has a symbolic image size [{string.Join(", ", dims)}]; set Preprocessing.CropHeight/CropWidth to the size it expects.");

    /// <summary>A per-cursor reader bound to one row source.</summary>
    public Bound Bind(DataViewRow row) => new(this, row);

    internal sealed class Bound
    {
        private readonly TeacherInputReader _owner;
        private readonly ValueGetter<MLImage>? _image;
        private readonly ValueGetter<VBuffer<byte>>? _bytes;
        private VBuffer<byte> _encoded;
        private readonly ValueGetter<VBuffer<float>>? _vector;
        private VBuffer<float> _vectorValue;
        private float[] _dense = [];
        private float[] _planar = []; // reused per row: images of one size need no new buffer
        private readonly TeacherPreprocessing _imagePreprocessing;

        public Bound(TeacherInputReader owner, DataViewRow row)
        {
            _owner = owner;
            _imagePreprocessing = owner._preprocessing ?? new TeacherPreprocessing();
            var col = row.Schema[owner._column];
            if (owner._isEncoded) _bytes = row.GetGetter<VBuffer<byte>>(col);
            else if (owner._isImage) _image = row.GetGetter<MLImage>(col);
            else _vector = row.GetGetter<VBuffer<float>>(col);
        }

        /// <summary>Writes the row's teacher input into <paramref name="destination"/>; with <paramref name="key"/>, also its SHA-256.</summary>
        public void Read(long row, Span<float> destination, Span<byte> key)
        {
            var o = _owner;
            if (o._isEncoded)
            {
                _bytes!(ref _encoded);
                if (_encoded.Length == 0) throw new InvalidDataException($"Row {row} of teacher input column '{o._column}' holds no bytes; expected an encoded image (PNG, JPEG, ...).");
                byte[] bytes = _encoded.DenseValues().ToArray();
                using (var decoded = Data.Images.ImageColumn.Open(bytes, $"Row {row} of teacher input column '{o._column}'"))
                {
                    var rgb = ToPlanarRgb(decoded, row, o._column, ref _planar);
                    if (!key.IsEmpty) Hash(key, -1, bytes.Length, bytes); // keyed by the file's bytes (the row is still decoded: the cache is looked up after reading)
                    _imagePreprocessing.Apply(rgb, 3, decoded.Height, decoded.Width, destination);
                }
                return;
            }
            if (o._isImage)
            {
                MLImage? value = null;
                _image!(ref value!);
                var image = value ?? throw new InvalidOperationException($"Row {row} of teacher input column '{o._column}' holds no image.");
                var planar = ToPlanarRgb(image, row, o._column, ref _planar);
                if (!key.IsEmpty) Hash(key, image.Width, image.Height, MemoryMarshal.AsBytes(planar.AsSpan()));
                _imagePreprocessing.Apply(planar, 3, image.Height, image.Width, destination);
                return;
            }
            _vector!(ref _vectorValue);
            if (_dense.Length != o._vectorSize) _dense = new float[o._vectorSize];
            VectorColumn.CopyDense(_vectorValue, _dense);
            if (!key.IsEmpty) Hash(key, o._vectorSize, 0, MemoryMarshal.AsBytes(_dense.AsSpan()));
            if (o._preprocessing is null)
            {
                _dense.CopyTo(destination);
                return;
            }
            var s = o._preprocessing.SourceShape!;
            o._preprocessing.Apply(_dense, s[0], s[1], s[2], destination);
        }

        private static void Hash(Span<byte> key, int a, int b, ReadOnlySpan<byte> data)
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            hash.AppendData(BitConverter.GetBytes(a));
            hash.AppendData(BitConverter.GetBytes(b));
            hash.AppendData(data);
            hash.GetHashAndReset(key);
        }
    }

    /// <summary>MLImage bytes (BGRA32 or RGBA32) as planar RGB floats in 0..255.</summary>
    private static float[] ToPlanarRgb(MLImage image, long row, string column, ref float[] planar)
    {
        if (image.BitsPerPixel != 32)
            throw new InvalidOperationException($"Row {row} of teacher input column '{column}' has {image.BitsPerPixel} bits per pixel; expected 32 (BGRA or RGBA).");
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        int w = image.Width, h = image.Height, plane = w * h;
        var pixels = image.Pixels;
        if (planar.Length != 3 * plane) planar = new float[3 * plane];
        for (int i = 0; i < plane; i++)
        {
            byte r = pixels[4 * i + (bgra ? 2 : 0)], g = pixels[4 * i + 1], b = pixels[4 * i + (bgra ? 0 : 2)];
            planar[i] = r;
            planar[plane + i] = g;
            planar[2 * plane + i] = b;
        }
        return planar;
    }
}
