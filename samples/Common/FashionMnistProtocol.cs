using Microsoft.ML.DualHeadDistillation.Datasets;

namespace DualHeadML.Samples;

/// <summary>Which training images play which role. The teacher's pool never overlaps the student's rows.</summary>
public sealed record StudentSplit(int[] TeacherPool, int[] Validation, int[] Labeled, int[] Unlabeled);

/// <summary>
/// The semi-supervised protocol on Fashion-MNIST's training set: permute with a seed; the first
/// <c>poolSize</c> images are the teacher's pool; of the rest, <c>validationPerClass</c> per class form
/// the validation split, <c>labeledPerClass</c> per class are labeled and every other image is unlabeled.
/// </summary>
public static class FashionMnistProtocol
{
    public static StudentSplit Split(FashionMnistSplit train, int poolSize = 10_000, int labeledPerClass = 50,
        int validationPerClass = 0, int seed = 13, int? maxUnlabeled = null)
    {
        var order = Enumerable.Range(0, train.Count).ToArray();
        new Random(seed).Shuffle(order);
        var pool = order.Take(poolSize).ToArray();
        var validation = new List<int>();
        var labeled = new List<int>();
        var unlabeled = new List<int>();
        var validationCount = new int[10];
        var labeledCount = new int[10];
        foreach (int i in order.Skip(poolSize))
        {
            int c = train.Labels[i];
            if (validationCount[c] < validationPerClass) { validationCount[c]++; validation.Add(i); }
            else if (labeledCount[c] < labeledPerClass) { labeledCount[c]++; labeled.Add(i); }
            else if (maxUnlabeled is null || unlabeled.Count < maxUnlabeled) unlabeled.Add(i);
        }
        return new StudentSplit(pool, validation.ToArray(), labeled.ToArray(), unlabeled.ToArray());
    }

    /// <summary>ML.NET rows for the given images; with <paramref name="labeled"/> false the label is left empty.</summary>
    public static IEnumerable<ImageRow> Rows(FashionMnistSplit split, IEnumerable<int> indices, bool labeled) =>
        indices.Select(i => new ImageRow
        {
            Label = labeled ? FashionMnist.ClassNames[split.Labels[i]] : "",
            Features = split.Image(i).ToArray(),
        });

    /// <summary>Labeled rows first, then unlabeled rows (the trainer does not care about the order).</summary>
    public static IEnumerable<ImageRow> StudentRows(FashionMnistSplit train, StudentSplit split) =>
        Rows(train, split.Labeled, labeled: true).Concat(Rows(train, split.Unlabeled, labeled: false));
}
