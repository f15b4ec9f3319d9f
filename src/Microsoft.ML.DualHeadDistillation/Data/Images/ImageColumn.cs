using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.DualHeadDistillation.Data.Images;

/// <summary>What an image feature column holds.</summary>
internal enum ImageColumnKind
{
    /// <summary>Decoded images (<c>LoadImages</c>: MLImage).</summary>
    Decoded,
    /// <summary>Encoded image files (PNG, JPEG, ...) as bytes (<c>LoadRawImageBytes</c>: a vector of Byte).</summary>
    Encoded,
}

/// <summary>
/// An image feature column: MLImage (from <c>LoadImages</c>) or encoded bytes (from <c>LoadRawImageBytes</c>), read row
/// by row as planar 8-bit pixels with the channels the student wants (RGB; a grey image gives three equal
/// channels; one channel is the luma 0.299 R + 0.587 G + 0.114 B, exact for grey images).
/// </summary>
internal sealed class ImageColumn
{
    private ImageColumn(string name, ImageColumnKind kind, int channels)
    {
        Name = name;
        Kind = kind;
        Channels = channels;
    }

    public string Name { get; }
    public ImageColumnKind Kind { get; }
    /// <summary>Channels of the pixels produced (1 or 3).</summary>
    public int Channels { get; }

    /// <summary>True when the column holds images (MLImage or a vector of Byte) rather than a float vector.</summary>
    public static bool IsImageColumn(DataViewType type) =>
        type.RawType == typeof(MLImage) || type is VectorDataViewType { ItemType: var item } && item == NumberDataViewType.Byte;

