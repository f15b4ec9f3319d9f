using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.Students;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>
/// The DHO optimisation loop: each step takes one labeled and one unlabeled batch, runs the backbone once
/// over both, applies <see cref="DhoLoss"/>, and takes an AdamW step under a warm-up + cosine schedule.
/// </summary>
internal sealed class DualHeadTrainingLoop
{
    /// <summary>Module construction draws from TorchSharp's global generator; the lock makes seeding + init atomic across threads.</summary>
    internal static readonly object s_seedLock = new();

    private readonly DualHeadDistillOptions _options;
    private readonly Device _device;
    private readonly Action<string> _log;
    private readonly Action<string> _warn;
    private readonly FitCancellation _cancel;

    public DualHeadTrainingLoop(DualHeadDistillOptions options, Device device, Action<string> log, FitCancellation? cancel = null, Action<string>? warn = null)
    {
        _options = options;
        _device = device;
        _log = log;
        _warn = warn ?? log;
        _cancel = cancel ?? new FitCancellation(options.CancellationToken, null);
    }

    /// <summary>Fewer optimisation steps than this make a run too short for its figures to mean much.</summary>
    public const int ShortRunSteps = 100;

    /// <summary>
    /// Creates the student with seeded weights on the given device. With no seed (weights about to be
    /// overwritten by a checkpoint) TorchSharp's global generator is left as it was.
    /// </summary>
    public static DualHeadStudent CreateStudent(DualHeadDistillOptions options, int inputSize, int classCount, int? seed, Device device)
    {
        lock (s_seedLock)
        {
            if (seed is null)
            {
                using var state = random.get_rng_state();
                try
                {
                    return CreateStudent(options, inputSize, classCount, seed: 0, device);
                }
                finally
                {
                    random.set_rng_state(state);
                }
            }
            random.manual_seed(seed.Value);
            DualHeadStudent student;
            // TorchSharp 0.107's Conv2d leaves one temporary tensor of its initialisation undisposed: build inside a
            // dispose scope that keeps the parameters and buffers and disposes everything else.
            using (var scope = NewDisposeScope())
            {
                // Backbone first, then h_CE, then h_KD: every mode starts from the same backbone and h_CE for a seed.
                student = new DualHeadStudent(BackboneFactory.Create(options, inputSize), classCount, twoHeads: options.Mode == DualHeadTrainingMode.DualHead);
                scope.Detach(student.parameters().Cast<IDisposable>().Concat(student.buffers()).ToArray());
            }
            return device.type == DeviceType.CPU ? student : student.to(device);
        }
    }

    /// <summary>Called after every epoch with the student, the optimizer, the state and the epochs so far (used to write checkpoints).</summary>
    public Action<DualHeadStudent, TrainingState, IReadOnlyList<DualHeadEpochReport>>? EpochCompleted { get; init; }

    /// <summary>Trains a new student (seeded), or continues the one in <paramref name="resume"/>.</summary>
    public (DualHeadStudent Student, DualHeadTrainingReport Report, TrainingState State) Run(TrainingSet train, TrainingSet? validation, int seed, double readSeconds, DualHeadCheckpoint? resume = null)
    {
        var o = _options;
        var student = resume is null
            ? CreateStudent(o, train.FeatureSize, train.ClassCount, seed, _device)
            : resume.CreateStudent(_device, "resume");
        try
        {
            var (report, state) = Train(student, train, validation, resume?.Seed ?? seed, readSeconds, resume);
            return (student, report, state);
        }
        catch
        {
            student.Dispose();
            throw;
        }
    }

