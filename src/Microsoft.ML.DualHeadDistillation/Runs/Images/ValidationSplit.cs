using Microsoft.ML.DualHeadDistillation.Specs;
namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// Carves a validation set from the labeled images when none is given: stratified (the same fraction of every
/// class, at least one image of each) and seeded (the same seed, the same split). A class needs at least two
/// labeled images, one to train on and one to validate with; fewer is an error naming the class.
/// </summary>
public static class ValidationSplit
{
    public static (List<ImageItem> Train, List<ImageItem> Validation) Carve(IReadOnlyList<ImageItem> labeled, IReadOnlyList<string> classes, double fraction, int seed, RunInputNames? names = null)
    {
        names ??= RunInputNames.Spec;
        if (!(fraction > 0 && fraction < 1))
            throw DistillationRunException.BadSettings($"{names["ValidationFraction"]} must be in (0, 1); got {fraction}.");
        var train = new List<ImageItem>();
        var validation = new List<ImageItem>();
        foreach (var name in classes)
        {
            var members = labeled.Where(i => i.Label == name).OrderBy(i => i.Path, StringComparer.Ordinal).ToList();
            if (members.Count < 2)
                throw DistillationRunException.BadData($"Class '{name}' has {members.Count} labeled image{(members.Count == 1 ? "" : "s")}; carving a validation set needs at least 2 per class (one to train on, one to validate). Add labeled images of '{name}', or give {names["Validation"]} DIR.");
            // A per-class generator: adding images to one class does not move another class's split.
            var random = new Random(unchecked(seed * 486187739 + StableHash(name))); // not HashCode.Combine: it is randomised per process
            var shuffled = members.OrderBy(_ => random.Next()).ToList();
            int take = Math.Clamp((int)Math.Round(fraction * members.Count), 1, members.Count - 1);
            validation.AddRange(shuffled.Take(take));
            train.AddRange(shuffled.Skip(take));
        }
        train.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        validation.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return (train, validation);
    }

    /// <summary>FNV-1a of the name: string.GetHashCode is randomised per process.</summary>
    private static int StableHash(string s)
    {
        unchecked
        {
            uint h = 2166136261;
            foreach (char c in s) { h ^= c; h *= 16777619; }
            return (int)h;
        }
    }
}
