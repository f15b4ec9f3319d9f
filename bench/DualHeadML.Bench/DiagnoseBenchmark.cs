using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Diagnosis;

namespace DualHeadML.Bench;

/// <summary>
/// Is the diagnosis's verdict right? On the paper protocol (F = 0.01 by default: 50 labels a class, 200 validation
/// images, 10,000 test), three teachers: the project's default (ML.NET maximum entropy on the 10,000-image pool), the
/// confused one (pool labels mixed within T-shirt/Shirt and Pullover/Coat), and a weak one near chance (pool labels
/// drawn at random). For each: the verdict from the teacher's outputs on the labeled rows (no training), then
/// SupervisedOnly, SingleHeadKd and DualHead (alpha/beta chosen by the library on validation) trained per seed and
/// scored on test. The verdict matches when its method's mean test accuracy is within 0.5 points of the winner's.
/// SupervisedOnly does not read the teacher: it is trained once per seed and shared by the three regimes.
/// </summary>
internal static class DiagnoseBenchmark
{
    private static readonly (string Name, string? Confuse)[] s_regimes = [("default", null), ("confused", "0-6,2-4"), ("weak", "random")];

    public static Dictionary<string, object> Run(string[] args)
    {
        var protocol = PaperProtocol.Load(args);
        var supervised = new List<double>();
        var regimes = new List<Dictionary<string, object>>();
        bool all = true;
        foreach (var (name, confuse) in s_regimes)
        {
            var regime = protocol.WithConfuse(confuse);
            using var data = regime.PrepareData([]);
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var diagnosis = DualHeadDiagnosis.Assess(data.TrainData, FashionMnist.ClassNames, "Label", "Teacher", kind: data.TeacherKind);
            double diagnoseSeconds = watch.Elapsed.TotalSeconds;
            Console.WriteLine($"[{name}] {data.TeacherDescription}; test accuracy {data.TeacherAccuracy:P2}");
            foreach (var line in diagnosis.Describe()) Console.WriteLine($"[{name}]   {line}");

            var accuracies = new Dictionary<string, List<double>> { ["SupervisedOnly"] = [], ["SingleHeadKd"] = [], ["DualHead"] = [], ["dho_default_pair"] = [], ["ce_head"] = [], ["kd_head"] = [] };
            var choices = new List<string>();
            for (int seed = 1; seed <= protocol.Seeds; seed++)
            {
                if (supervised.Count < seed)
                {
                    using var sup = Fit(regime, data, DualHeadTrainingMode.SupervisedOnly, seed, null);
                    supervised.Add(Accuracy(sup, data));
                }
                accuracies["SupervisedOnly"].Add(supervised[seed - 1]);
                using (var kd = Fit(regime, data, DualHeadTrainingMode.SingleHeadKd, seed, null))
                    accuracies["SingleHeadKd"].Add(Accuracy(kd, data));
                using var dho = Fit(regime, data, DualHeadTrainingMode.DualHead, seed, data.Validation);
                accuracies["DualHead"].Add(Accuracy(dho, data));
                accuracies["dho_default_pair"].Add(Accuracy(dho.WithAlphaBeta(0.5f, 0.5f), data));
                accuracies["ce_head"].Add(Accuracy(dho.WithAlphaBeta(1f, 0.5f), data));
                accuracies["kd_head"].Add(Accuracy(dho.WithAlphaBeta(0f, 1f), data));
                choices.Add(dho.TrainingReport.AlphaBeta?.ToString() ?? "");
                Console.WriteLine(FormattableString.Invariant(
                    $"[{name}] seed {seed}: supervised {accuracies["SupervisedOnly"][^1]:P2}, single-head KD {accuracies["SingleHeadKd"][^1]:P2}, DHO {accuracies["DualHead"][^1]:P2} (alpha {dho.Alpha:0.##}, beta {dho.Beta:0.##}; pair 0.5/0.5 {accuracies["dho_default_pair"][^1]:P2}, CE head {accuracies["ce_head"][^1]:P2}, KD head {accuracies["kd_head"][^1]:P2})"));
            }
            string[] methods = ["SupervisedOnly", "SingleHeadKd", "DualHead"];
            var means = methods.ToDictionary(m => m, m => accuracies[m].Average());
            string winner = methods.MaxBy(m => means[m])!;
            string verdict = diagnosis.Verdict.Objective.Name;
            bool matches = means[verdict] >= means[winner] - 0.005;
            all &= matches;
            Console.WriteLine(FormattableString.Invariant(
                $"[{name}] verdict {verdict}, winner {winner} ({string.Join(", ", methods.Select(m => $"{m} {means[m]:P2}"))}): {(matches ? "match" : "MISMATCH")}"));
            regimes.Add(new Dictionary<string, object>
            {
                ["name"] = name,
                ["teacher"] = data.TeacherDescription,
                ["teacher_test_accuracy"] = data.TeacherAccuracy,
                ["teacher_labeled_accuracy"] = diagnosis.Accuracy.Value,
                ["teacher_labeled_rows"] = diagnosis.Accuracy.Rows,
                ["systematic_confusions"] = diagnosis.SystematicConfusions.Select(c => c.ToString()).ToArray(),
                ["diagnosis_seconds"] = diagnoseSeconds,
                ["verdict"] = verdict,
                ["verdict_summary"] = diagnosis.Verdict.Summary,
                ["winner"] = winner,
                ["verdict_matches"] = matches,
                ["accuracies"] = accuracies.ToDictionary(p => p.Key, p => (object)new Dictionary<string, object> { ["mean"] = p.Value.Average(), ["runs"] = p.Value }),
                ["alpha_beta_choices"] = choices,
            });
        }
        return new Dictionary<string, object>
        {
            ["fraction"] = protocol.Fraction, ["labeled_per_class"] = protocol.LabeledPerClass, ["validation_rows"] = protocol.Split.Validation.Length,
            ["seeds"] = protocol.Seeds, ["epochs"] = protocol.Epochs, ["unlabeled_rows"] = protocol.Split.Unlabeled.Length,
            ["regimes"] = regimes, ["verdict_matches"] = all,
        };
    }

    private static DualHeadDistillTransformer Fit(PaperProtocol p, PaperData data, DualHeadTrainingMode mode, int seed, IDataView? validation) =>
        p.Ml.MulticlassClassification.Trainers.DualHeadDistill(new DualHeadDistillOptions
        {
            Objective = mode, TeacherColumnName = "Teacher", TeacherOutput = data.TeacherKind, Backbone = DualHeadBackbone.SmallCnn, ImageShape = [1, 28, 28],
            NumberOfEpochs = p.Epochs, Seed = seed,
        }).Fit(data.TrainData, validation);

    private static double Accuracy(DualHeadDistillTransformer model, PaperData data) =>
        PaperBenchmark.Accuracy(model.Transform(data.TestData).GetColumn<uint>("PredictedLabel").Select(k => (int)k - 1).ToArray(), data.TestLabels);
}
