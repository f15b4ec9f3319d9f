using Microsoft.ML.DualHeadDistillation.Specs;
using SkiaSharp;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// The images of a run: labeled (one subfolder per class, or a manifest), unlabeled (any depth) and an optional
/// validation set, with the class names in key order and the files that could not be read.
/// </summary>
public sealed class ImageListing
{
    /// <summary>File extensions read as images (JPEG, PNG, BMP, WebP), case-insensitively.</summary>
    public static readonly string[] Extensions = [".jpg", ".jpeg", ".png", ".bmp", ".webp"];

    public required IReadOnlyList<string> Classes { get; init; }
    public required IReadOnlyList<ImageItem> Labeled { get; init; }
    public required IReadOnlyList<ImageItem> Unlabeled { get; init; }
    /// <summary>Labeled validation images (given, or carved from <see cref="Labeled"/> by <see cref="ValidationSplit"/>).</summary>
    public IReadOnlyList<ImageItem> Validation { get; init; } = [];
    public IReadOnlyList<SkippedFile> Skipped { get; init; } = [];
    /// <summary>"folders" or "manifest FILE": where the listing came from, for the report.</summary>
    public string Source { get; init; } = "";
    /// <summary>True when the validation images were given, false when they were carved from the labeled ones.</summary>
    public bool ValidationGiven { get; init; }

    public static bool IsImageFile(string path) => Extensions.Contains(System.IO.Path.GetExtension(path), StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Labeled images from <paramref name="labeledDir"/>: every subfolder is a class (its name is the class name) and holds
    /// that class's images at any depth. Errors name the folder: no class folders, a class without images, images
    /// directly in the labeled folder.
    /// </summary>
    public static (string[] Classes, List<ImageItem> Items) ReadClassFolders(string labeledDir, string option)
    {
        RequireFolder(labeledDir, option);
        // Hidden entries (.git, .ipynb_checkpoints, macOS's ._ files) are not classes or images.
        var classDirs = Directory.GetDirectories(labeledDir).Where(d => !IsHidden(d)).OrderBy(d => d, StringComparer.Ordinal).ToArray();
        var loose = Directory.EnumerateFiles(labeledDir).Where(f => IsImageFile(f) && !IsHidden(f)).Take(3).ToArray();
        if (loose.Length > 0)
            throw DistillationRunException.BadData($"{option} '{labeledDir}' has images directly in it ({string.Join(", ", loose.Select(System.IO.Path.GetFileName))}); put each labeled image in the subfolder of its class (e.g. {System.IO.Path.Combine(labeledDir, "cat", "1.jpg")}).");
        if (classDirs.Length == 0)
            throw DistillationRunException.BadData($"{option} '{labeledDir}' has no class subfolders; expected one subfolder per class, named by the class (e.g. {System.IO.Path.Combine(labeledDir, "cat")}, {System.IO.Path.Combine(labeledDir, "dog")}).");
        var items = new List<ImageItem>();
        var classes = new List<string>();
        foreach (var dir in classDirs)
        {
            string name = System.IO.Path.GetFileName(dir);
            var files = Images(dir);
            if (files.Count == 0)
                throw DistillationRunException.BadData($"Class folder '{dir}' (class '{name}') holds no images ({string.Join(", ", Extensions)}); add images or remove the folder.");
            classes.Add(name);
            items.AddRange(files.Select(f => new ImageItem(f, name)));
        }
        return (classes.ToArray(), items);
    }

    /// <summary>Every image under <paramref name="dir"/> at any depth, in ordinal path order; hidden files and folders (a leading '.') are skipped.</summary>
    public static List<string> Images(string dir) =>
        Directory.EnumerateFiles(dir, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.Hidden })
            .Where(f => IsImageFile(f) && !System.IO.Path.GetRelativePath(dir, f).Split(System.IO.Path.DirectorySeparatorChar).Any(part => part.StartsWith('.')))
            .Select(System.IO.Path.GetFullPath).OrderBy(p => p, StringComparer.Ordinal).ToList();

    private static bool IsHidden(string path) => System.IO.Path.GetFileName(path).StartsWith('.');

    public static void RequireFolder(string dir, string option)
    {
        if (!Directory.Exists(dir))
            throw DistillationRunException.BadData($"{option} '{dir}' is not a folder.");
    }

    /// <summary>
    /// Drops the files SkiaSharp cannot open as an image (checked from their header, without decoding the pixels):
    /// counted in <paramref name="skipped"/>, or an error naming the file with <paramref name="strict"/>.
    /// </summary>
    public static List<ImageItem> Readable(IEnumerable<ImageItem> items, bool strict, List<SkippedFile> skipped, CancellationToken cancel, string strictOption = "Strict")
    {
        var kept = new List<ImageItem>();
        foreach (var item in items)
        {
            cancel.ThrowIfCancellationRequested();
            string? reason = Check(item.Path);
            if (reason is null) { kept.Add(item); continue; }
            if (strict) throw DistillationRunException.BadData($"Image '{item.Path}' cannot be read: {reason}. (Without {strictOption} unreadable files are skipped and counted in the report.)");
            skipped.Add(new SkippedFile(item.Path, reason));
        }
        return kept;
    }

    internal static string? Check(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            if (stream.Length == 0) return "the file is empty";
            using var codec = SKCodec.Create(stream, out var result);
            if (codec is null) return $"not an image SkiaSharp can decode ({result})";
            if (codec.Info.Width < 1 || codec.Info.Height < 1) return $"empty image ({codec.Info.Width}x{codec.Info.Height})";
            return null;
        }
        catch (IOException e) { return e.Message; }
        catch (UnauthorizedAccessException e) { return e.Message; }
    }
}
