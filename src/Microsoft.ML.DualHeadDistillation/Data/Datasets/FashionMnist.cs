using System.Buffers.Binary;
using System.IO.Compression;

namespace Microsoft.ML.DualHeadDistillation.Datasets;

/// <summary>One split of Fashion-MNIST: 28x28 grayscale images scaled to [0, 1], row-major, and their classes.</summary>
public sealed record FashionMnistSplit(float[] Pixels, byte[] Labels)
{
    public const int Side = 28;
    public const int PixelsPerImage = Side * Side;
    public int Count => Labels.Length;
    /// <summary>The pixels of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<float> Image(int index) => Pixels.AsSpan(index * PixelsPerImage, PixelsPerImage);
}

/// <summary>
/// Fashion-MNIST (Xiao et al., 2017) from its four gzipped IDX files. The files are looked up in
/// $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist package),
/// then a cache folder; only if all are missing, and downloading is allowed, are they downloaded into the
/// cache folder.
/// </summary>
public static class FashionMnist
{
    public const string EnvironmentVariable = "FASHION_MNIST_DIR";
    public const string DebianDirectory = "/usr/share/datasets/fashion-mnist";
    public const string DownloadBaseUrl = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

    /// <summary>Class names in label order 0..9.</summary>
    public static readonly IReadOnlyList<string> ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    private static readonly string[] s_files =
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];

    /// <summary>The default cache folder: $XDG_CACHE_HOME/dualheadml/fashion-mnist or ~/.cache/dualheadml/fashion-mnist.</summary>
    public static string DefaultCacheDirectory =>
        Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "dualheadml", "fashion-mnist");

    /// <summary>Finds (or downloads) the folder holding the four files.</summary>
    public static string Locate(string? cacheDirectory = null, bool allowDownload = true)
    {
        cacheDirectory ??= DefaultCacheDirectory;
        var tried = new List<string>();
        foreach (var dir in new[] { Environment.GetEnvironmentVariable(EnvironmentVariable), DebianDirectory, cacheDirectory })
        {
            if (string.IsNullOrEmpty(dir)) continue;
            tried.Add(dir);
            if (s_files.All(f => File.Exists(Path.Combine(dir, f)))) return dir;
        }
        string help =
            $"Fashion-MNIST was not found (looked in: {string.Join(", ", tried)}). Get it with one of: " +
            $"'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu, installs to {DebianDirectory}); " +
            $"or download {string.Join(", ", s_files)} from https://github.com/zalandoresearch/fashion-mnist into a folder and set {EnvironmentVariable} to it.";
        if (!allowDownload) throw new FileNotFoundException(help);
        try
        {
            Download(cacheDirectory);
            return cacheDirectory;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            throw new FileNotFoundException($"{help} (The download into {cacheDirectory} failed: {e.Message})", e);
        }
    }

    /// <summary>Loads the training (60,000) or test (10,000) split.</summary>
    public static FashionMnistSplit Load(string directory, bool train)
    {
        string prefix = train ? "train" : "t10k";
        var pixels = ReadImages(Path.Combine(directory, $"{prefix}-images-idx3-ubyte.gz"));
        var labels = ReadLabels(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte.gz"));
        if (pixels.Length != labels.Length * FashionMnistSplit.PixelsPerImage)
            throw new InvalidDataException($"{prefix}: {pixels.Length / FashionMnistSplit.PixelsPerImage} images but {labels.Length} labels in {directory}.");
        return new FashionMnistSplit(pixels, labels);
    }

    private static float[] ReadImages(string path)
    {
        var bytes = ReadGzip(path);
        CheckHeader(bytes, path, 2051, 16);
        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        int rows = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(8));
        int cols = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(12));
        if (rows != FashionMnistSplit.Side || cols != FashionMnistSplit.Side || bytes.Length != 16 + (long)count * rows * cols)
            throw new InvalidDataException($"{path}: expected {count} images of 28x28 pixels; the header says {rows}x{cols} and the file holds {bytes.Length - 16} pixel bytes.");
        var pixels = new float[count * rows * cols];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = bytes[16 + i] / 255f;
        return pixels;
    }

    private static byte[] ReadLabels(string path)
    {
        var bytes = ReadGzip(path);
        CheckHeader(bytes, path, 2049, 8);
        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        if (bytes.Length != 8 + count) throw new InvalidDataException($"{path}: the header says {count} labels but the file holds {bytes.Length - 8}.");
        var labels = bytes.AsSpan(8).ToArray();
        if (labels.Any(l => l > 9)) throw new InvalidDataException($"{path}: a label is outside 0..9.");
        return labels;
    }

    private static void CheckHeader(byte[] bytes, string path, int magic, int headerSize)
    {
        if (bytes.Length < headerSize || BinaryPrimitives.ReadInt32BigEndian(bytes) != magic)
            throw new InvalidDataException($"{path} is not an IDX file (expected magic number {magic}).");
    }

    private static byte[] ReadGzip(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            using var memory = new MemoryStream();
            gzip.CopyTo(memory);
            return memory.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path} is not a valid gzip file: {e.Message}", e);
        }
    }

    private static void Download(string directory)
    {
        Directory.CreateDirectory(directory);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        foreach (var name in s_files)
        {
            string target = Path.Combine(directory, name);
            if (File.Exists(target)) continue;
            string partial = target + ".partial";
            try
            {
                using (var response = http.GetAsync(DownloadBaseUrl + name, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult())
                {
                    response.EnsureSuccessStatusCode();
                    using var output = File.Create(partial);
                    response.Content.ReadAsStream().CopyTo(output);
                }
                File.Move(partial, target, overwrite: true); // no half-downloaded file is ever left under the real name
            }
            finally
            {
                if (File.Exists(partial)) File.Delete(partial);
            }
        }
    }
}
