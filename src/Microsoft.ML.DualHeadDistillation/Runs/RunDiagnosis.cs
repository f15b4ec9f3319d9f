using Microsoft.ML.DualHeadDistillation.Diagnosis;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// The diagnosis of a run's teacher on its image folders, before training: the teacher runs on the labeled images
/// (training and validation; at most <see cref="MaxLabeledImages"/>, evenly spread) and on a sample of the unlabeled
/// ones, through the soft-label cache when one is given, and <see cref="DualHeadDiagnosis"/> reads its answers.
/// What `dualhead diagnose` calls, and `train` before it trains.
/// </summary>
public static class RunDiagnosis
{
    /// <summary>The most labeled images the diagnosis runs the teacher on.</summary>
    public const int MaxLabeledImages = 5_000;
    /// <summary>Unlabeled images sampled by default.</summary>
    public const int DefaultUnlabeledSample = 500;

    /// <summary>
    /// Lists the spec's images, opens its teacher and diagnoses it. <paramref name="cacheDirectory"/> keeps the teacher's
    /// answers for a later run (null: none). Errors are <see cref="DistillationRunException"/> naming the spec's inputs.
    /// </summary>
    public static TeacherDiagnosis Assess(DistillationRunSpec spec, RunInputNames? names = null, int unlabeledSample = DefaultUnlabeledSample, string? cacheDirectory = null,
        IDistillationRunProgress? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        names ??= RunInputNames.Spec;
        if (unlabeledSample < 0) throw DistillationRunException.BadSettings($"The unlabeled sample must be 0 or more images; got {unlabeledSample}.");
        RunTraining.Check(spec, TeacherDefinition.For(spec.Teacher, names), names);
        var listing = RunListing.Read(spec, names, cancel);
        var ml = new MLContext(seed: spec.Seed);
        var sample = Spread(listing.Unlabeled, unlabeledSample);
        using var teacher = TeacherDefinition.For(spec.Teacher, names).Open(new TeacherContext
        {
            ML = ml,
            Spec = spec.Teacher,
            Data = ImageRows.Load(ml, listing.Labeled.Concat(listing.Validation).Concat(sample), listing.Classes),
            Classes = listing.Classes,
            Names = names,
            CacheDirectory = cacheDirectory,
            DefaultRowIdRoot = RunListing.DefaultRowIdRoot(spec),
        });
        progress?.Info($"{teacher.Name}: {teacher.Summary}");
        var (diagnosis, why) = Assess(ml, teacher, listing, unlabeledSample, Kind(spec), cancel);
        return diagnosis ?? throw DistillationRunException.BadSettings($"The teacher ({teacher.Name}) cannot be diagnosed: {why}.");
    }

    /// <summary>The diagnosis with an open teacher, or null and why when the teacher cannot score the labeled images.</summary>
    internal static (TeacherDiagnosis? Diagnosis, string? Why) Assess(MLContext ml, RunTeacher teacher, ImageListing listing, int unlabeledSample, TeacherOutputKind kind, CancellationToken cancel)
    {
        var all = listing.Labeled.Concat(listing.Validation).ToList();
        // At most MaxLabeledImages, spread over each class in proportion (at least 20 a class, or all it has).
        var labeled = all.Count <= MaxLabeledImages ? all : all.GroupBy(i => i.Label!).SelectMany(g =>
        {
            var items = g.ToList();
            return Spread(items, Math.Min(items.Count, Math.Max(20, (int)((long)items.Count * MaxLabeledImages / all.Count))));
        }).ToList();
        cancel.ThrowIfCancellationRequested();
        var scores = teacher.ValidationScores(ImageRows.Load(ml, labeled, listing.Classes), listing.Classes, out string? why);
        if (scores is null) return (null, why);
        cancel.ThrowIfCancellationRequested();
        var labels = labeled.Select(i => listing.Classes.ToList().IndexOf(i.Label!)).ToArray();
        var sample = Spread(listing.Unlabeled, unlabeledSample);
        float[] unlabeled = [];
        if (sample.Count > 0)
        {
            var sampleScores = teacher.ValidationScores(ImageRows.Load(ml, sample, listing.Classes), listing.Classes, out _);
            unlabeled = sampleScores?.SelectMany(v => v).ToArray() ?? [];
        }
        cancel.ThrowIfCancellationRequested();
        return (DualHeadDiagnosis.Assess(scores.SelectMany(v => v).ToArray(), labels, listing.Classes, unlabeled, kind), null);
    }

    /// <summary>What the teacher's column holds, as the run reads it.</summary>
    internal static TeacherOutputKind Kind(DistillationRunSpec spec) => spec.Teacher.Probabilities ? TeacherOutputKind.Probabilities : TeacherOutputKind.Logits;

    /// <summary>At most <paramref name="count"/> items, evenly spread over the list (all of them when it is shorter).</summary>
    private static List<ImageItem> Spread(IReadOnlyList<ImageItem> items, int count)
    {
        if (items.Count <= count) return items.ToList();
        return Enumerable.Range(0, count).Select(i => items[(int)((long)i * items.Count / count)]).ToList();
    }
}