    private (DualHeadTrainingReport, TrainingState) Train(DualHeadStudent student, TrainingSet train, TrainingSet? validation, int seed, double readSeconds, DualHeadCheckpoint? resume)
    {
        var o = _options;
        int d = train.FeatureSize, k = train.ClassCount;
        bool supervised = o.Mode == DualHeadTrainingMode.SupervisedOnly;
        var sampler = new BatchSampler(train.LabeledIndices(), train.UnlabeledIndices(), o.LabeledBatchSize, o.UnlabeledBatchSize, seed);
        long totalStepsLong = (long)sampler.StepsPerEpoch * o.NumberOfEpochs;
        if (totalStepsLong > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(o.NumberOfEpochs), o.NumberOfEpochs, $"NumberOfEpochs x {sampler.StepsPerEpoch} steps per epoch is more than {int.MaxValue} steps.");
        int totalSteps = (int)totalStepsLong;
        string objective = DhoLoss.Describe(o.Mode, o.Lambda, o.Temperature);
        _log($"DualHeadDistill: {objective}");
        int threads = get_num_threads();
        var warnings = ShortRunWarnings(totalSteps, sampler.StepsPerEpoch, o);
        foreach (var warning in warnings) _warn($"DualHeadDistill: warning: {warning}");
        _log(FormattableString.Invariant(
            $"DualHeadDistill: mode {o.Mode}; student {student.Description}; {train.LabeledRows} labeled + {train.UnlabeledRows} unlabeled rows; {o.NumberOfEpochs} epochs x {sampler.StepsPerEpoch} steps (batch {Math.Min(o.LabeledBatchSize, train.LabeledRows)}+{(supervised ? 0 : o.UnlabeledBatchSize)}); AdamW lr {o.LearningRate}, weight decay {o.WeightDecay}, warm-up {o.WarmupSteps}, cosine; device {_device} ({threads} intra-op threads); seed {seed}"));

        using var optimizer = optim.AdamW(student.parameters(), o.LearningRate, weight_decay: o.WeightDecay);
        var scorer = new StudentScorer(student, _device);
        var epochs = new List<DualHeadEpochReport>(resume?.Report?.Epochs ?? []);
        int firstEpoch = 1;
        if (resume is not null)
        {
            if (resume.State.OptimizerState is { } saved)
            {
                using var reader = new BinaryReader(new MemoryStream(saved, writable: false));
                optimizer.load_state_dict(reader);
            }
            firstEpoch = resume.CompletedEpochs + 1;
            for (int e = 1; e < firstEpoch; e++)
                foreach (var _ in sampler.Epoch()) { } // replay the batch order of the finished epochs
            _log($"DualHeadDistill: resuming after epoch {resume.CompletedEpochs} (step {resume.CompletedSteps}){(resume.HasOptimizerState ? "" : "; the checkpoint has no optimizer state, AdamW starts afresh")}");
        }
        // Batches never exceed the rows there are, so huge batch-size options cost nothing.
        int maxLabeled = Math.Min(o.LabeledBatchSize, train.LabeledRows);
        int maxRows = maxLabeled + (supervised ? 0 : Math.Min(o.UnlabeledBatchSize, train.UnlabeledRows));
        _ = checked(maxRows * d);
        // One set of exact-size arrays per batch shape (full batches, and the epoch's last one): no array is
        // allocated per step (a 64+64 x 784 batch would be a 400 KB large-object allocation every step).
        var buffers = new Dictionary<(int Labeled, int All), (float[] X, float[] T, long[] Y)>();
        var total = Stopwatch.StartNew();
        int step = resume?.CompletedSteps ?? 0;
        double lr = 0;
        for (int epoch = firstEpoch; epoch <= o.NumberOfEpochs; epoch++)
        {
            var watch = Stopwatch.StartNew();
            double ceSum = 0, kdSum = 0, lossSum = 0;
            int steps = 0;
            (double Backbone, double? Head)? cosine = null;
            student.train();
            foreach (var (labeled, all) in sampler.Epoch())
            {
                _cancel.ThrowIfRequested();
                lr = LearningRateSchedule.At(step, totalSteps, o.WarmupSteps, o.LearningRate);
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;

                using var scope = NewDisposeScope();
                // Supervised-only steps take the same labeled batches but never run the unlabeled rows.
                var unlabeled = supervised ? [] : all;
                int nl = labeled.Length, nu = unlabeled.Length, n = nl + nu;
                if (!buffers.TryGetValue((nl, n), out var buffer))
                    buffers[(nl, n)] = buffer = (new float[n * d], supervised ? [] : new float[n * k], new long[nl]);
                Gather(train, labeled, unlabeled, buffer.X, buffer.T, buffer.Y, withTeacher: !supervised);
                // The step's tensors are disposed (scope) before the arrays are refilled at the next step.
                var x = tensor(buffer.X, [n, d]).to(_device);
                var y = tensor(buffer.Y, [nl]).to(_device);
                var t = supervised ? null : tensor(buffer.T, [n, k]).to(_device);

                if (o.GradientConflictDiagnostic && cosine is null && !supervised)
                    cosine = GradientCosine(student, optimizer, x, y, t!, nl, nu);

                var (ceLabeled, kdAll) = student.ForwardTraining(x, nl);
                Tensor loss, ce, kd;
                if (supervised)
                {
                    ce = DhoLoss.CrossEntropy(ceLabeled, y);
                    loss = ce;
                    kd = ce; // not reported
                }
                else
                {
                    (loss, ce, kd) = DhoLoss.Compute(
                        ceLabeled, y,
                        kdAll.narrow(0, 0, nl), t!.narrow(0, 0, nl),
                        kdAll.narrow(0, nl, nu), t.narrow(0, nl, nu),
                        o.Lambda, o.Temperature);
                }
                double ceValue = ce.item<float>(), kdValue = supervised ? double.NaN : kd.item<float>(), lossValue = loss.item<float>();
                if (!double.IsFinite(lossValue))
                    throw NonFiniteGuard.Diverged("the loss is not finite", step + 1, epoch, ceValue, kdValue, lossValue, o);
                optimizer.zero_grad();
                loss.backward();
                try
                {
                    optimizer.step();
                }
                catch (System.Runtime.InteropServices.ExternalException e)
                {
                    // libtorch refuses values that overflow float (e.g. LearningRate 3e38): report it as divergence.
                    throw NonFiniteGuard.Diverged($"the optimizer step failed ({e.Message.Split('\n')[0].Trim()})", step + 1, epoch, ceValue, kdValue, lossValue, o, e);
                }
                if (NonFiniteGuard.FirstNonFiniteParameter(student) is { } bad)
                    throw NonFiniteGuard.Diverged($"parameter '{bad}' is not finite after the update", step + 1, epoch, ceValue, kdValue, lossValue, o);

                ceSum += ceValue;
                kdSum += kdValue;
                lossSum += lossValue;
                steps++;
                step++;
            }
            double? validationAccuracy = validation is null
                ? null
                : scorer.Accuracy(validation.Features, validation.Labels, student.HasTwoHeads ? o.Alpha : 1f, o.Beta, o.ScoringBatchSize, _cancel);
            var report = new DualHeadEpochReport(epoch, o.NumberOfEpochs, steps, ceSum / steps, kdSum / steps, lossSum / steps, lr, validationAccuracy,
                watch.Elapsed.TotalSeconds, cosine?.Backbone, cosine?.Head);
            epochs.Add(report);
            _log($"DualHeadDistill: {report}");
            o.Progress?.Report(report);
            EpochCompleted?.Invoke(student, new TrainingState(seed, epoch, step, OptimizerState(optimizer)), epochs);
        }
        double trainSeconds = total.Elapsed.TotalSeconds;
        student.eval();
        int stepsThisRun = step - (resume?.CompletedSteps ?? 0);
        var finalReport = new DualHeadTrainingReport(o.Mode, objective, student.Description, _device.ToString(), student.ParameterCount,
            train.LabeledRows, train.UnlabeledRows, totalSteps, readSeconds, trainSeconds, 1000 * trainSeconds / Math.Max(1, stepsThisRun), epochs)
        {
            IntraOpThreads = threads,
            Warnings = warnings,
        };
        return (finalReport, new TrainingState(seed, o.NumberOfEpochs, step, OptimizerState(optimizer)));
    }

