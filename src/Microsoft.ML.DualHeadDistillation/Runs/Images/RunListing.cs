using Microsoft.ML.DualHeadDistillation.Specs;
using System.Security.Cryptography;
using System.Text;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>The images a run spec names: listed, checked for readability, the validation set given or carved.</summary>
public static class RunListing
{
    public static ImageListing Read(DistillationRunSpec s, RunInputNames? names = null, CancellationToken cancel = default)
    {
        names ??= RunInputNames.Spec;
        var skipped = new List<SkippedFile>();
        string[] classes;
        List<ImageItem> labeled, unlabeled, validation;
        string source;
        if (s.Manifest is { } manifest)
        {
            if (s.Labeled is not null || s.Unlabeled is not null) throw DistillationRunException.BadSettings($"Give either {names["Manifest"]} or {names["Labeled"]}/{names["Unlabeled"]}, not both.");
            var items = ImageManifest.Read(manifest, names["Manifest"]);
            labeled = items.Where(i => i.Label is not null).ToList();
            unlabeled = items.Where(i => i.Label is null).ToList();
            classes = labeled.Select(i => i.Label!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
            source = $"manifest {manifest}";
        }
        else
        {
            if (s.Labeled is null) throw DistillationRunException.BadSettings($"Give the labeled images: {names["Labeled"]} DIR (one subfolder per class) or {names["Manifest"]} FILE.");
            (classes, labeled) = ImageListing.ReadClassFolders(s.Labeled, names["Labeled"]);
            unlabeled = [];
            if (s.Unlabeled is { } u)
            {
                ImageListing.RequireFolder(u, names["Unlabeled"]);
                unlabeled = ImageListing.Images(u).Select(p => new ImageItem(p, null)).ToList();
                if (unlabeled.Count == 0) throw DistillationRunException.BadData($"{names["Unlabeled"]} '{u}' holds no images ({string.Join(", ", ImageListing.Extensions)}) at any depth.");
            }
            source = "folders";
        }
        if (classes.Length < 2) throw DistillationRunException.BadData($"The labeled images have {classes.Length} class{(classes.Length == 1 ? "" : "es")}; a classifier needs at least 2.");
        labeled = ImageListing.Readable(labeled, s.Strict, skipped, cancel, names["Strict"]);
        unlabeled = ImageListing.Readable(unlabeled, s.Strict, skipped, cancel, names["Strict"]);
        if (s.Validation is { } v)
        {
            var (validationClasses, items) = ImageListing.ReadClassFolders(v, names["Validation"]);
            var unknown = validationClasses.Except(classes, StringComparer.Ordinal).ToArray();
            if (unknown.Length > 0) throw DistillationRunException.BadData($"{names["Validation"]} '{v}' has class folders the labeled images do not: {string.Join(", ", unknown)}.");
            validation = ImageListing.Readable(items, s.Strict, skipped, cancel, names["Strict"]);
            source += $" + {names["Validation"]}";
        }
        else
        {
            (labeled, validation) = ValidationSplit.Carve(labeled, classes, s.ValidationFraction, s.Seed, names);
        }
        foreach (var c in classes)
            if (!labeled.Any(i => i.Label == c))
                throw DistillationRunException.BadData($"Class '{c}' has no readable labeled image left for training.");
        return new ImageListing { Classes = classes, Labeled = labeled, Unlabeled = unlabeled, Validation = validation, Skipped = skipped, Source = source, ValidationGiven = s.Validation is not null };
    }

    /// <summary>SHA-256 of every listed path and label: a resumed run must see the same images.</summary>
    public static string Fingerprint(ImageListing listing)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var group in new[] { listing.Labeled, listing.Unlabeled, listing.Validation })
        {
            foreach (var item in group) hash.AppendData(Encoding.UTF8.GetBytes($"{item.Path}\u001f{item.Label}\u001e"));
            hash.AppendData("\u001d"u8);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>The folder a labeling job's row ids are relative to: the manifest's folder, else the common parent of the image folders.</summary>
    public static string DefaultRowIdRoot(DistillationRunSpec s)
    {
        if (s.Manifest is { } manifest) return Path.GetDirectoryName(Path.GetFullPath(manifest))!;
        var folders = new[] { s.Labeled, s.Unlabeled }.Where(f => f is not null).Select(f => Path.GetFullPath(f!).TrimEnd(Path.DirectorySeparatorChar)).ToArray();
        if (folders.Length == 1) return Path.GetDirectoryName(folders[0]) ?? folders[0];
        var parts = folders.Select(f => f.Split(Path.DirectorySeparatorChar)).ToArray();
        int common = 0;
        while (parts.All(p => p.Length > common && p[common] == parts[0][common])) common++;
        string root = string.Join(Path.DirectorySeparatorChar, parts[0].Take(common));
        return root.Length == 0 ? Path.DirectorySeparatorChar.ToString() : root;
    }
}
