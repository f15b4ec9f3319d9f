using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training.Batches;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training.Recipes;

/// <summary>
/// Precise BatchNorm (Wu and Johnson, "Rethinking 'Batch' in BatchNorm", 2021; fvcore's <c>update_bn_stats</c>): the running
/// mean and variance of every BatchNorm layer are recomputed as the plain average over N training batches of the student
/// as it now is (momentum None: the cumulative average), in train mode without gradients. The weights do not change;
/// only the running statistics, which with momentum 0.1 lag behind weights that moved fast (a from-scratch MobileNet
/// otherwise scores at chance in eval mode). The rows are un-augmented (center crops of stored images), at the size
/// the student is evaluated at, in a seeded order.
/// </summary>
internal static class PreciseBatchNorm
{
    /// <summary>The BatchNorm layers of a module whose running statistics are tracked, bar those of a student's frozen stages (they keep theirs).</summary>
    public static IReadOnlyList<BatchNorm> Layers(nn.Module module)
    {
        var frozen = module is DualHeadStudent { Backbone.FrozenStages: > 0 and var stages } student
            ? student.Backbone.StageModules(stages).SelectMany(m => m.modules().Prepend(m)).ToHashSet(ReferenceEqualityComparer.Instance)
            : null;
        return module.modules().OfType<BatchNorm>().Where(b => b.track_running_stats && b.running_mean is not null && frozen?.Contains(b) != true).ToArray();
    }

    /// <summary>
    /// Recomputes the running statistics of <paramref name="student"/>'s BatchNorm layers over <paramref name="batches"/>
    /// batches of <paramref name="batchSize"/> rows of <paramref name="rows"/> (fewer when there are fewer rows). Returns the rows used.
    /// The student is left in eval mode.
    /// </summary>
    public static int Recompute(DualHeadStudent student, TrainingRows rows, int batches, int batchSize, int seed, Device device, FitCancellation cancel)
    {
        var layers = Layers(student);
        if (layers.Count == 0 || batches < 1) return 0;
        int n = Math.Min(rows.Rows, (int)Math.Min(int.MaxValue, (long)batches * batchSize));
        // A seeded choice of rows, labeled and unlabeled alike; the last batch is dropped when smaller than half (its statistics are noisy).
        var order = Enumerable.Range(0, rows.Rows).ToArray();
        new Random(seed).Shuffle(order);
        int d = rows.FeatureSize;
        var reader = rows.CreateReader();
        var momenta = layers.Select(l => l.momentum).ToArray();
        try
        {
            foreach (var layer in layers)
            {
                layer.reset_running_stats();
                layer.momentum = null; // cumulative average: batch b weighs 1/b
            }
            student.eval();
            foreach (var layer in layers) layer.train();
            using var noGrad = no_grad();
            var features = new float[Math.Min(batchSize, n) * d];
            int used = 0;
            for (int start = 0; start < n; start += batchSize)
            {
                int count = Math.Min(batchSize, n - start);
                if (count < 2 || (start > 0 && count < batchSize / 2)) break;
                cancel.ThrowIfRequested();
                for (int i = 0; i < count; i++) reader.Write(order[start + i], 1, features.AsSpan(i * d, d), Span<float>.Empty);
                using var scope = NewDisposeScope();
                var x = tensor(features.AsSpan(0, count * d).ToArray(), [count, d]).to(device);
                student.Embed(x);
                used += count;
            }
            return used;
        }
        finally
        {
            for (int i = 0; i < layers.Count; i++) layers[i].momentum = momenta[i];
            student.eval();
        }
    }

    /// <summary>The image size the student's backbone reads now ("64x64"), or the row length for feature vectors.</summary>
    public static string InputSize(DualHeadStudent student) => student.Backbone.ImageShape is { } shape
        ? $"{student.TrainingImageHeight ?? shape.Height}x{(student.TrainingImageHeight is int h ? (int)Math.Round((double)shape.Width * h / shape.Height) : shape.Width)}"
        : $"{student.Backbone.InputSize} features";

    /// <summary>
    /// Validation accuracy with batch statistics (every BatchNorm layer normalising with the statistics of its own batch, as in
    /// training) next to which the eval-mode accuracy is judged. The running statistics are left exactly as they were.
    /// </summary>
    public static double BatchStatisticsAccuracy(DualHeadStudent student, StudentScorer scorer, Data.TrainingSet validation, float alpha, float beta, int batchSize, FitCancellation cancel)
    {
        var layers = Layers(student);
        var saved = layers.Select(l => (Mean: l.running_mean!.clone(), Var: l.running_var!.clone(), Count: l.num_batches_tracked?.clone(), l.momentum)).ToArray();
        try
        {
            foreach (var layer in layers) layer.momentum = 0.0; // the running statistics stay as they are
            int rows = validation.Rows;
            if (rows < 2) return double.NaN;
            // Batches of nearly equal size (none of one row, which BatchNorm cannot normalise in train mode).
            int chunks = (rows + batchSize - 1) / batchSize;
            return scorer.Accuracy(validation.Features, validation.Labels, alpha, beta, (rows + chunks - 1) / chunks, cancel, batchStatistics: true);
        }
        finally
        {
            using var noGrad = no_grad();
            for (int i = 0; i < layers.Count; i++)
            {
                layers[i].running_mean!.copy_(saved[i].Mean);
                layers[i].running_var!.copy_(saved[i].Var);
                if (saved[i].Count is { } count) layers[i].num_batches_tracked!.copy_(count);
                layers[i].momentum = saved[i].momentum;
                saved[i].Mean.Dispose();
                saved[i].Var.Dispose();
                saved[i].Count?.Dispose();
            }
            student.eval();
        }
    }
}