    /// <summary>Binds an image column; <paramref name="option"/> names the option in errors.</summary>
    public static ImageColumn Create(DataViewSchema schema, string column, int channels, string option)
    {
        var col = schema.GetColumnOrNull(column)
            ?? throw new ArgumentOutOfRangeException(option, $"Image column '{column}' was not found in the data. Expected images (LoadImages) or encoded image bytes (LoadRawImageBytes).");
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"The student reads {channels}-channel images from image column '{column}'; images give 1 (grey) or 3 (RGB) channels.");
        var kind = col.Type.RawType == typeof(MLImage) ? ImageColumnKind.Decoded
            : col.Type is VectorDataViewType { ItemType: var item } && item == NumberDataViewType.Byte ? ImageColumnKind.Encoded
            : throw new ArgumentOutOfRangeException(option, $"Column '{column}' has type {col.Type}; expected images (MLImage, from LoadImages) or encoded image bytes (a vector of Byte, from LoadRawImageBytes).");
        return new ImageColumn(column, kind, channels);
    }

    public Bound Bind(DataViewRow row) => new(this, row);

    /// <summary>A reader over one cursor's rows.</summary>
    internal sealed class Bound
    {
        private readonly ImageColumn _owner;
        private readonly ValueGetter<MLImage>? _image;
        private readonly ValueGetter<VBuffer<byte>>? _bytes;
        private VBuffer<byte> _encoded;
        private byte[] _copy = [];

        public Bound(ImageColumn owner, DataViewRow row)
        {
            _owner = owner;
            var col = row.Schema[owner.Name];
            if (owner.Kind == ImageColumnKind.Decoded) _image = row.GetGetter<MLImage>(col);
            else _bytes = row.GetGetter<VBuffer<byte>>(col);
        }

        /// <summary>
        /// The row's pixels as planar [C, height, width] bytes in <paramref name="pixels"/> (resized as needed).
        /// With <paramref name="hash"/>, the column's raw value is also appended to it (the store's fingerprint).
        /// </summary>
        /// <param name="row">The row's index in the column.</param>
        /// <param name="pixels">Receives the pixels (grown when too small).</param>
        /// <param name="hash">The store's fingerprint, or null.</param>
        /// <param name="decode">False to only fingerprint encoded bytes (no decoding; returns (0, 0)).</param>
        public (int Height, int Width) Read(long row, ref byte[] pixels, IncrementalHash? hash = null, bool decode = true)
        {
            var o = _owner;
            if (o.Kind == ImageColumnKind.Decoded)
            {
                MLImage? value = null;
                _image!(ref value!);
                var image = value ?? throw new InvalidDataException($"Row {row} of image column '{o.Name}' holds no image (a missing or unreadable file?).");
                return FromImage(image, row, ref pixels, hash);
            }
            _bytes!(ref _encoded);
            if (_encoded.Length == 0) throw new InvalidDataException($"Row {row} of image column '{o.Name}' holds no bytes; expected an encoded image (PNG, JPEG, ...).");
            var span = _encoded.GetValues();
            if (!_encoded.IsDense)
            {
                if (_copy.Length != _encoded.Length) _copy = new byte[_encoded.Length];
                _encoded.CopyTo(_copy);
                span = _copy;
            }
            hash?.AppendData(span);
            if (!decode) return (0, 0);
            return Decode(span, $"Row {row} of image column '{o.Name}'", o.Channels, ref pixels);
        }

        private (int, int) FromImage(MLImage image, long row, ref byte[] pixels, IncrementalHash? hash) =>
            ToPlanar(image, $"Row {row} of image column '{_owner.Name}'", _owner.Channels, ref pixels, hash);
    }

    /// <summary>Decodes an encoded image (PNG, JPEG, BMP, GIF, WebP) to planar [C, height, width] bytes in <paramref name="pixels"/>; errors start with <paramref name="what"/> ("Row 3 of image column 'Image'").</summary>
    internal static (int Height, int Width) Decode(ReadOnlySpan<byte> encoded, string what, int channels, ref byte[] pixels)
    {
        using var decoded = Open(encoded, what);
        return ToPlanar(decoded, what, channels, ref pixels, null);
    }

    /// <summary>An encoded image (PNG, JPEG, BMP, GIF, WebP) as an MLImage; an error starting with <paramref name="what"/> when it does not decode.</summary>
    internal static MLImage Open(ReadOnlySpan<byte> encoded, string what)
    {
        try
        {
            using var stream = new MemoryStream(encoded.ToArray(), writable: false);
            return MLImage.CreateFromStream(stream);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or NotSupportedException)
        {
            throw new InvalidDataException($"{what}: its {encoded.Length} bytes are not an image SkiaSharp can decode (PNG, JPEG, BMP, GIF, WebP) ({e.Message}).", e);
        }
    }

    private static (int, int) ToPlanar(MLImage image, string what, int c, ref byte[] pixels, IncrementalHash? hash)
    {
        if (image.BitsPerPixel != 32)
            throw new InvalidDataException($"{what} has {image.BitsPerPixel} bits per pixel; expected 32 (BGRA or RGBA).");
        int w = image.Width, h = image.Height, plane = w * h;
        if (w < 1 || h < 1) throw new InvalidDataException($"{what} is an empty image ({w}x{h}).");
        var source = image.Pixels;
        if (hash is not null)
        {
            hash.AppendData(MemoryMarshal.AsBytes(new[] { w, h }.AsSpan()));
            hash.AppendData(source);
        }
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        int ri = bgra ? 2 : 0, bi = bgra ? 0 : 2;
        if (pixels.Length < c * plane) pixels = new byte[c * plane];
        if (c == 3)
        {
            for (int i = 0; i < plane; i++)
            {
                pixels[i] = source[4 * i + ri];
                pixels[plane + i] = source[4 * i + 1];
                pixels[2 * plane + i] = source[4 * i + bi];
            }
        }
        else
        {
            for (int i = 0; i < plane; i++)
                pixels[i] = Luma(source[4 * i + ri], source[4 * i + 1], source[4 * i + bi]);
        }
        return (h, w);
    }

    /// <summary>ITU-R BT.601 luma, rounded; equal channels give that value back.</summary>
    internal static byte Luma(byte r, byte g, byte b) => (byte)Math.Clamp((int)Math.Round(0.299 * r + 0.587 * g + 0.114 * b), 0, 255);
}
