using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data.Images;
using Microsoft.ML.DualHeadDistillation.Specs;

namespace Microsoft.ML.DualHeadDistillation.Data;

/// <summary>
/// What the student's feature column is and how a row of it becomes the student's D input values: a known-size
/// float vector (copied), or an image column (MLImage or encoded bytes) turned into the center crop of its stored
/// square, exactly as the sample store and un-augmented training see it (<see cref="ImageSquare"/>).
/// </summary>
internal sealed class FeatureInput
{
    private FeatureInput(string column, int size, ImageInputSpec? images, InputImageShape? crop)
    {
        Column = column;
        Size = size;
        Images = images;
        Crop = crop;
    }

    public string Column { get; }
    /// <summary>D, values per row the student reads.</summary>
    public int Size { get; }
    /// <summary>The image settings, or null for a float vector column.</summary>
    public ImageInputSpec? Images { get; }
    /// <summary>[C, H, W] of the student's input, for image columns.</summary>
    public InputImageShape? Crop { get; }
    public bool IsImage => Images is not null;

    public static FeatureInput Vector(string column, int size) => new(column, size, null, null);

    public static FeatureInput Image(string column, ImageInputSpec images)
    {
        var crop = images.Crop;
        if (crop.Height > images.StorageSize || crop.Width > images.StorageSize)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageStorageSize), $"ImageStorageSize {images.StorageSize} is smaller than the student's input {crop.Height}x{crop.Width}; the stored square must hold the crop.");
        return new(column, checked((int)crop.Size), images, crop);
    }

    /// <summary>The input a spec reads from <paramref name="column"/>.</summary>
    public static FeatureInput FromSpec(TrainingSpec spec, string column, int featureSize) =>
        spec.Images is { } images ? Image(column, images) : Vector(column, featureSize);

    /// <summary>Checks <paramref name="schema"/> has the column in a readable form; <paramref name="option"/> and <paramref name="role"/> name it in errors.</summary>
    public Reader Bind(DataViewSchema schema, string option, string role = "Feature")
    {
        if (Images is null)
        {
            int size = VectorColumn.RequireFloatVector(schema, Column, option, role);
            if (size != Size)
                throw new ArgumentOutOfRangeException(option, $"{role} column '{Column}' has {size} values per row; the model was trained on {Size}.");
            return new Reader(this, null);
        }
        var col = schema.GetColumnOrNull(Column);
        if (col is { } c && !ImageColumn.IsImageColumn(c.Type))
            throw new ArgumentOutOfRangeException(option, $"{role} column '{Column}' has type {c.Type}; this model reads images (MLImage from LoadImages, or encoded bytes from LoadRawImageBytes).");
        return new Reader(this, ImageColumn.Create(schema, Column, Crop!.Value.Channels, option));
    }

    /// <summary>The input bound to one schema.</summary>
    internal sealed class Reader(FeatureInput input, ImageColumn? image)
    {
        public FeatureInput Input { get; } = input;

        /// <summary>Reads rows of <paramref name="row"/>'s cursor (cheap to create; not thread-safe).</summary>
        public RowReader Bind(DataViewRow row) => new(Input, image, row);
    }

    internal sealed class RowReader
    {
        private readonly FeatureInput _input;
        private readonly ValueGetter<VBuffer<float>>? _vector;
        private readonly ImageColumn.Bound? _image;
        private VBuffer<float> _buffer;
        private byte[] _pixels = [];
        private readonly byte[] _square = [];

        public RowReader(FeatureInput input, ImageColumn? image, DataViewRow row)
        {
            _input = input;
            var col = row.Schema[input.Column];
            if (image is null)
            {
                _vector = row.IsColumnActive(col) ? row.GetGetter<VBuffer<float>>(col) : null;
                return;
            }
            if (row.IsColumnActive(col)) _image = image.Bind(row);
            int s = input.Images!.StorageSize;
            _square = new byte[input.Crop!.Value.Channels * s * s];
        }

        /// <summary>Writes row <paramref name="row"/>'s D input values into <paramref name="destination"/>.</summary>
        public void Read(long row, Span<float> destination)
        {
            if (_input.Images is null)
            {
                if (_vector is null) throw new InvalidOperationException($"Feature column '{_input.Column}' is not active in the cursor.");
                _vector(ref _buffer);
                if (_buffer.Length != _input.Size)
                    throw new InvalidOperationException($"Feature column '{_input.Column}' has {_buffer.Length} values in row {row}; the model reads {_input.Size}.");
                VectorColumn.CopyDense(_buffer, destination[.._input.Size]);
                return;
            }
            if (_image is null) throw new InvalidOperationException($"Image column '{_input.Column}' is not active in the cursor.");
            var crop = _input.Crop!.Value;
            int s = _input.Images.StorageSize;
            var (h, w) = _image.Read(row, ref _pixels);
            ImageSquare.Store(_pixels, crop.Channels, h, w, s, _square);
            ImageSquare.CenterCrop(_square, crop.Channels, s, crop.Height, crop.Width, destination[.._input.Size]);
        }
    }
}
