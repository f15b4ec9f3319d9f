using Microsoft.ML.DualHeadDistillation.Training.Loop;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DualHeadML.Bench;

/// <summary>
/// The step-level half of the parity check: TorchSharp's side of "the first steps of both trainers from
/// identical weights". Builds the student exactly as the trainer does (seeded TorchSharp generator, backbone,
/// then h_CE, then h_KD), writes its initial weights, then takes K steps on a parity bundle's rows with the
/// trainer's own pieces (<see cref="DualHeadStudent.ForwardTraining"/>, <see cref="DhoLoss.Compute"/>,
/// <see cref="LearningRateSchedule.At"/>, TorchSharp's AdamW) and writes the per-step losses, the batches and
/// the final weights. bench/parity/compare_steps.py replays the same steps in PyTorch from the same weights.
/// </summary>
internal static class ParityStepsBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        string bundle = BenchArgs.Value(args, "--bundle") ?? throw new ArgumentException("parity-steps needs --bundle DIR (written by parity --bundle DIR).");
        string outDir = BenchArgs.Value(args, "--out") ?? Path.Combine(bundle, "steps");
        int steps = int.Parse(BenchArgs.Value(args, "--steps") ?? "50", CultureInfo.InvariantCulture);
        int seed = int.Parse(BenchArgs.Value(args, "--seed") ?? "1", CultureInfo.InvariantCulture);
        int threads = int.Parse(BenchArgs.Value(args, "--threads") ?? "1", CultureInfo.InvariantCulture);
        Directory.CreateDirectory(outDir);
        new SmallCnnBackbone(1, 28, 28, DualHeadDefaults.EmbeddingSize).Dispose(); // loads libtorch through the library's native set-up
        torch.set_num_threads(threads);

        float[] Floats(string f) { var b = File.ReadAllBytes(Path.Combine(bundle, f)); var r = new float[b.Length / 4]; Buffer.BlockCopy(b, 0, r, 0, b.Length); return r; }
        int[] Ints(string f) { var b = File.ReadAllBytes(Path.Combine(bundle, f)); var r = new int[b.Length / 4]; Buffer.BlockCopy(b, 0, r, 0, b.Length); return r; }
        var x = Floats("train_features.bin");
        var teacher = Floats("train_teacher.bin");
        var y = Ints("train_labels.bin");
        int n = y.Length, d = x.Length / n, k = teacher.Length / n, batch = DualHeadDefaults.LabeledBatchSize;

        // Batches as BatchSampler draws them (seeded System.Random: labeled shuffled first, then each epoch's unlabeled order).
        var random = new Random(seed);
        var labeled = Enumerable.Range(0, n).Where(i => y[i] >= 0).ToArray();
        var unlabeled = Enumerable.Range(0, n).Where(i => y[i] < 0).ToArray();
        random.Shuffle(labeled);
        random.Shuffle(unlabeled);
        int cursor = 0, totalSteps = (unlabeled.Length + batch - 1) / batch * DualHeadDefaults.Epochs;
        int[] NextLabeled() => Enumerable.Range(0, batch).Select(_ => { if (cursor == labeled.Length) { random.Shuffle(labeled); cursor = 0; } return labeled[cursor++]; }).ToArray();
        var batches = Enumerable.Range(0, steps).Select(s => NextLabeled().Concat(unlabeled.Skip(s * batch).Take(batch)).ToArray()).ToArray();

        var results = new Dictionary<string, object> { ["bundle"] = bundle, ["seed"] = seed, ["steps"] = steps, ["threads"] = threads, ["total_steps"] = totalSteps };
        foreach (var (mode, twoHeads) in new[] { ("dho", true), ("single_head_kd", false) })
        {
            // As DualHeadTrainingLoop.CreateStudent: seed, then backbone, h_CE, h_KD.
            torch.random.manual_seed(seed);
            using var student = new DualHeadStudent(new SmallCnnBackbone(1, 28, 28, DualHeadDefaults.EmbeddingSize), k, twoHeads);
            WriteWeights(student, Path.Combine(outDir, $"init-{mode}"));
            student.train();
            using var optimizer = optim.AdamW(student.parameters(), DualHeadDefaults.LearningRate, weight_decay: DualHeadDefaults.WeightDecay);
            // Fit's own step (forward, the objective's loss, backward, AdamW, the finiteness check).
            var step = new TrainingStep(student, DualHeadRegistry.Objectives.Get(twoHeads ? "DualHead" : "SingleHeadKd"), optimizer);
            var log = new List<Dictionary<string, double>>();
            for (int s = 0; s < steps; s++)
            {
                double lr = LearningRateSchedule.At(s, totalSteps, DualHeadDefaults.WarmupSteps, DualHeadDefaults.LearningRate);
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
                using var scope = NewDisposeScope();
                var rows = batches[s];
                var xb = new float[rows.Length * d];
                var tb = new float[rows.Length * k];
                for (int r = 0; r < rows.Length; r++)
                {
                    Array.Copy(x, rows[r] * d, xb, r * d, d);
                    Array.Copy(teacher, rows[r] * k, tb, r * k, k);
                }
                var xt = tensor(xb, [rows.Length, d]);
                var tt = tensor(tb, [rows.Length, k]);
                var yt = tensor(rows.Take(batch).Select(r => (long)y[r]).ToArray(), [batch]);
                var figures = step.Run(xt, yt, tt, batch);
                log.Add(new() { ["step"] = s, ["lr"] = lr, ["ce"] = figures.Ce, ["kd"] = figures.Kd, ["loss"] = figures.Loss });
            }
            WriteWeights(student, Path.Combine(outDir, $"after-{mode}"));
            results[mode] = log;
            Console.WriteLine(FormattableString.Invariant($"{mode}: {steps} steps, loss {log[0]["loss"]:0.######} -> {log[^1]["loss"]:0.######}"));
        }
        results["batches"] = batches;
        File.WriteAllText(Path.Combine(outDir, "steps.json"), JsonSerializer.Serialize(results));
        Console.WriteLine($"wrote {outDir}; compare with: python3 bench/parity/compare_steps.py {outDir} {bundle}");
        return new Dictionary<string, object> { ["out"] = outDir, ["steps"] = steps, ["seed"] = seed };
    }

    /// <summary>Parameters in registration order as raw little-endian float32, plus their names and shapes.</summary>
    private static void WriteWeights(DualHeadStudent student, string path)
    {
        var names = new List<object>();
        using (var writer = new BinaryWriter(File.Create(path + ".bin")))
            foreach (var (name, p) in student.named_parameters())
            {
                foreach (float v in p.detach().contiguous().data<float>().ToArray()) writer.Write(v);
                names.Add(new Dictionary<string, object> { ["name"] = name, ["shape"] = p.shape });
            }
        File.WriteAllText(path + ".json", JsonSerializer.Serialize(names));
    }
}
