using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;

namespace DualHeadML.Bench;

/// <summary>
/// Accuracy under <c>Precision = BFloat16</c> next to float32: the paper protocol's DHO student (SmallCnn, alpha/beta
/// on validation), the same rows, teacher, seed and steps, once per precision (alternating per seed). Test accuracy
/// with validated and default (0.5 / 0.5) alpha/beta, and ms per step. bfloat16 is emulated by libtorch on CPUs
/// without AVX512-BF16 / AMX (tens of times slower), so --unlabeled takes a subset there.
/// </summary>
internal static class PrecisionBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        var protocol = PaperProtocol.Load(args);
        using var data = protocol.PrepareData(args);
        var ml = protocol.Ml;
        var precisions = new[] { DualHeadPrecision.Float32, DualHeadPrecision.BFloat16 };
        var auto = precisions.ToDictionary(p => p, _ => new List<double>());
        var defaults = precisions.ToDictionary(p => p, _ => new List<double>());
        var msPerStep = precisions.ToDictionary(p => p, _ => new List<double>());
        var seconds = precisions.ToDictionary(p => p, _ => new List<double>());
        for (int seed = 1; seed <= protocol.Seeds; seed++)
            foreach (var precision in seed % 2 == 1 ? precisions : [precisions[1], precisions[0]]) // alternating which runs first
            {
                var options = new DualHeadDistillOptions
                {
                    TeacherColumnName = "Teacher", TeacherOutput = data.TeacherKind, Backbone = DualHeadBackbone.SmallCnn, ImageShape = [1, 28, 28],
                    NumberOfEpochs = protocol.Epochs, Seed = seed, Precision = precision,
                };
                var watch = Stopwatch.StartNew();
                using var model = ml.MulticlassClassification.Trainers.DualHeadDistill(options).Fit(data.TrainData, data.Validation);
                seconds[precision].Add(watch.Elapsed.TotalSeconds);
                int[] Predict(DualHeadDistillTransformer m) => m.Transform(data.TestData).GetColumn<uint>("PredictedLabel").Select(k => (int)k - 1).ToArray();
                auto[precision].Add(PaperBenchmark.Accuracy(Predict(model), data.TestLabels));
                using (var half = model.WithAlphaBeta(0.5f, 0.5f)) // shares the student; its own scoring session is released here
                    defaults[precision].Add(PaperBenchmark.Accuracy(Predict(half), data.TestLabels));
                msPerStep[precision].Add(model.TrainingReport.MeanStepMilliseconds);
                Console.WriteLine(FormattableString.Invariant(
                    $"seed {seed} {precision}: DHO test {auto[precision][^1]:P2} (alpha {model.Alpha}, beta {model.Beta}), alpha = beta = 0.5 {defaults[precision][^1]:P2}; {msPerStep[precision][^1]:0} ms/step, {seconds[precision][^1]:0} s"));
            }
        var results = new Dictionary<string, object>
        {
            ["fraction"] = protocol.Fraction, ["unlabeled_rows"] = protocol.Split.Unlabeled.Length, ["epochs"] = protocol.Epochs, ["seeds"] = protocol.Seeds,
            ["teacher_description"] = data.TeacherDescription, ["teacher_accuracy"] = data.TeacherAccuracy,
        };
        foreach (var p in precisions)
            results[p == DualHeadPrecision.Float32 ? "float32" : "bfloat16"] = new Dictionary<string, object>
            {
                ["dho_auto"] = auto[p], ["dho_auto_mean"] = auto[p].Average(), ["dho_default"] = defaults[p], ["dho_default_mean"] = defaults[p].Average(),
                ["ms_per_step"] = msPerStep[p], ["seconds"] = seconds[p],
            };
        double Points(Dictionary<DualHeadPrecision, List<double>> v) => 100 * (v[DualHeadPrecision.BFloat16].Average() - v[DualHeadPrecision.Float32].Average());
        results["bfloat16_minus_float32_points_auto"] = Points(auto);
        results["bfloat16_minus_float32_points_default"] = Points(defaults);
        results["bfloat16_over_float32_step_time"] = msPerStep[DualHeadPrecision.BFloat16].Average() / msPerStep[DualHeadPrecision.Float32].Average();
        Console.WriteLine(FormattableString.Invariant(
            $"bfloat16 - float32: {Points(auto):+0.00;-0.00} points (validated alpha/beta), {Points(defaults):+0.00;-0.00} (0.5 / 0.5); step time x{results["bfloat16_over_float32_step_time"]:0.0}"));
        return results;
    }
}