    /// <summary>Warnings for a run too short to mean anything: few steps, or a schedule that is over within the first epoch.</summary>
    internal static IReadOnlyList<string> ShortRunWarnings(int totalSteps, int stepsPerEpoch, DualHeadDistillOptions o)
    {
        var warnings = new List<string>();
        if (totalSteps < ShortRunSteps)
            warnings.Add($"this run has only {totalSteps} optimisation steps ({o.NumberOfEpochs} epochs x {stepsPerEpoch}); fewer than {ShortRunSteps} steps are too few for the accuracy figures to mean much. Add unlabeled rows or raise NumberOfEpochs.");
        if (totalSteps <= stepsPerEpoch)
            warnings.Add($"the learning rate schedule (warm-up {o.WarmupSteps}, cosine decay) reaches zero within the first epoch ({totalSteps} steps in all); later rows of the epoch barely train. Raise NumberOfEpochs.");
        else if (o.WarmupSteps >= totalSteps)
            warnings.Add($"WarmupSteps = {o.WarmupSteps} is not below the {totalSteps} steps of the run: the learning rate never reaches its peak.");
        return warnings;
    }

    private static byte[] OptimizerState(TorchSharp.Modules.AdamW optimizer)
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
            optimizer.save_state_dict(writer);
        return buffer.ToArray();
    }

    /// <summary>
    /// The gradient-conflict diagnostic (DHO paper, Fig. 3): on one batch, the cosine between the gradient
    /// of the weighted CE term and that of the weighted KD term, over the shared backbone's parameters and,
    /// with one head, over the head's. Leaves no gradient behind.
    /// </summary>
    private (double Backbone, double? Head) GradientCosine(DualHeadStudent student, optim.Optimizer optimizer, Tensor x, Tensor y, Tensor t, int nl, int nu)
    {
        float lambda = _options.Lambda, temperature = _options.Temperature;
        Tensor[] Grads(Func<Tensor, Tensor, Tensor> term, IEnumerable<TorchSharp.Modules.Parameter> parameters)
        {
            optimizer.zero_grad();
            using var scope = NewDisposeScope();
            var (ceLabeled, kdAll) = student.ForwardTraining(x, nl);
            term(ceLabeled, kdAll).backward();
            return parameters.Select(p => p.grad is { } g ? g.detach().clone().MoveToOuterDisposeScope() : zeros_like(p).MoveToOuterDisposeScope()).ToArray();
        }
        var backbone = student.Backbone.parameters().ToArray();
        var head = student.HasTwoHeads ? [] : student.CeHead.parameters().ToArray();
        var tracked = backbone.Concat(head).ToArray();
        var ceGrads = Grads((ce, _) => lambda * DhoLoss.CrossEntropy(ce, y), tracked);
        var kdGrads = Grads((_, kd) => (1 - lambda) * (DhoLoss.Distillation(kd.narrow(0, 0, nl), t.narrow(0, 0, nl), temperature) + DhoLoss.Distillation(kd.narrow(0, nl, nu), t.narrow(0, nl, nu), temperature)), tracked);
        optimizer.zero_grad();
        double Cos(int from, int count)
        {
            double dot = 0, a = 0, b = 0;
            for (int i = from; i < from + count; i++)
            {
                dot += (ceGrads[i] * kdGrads[i]).sum().item<float>();
                a += (ceGrads[i] * ceGrads[i]).sum().item<float>();
                b += (kdGrads[i] * kdGrads[i]).sum().item<float>();
            }
            return a > 0 && b > 0 ? dot / Math.Sqrt(a * b) : double.NaN;
        }
        double backboneCos = Cos(0, backbone.Length);
        double? headCos = head.Length > 0 ? Cos(backbone.Length, head.Length) : null;
        return (backboneCos, headCos);
    }

    /// <summary>Copies the step's rows into the reusable buffers: labeled rows first, then unlabeled.</summary>
    private static void Gather(TrainingSet set, int[] labeled, int[] unlabeled, float[] x, float[] t, long[] y, bool withTeacher)
    {
        int d = set.FeatureSize, k = set.ClassCount, row = 0;
        foreach (int i in labeled.Concat(unlabeled))
        {
            set.Features.AsSpan(i * d, d).CopyTo(x.AsSpan(row * d, d));
            if (withTeacher) set.Teacher.AsSpan(i * k, k).CopyTo(t.AsSpan(row * k, k));
            row++;
        }
        for (int j = 0; j < labeled.Length; j++) y[j] = set.Labels[labeled[j]];
    }
}
