using System.Runtime.ExceptionServices;

namespace Microsoft.ML.DualHeadDistillation.Training.Batches;

/// <summary>
/// Assembles the batches of an epoch from row indices, one step ahead of the training loop: while the loop runs
/// step i on one set of arrays, a background task fills step i + 1 into the other (read from the store, augment,
/// convert), splitting its rows over <see cref="BatchSourceContext.Workers"/> readers. Each sample depends only on
/// (seed, epoch, row), so the batches are the same for any worker count. A batch is valid until the next one is
/// requested; leaving the epoch early waits for the background task, so nothing writes into a batch afterwards.
/// </summary>
public static class BatchAssembler
{
    /// <summary>The batches of <paramref name="steps"/> (labeled rows, then unlabeled rows, per step) for <paramref name="epoch"/> (1-based).</summary>
    public static IEnumerable<TrainingBatch> Assemble(BatchSourceContext context, int epoch, IReadOnlyList<(int[] Labeled, int[] Unlabeled)> steps)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(steps);
        return Run(new State(context), epoch, steps);
    }

    private static IEnumerable<TrainingBatch> Run(State state, int epoch, IReadOnlyList<(int[] Labeled, int[] Unlabeled)> steps)
    {
        if (steps.Count == 0) yield break;
        Task<TrainingBatch>? pending = state.Start(epoch, steps[0], 0);
        try
        {
            for (int i = 0; i < steps.Count; i++)
            {
                var batch = Wait(pending!);
                pending = i + 1 < steps.Count ? state.Start(epoch, steps[i + 1], (i + 1) & 1) : null;
                yield return batch;
            }
        }
        finally
        {
            if (pending is not null)
            {
                try { pending.Wait(); } catch (AggregateException) { } // the loop left early: let the fill finish, drop it
            }
        }
    }

    private static TrainingBatch Wait(Task<TrainingBatch> task)
    {
        try
        {
            return task.GetAwaiter().GetResult();
        }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1)
        {
            ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            throw;
        }
    }

    private sealed class State
    {
        private readonly BatchSourceContext _c;
        private readonly SampleReader[] _readers;
        private readonly Dictionary<(int Labeled, int All, int Slot), TrainingBatch> _buffers = [];
        private byte[] _squares = [];

        public State(BatchSourceContext c)
        {
            _c = c;
            // In-memory vectors are a copy each: one reader; stored images are decoded and augmented: one per worker.
            int workers = c.Rows.IsStored ? Math.Max(1, c.Workers) : 1;
            _readers = Enumerable.Range(0, workers).Select(_ => c.Rows.CreateReader()).ToArray();
        }

        public Task<TrainingBatch> Start(int epoch, (int[] Labeled, int[] Unlabeled) step, int slot)
        {
            int nl = step.Labeled.Length, n = nl + step.Unlabeled.Length;
            int d = _c.Rows.FeatureSize, k = _c.Rows.ClassCount;
            bool teacher = _c.WithTeacher;
            var online = teacher ? _c.Rows.Set.OnlineTeacher : null;
            if (!_buffers.TryGetValue((nl, n, slot), out var batch))
                _buffers[(nl, n, slot)] = batch = new TrainingBatch(new float[n * d], teacher ? new float[n * k] : [], new long[nl], n, new int[n]);
            for (int j = 0; j < nl; j++) batch.Labels[j] = _c.Rows.Label(step.Labeled[j]);
            step.Labeled.CopyTo(batch.RowIndices!, 0);
            step.Unlabeled.CopyTo(batch.RowIndices!, nl);
            return Task.Run(() =>
            {
                int Row(int i) => i < nl ? step.Labeled[i] : step.Unlabeled[i - nl];
                void Fill(int worker, int from, int to)
                {
                    var reader = _readers[worker];
                    for (int i = from; i < to; i++)
                        reader.Write(Row(i), epoch, batch.Features.AsSpan(i * d, d), teacher && online is null ? batch.Teacher.AsSpan(i * k, k) : []);
                }
                int workers = Math.Min(_readers.Length, n);
                if (workers <= 1) Fill(0, 0, n);
                else Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w => Fill(w, (int)((long)n * w / workers), (int)((long)n * (w + 1) / workers)));
                if (online is not null)
                {
                    // SameCropOnline: the teacher sees each sample's very crop (the student's view), in one call per batch.
                    var store = _c.Rows.Set.Store!;
                    var sampler = _c.Rows.Sampler!;
                    int pb = store.Layout.PixelBytes;
                    if (_squares.Length < n * pb) _squares = new byte[n * pb];
                    for (int i = 0; i < n; i++) store.ReadPixels(Row(i), _squares.AsSpan(i * pb, pb));
                    var squares = _squares;
                    online.Label(n, i => squares.AsMemory(i * pb, pb), i => sampler.ViewOf(epoch, Row(i)), batch.Teacher.AsSpan(0, n * k));
                }
                return batch;
            });
        }
    }
}
