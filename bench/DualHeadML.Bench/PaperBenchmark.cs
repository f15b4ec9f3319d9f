using System.Diagnostics;
using System.Globalization;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Bench;

/// <summary>
/// The DHO paper's comparison on Fashion-MNIST: SupervisedOnly, SingleHeadKd and DualHead (default and
/// validation-selected alpha/beta) with the same student, teacher, labels, steps and seeds.
/// Protocol: permute the training images with seed 13; the first 10,000 are the teacher's pool; 20 per
/// class of the rest are the validation split; F * 5,000 per class are labeled; every other row is
/// unlabeled; test on the official 10,000 test images.
/// </summary>
internal static class PaperBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        var protocol = PaperProtocol.Load(args);
        var (ml, train, split, fraction, seeds, epochs, confuse, labeledPerClass) =
            (protocol.Ml, protocol.Train, protocol.Split, protocol.Fraction, protocol.Seeds, protocol.Epochs, protocol.Confuse, protocol.LabeledPerClass);
        var test = protocol.Test;

        // --write-pool PATH: write the teacher pool (training-image index and label, confused if asked) for an
        // external teacher trainer (bench/teachers/train_cnn_teacher.py), then stop.
        if (Arg(args, "--write-pool") is { } poolPath)
        {
            var labels = confuse is null ? split.TeacherPool.ToDictionary(i => i, i => train.Labels[i]) : PaperProtocol.ConfusedLabels(train, split.TeacherPool, confuse);
            File.WriteAllLines(poolPath, split.TeacherPool.Select(i => $"{i} {labels[i]}"));
            Console.WriteLine($"wrote {split.TeacherPool.Length} pool images to {poolPath}");
            return new Dictionary<string, object> { ["pool"] = poolPath, ["pool_size"] = split.TeacherPool.Length, ["confuse"] = confuse ?? "" };
        }

        using var data = protocol.PrepareData(args);
        var (trainData, validation, testData, testLabels, teacherTest, teacherAccuracy, teacherKind, teacherDescription) =
            (data.TrainData, data.Validation, data.TestData, data.TestLabels, data.TeacherTest, data.TeacherAccuracy, data.TeacherKind, data.TeacherDescription);

        var runs = new Dictionary<string, List<double>> { ["supervised_only"] = [], ["single_head_kd"] = [], ["dho_default"] = [], ["dho_auto"] = [], ["ce_head"] = [], ["kd_head"] = [] };
        var seconds = new Dictionary<string, List<double>> { ["supervised_only"] = [], ["single_head_kd"] = [], ["dho"] = [] };
        var perClass = new Dictionary<string, List<double[]>> { ["single_head_kd"] = [], ["dho_auto"] = [] };
        var chosen = new List<object>();
        var cosines = new Dictionary<string, List<double?>> { ["single_head_kd_backbone"] = [], ["single_head_kd_head"] = [], ["dho_backbone"] = [] };
        for (int seed = 1; seed <= seeds; seed++)
        {
            DualHeadDistillOptions Options(DualHeadTrainingMode mode) => new()
            {
                Objective = mode, TeacherColumnName = "Teacher", TeacherOutput = teacherKind, Backbone = DualHeadBackbone.SmallCnn, ImageShape = [1, 28, 28],
                NumberOfEpochs = epochs, Seed = seed, GradientConflictDiagnostic = mode != DualHeadTrainingMode.SupervisedOnly,
            };
            (DualHeadDistillTransformer Model, double Seconds) Fit(DualHeadTrainingMode mode, IDataView? val)
            {
                var watch = Stopwatch.StartNew();
                var model = ml.MulticlassClassification.Trainers.DualHeadDistill(Options(mode)).Fit(trainData, val);
                return (model, watch.Elapsed.TotalSeconds);
            }
            int[] Predict(DualHeadDistillTransformer model) => model.Transform(testData).GetColumn<uint>("PredictedLabel").Select(k => (int)k - 1).ToArray();

            var (sup, supSeconds) = Fit(DualHeadTrainingMode.SupervisedOnly, null);
            using (sup) runs["supervised_only"].Add(Accuracy(Predict(sup), testLabels));
            seconds["supervised_only"].Add(supSeconds);

            var (single, singleSeconds) = Fit(DualHeadTrainingMode.SingleHeadKd, null);
            using (single)
            {
                var predictions = Predict(single);
                runs["single_head_kd"].Add(Accuracy(predictions, testLabels));
                perClass["single_head_kd"].Add(PerClass(predictions, testLabels));
                cosines["single_head_kd_backbone"].Add(single.TrainingReport.Epochs.Average(e => e.BackboneGradientCosine ?? double.NaN));
                cosines["single_head_kd_head"].Add(single.TrainingReport.Epochs.Average(e => e.HeadGradientCosine ?? double.NaN));
            }
            seconds["single_head_kd"].Add(singleSeconds);

            var (dho, dhoSeconds) = Fit(DualHeadTrainingMode.DualHead, validation);
            using (dho)
            {
                var search = dho.TrainingReport.AlphaBeta!;
                var auto = Predict(dho);
                runs["dho_auto"].Add(Accuracy(auto, testLabels));
                perClass["dho_auto"].Add(PerClass(auto, testLabels));
                chosen.Add(new Dictionary<string, object> { ["seed"] = seed, ["alpha"] = search.Alpha, ["beta"] = search.Beta, ["validation_accuracy"] = search.Accuracy });
                runs["dho_default"].Add(Accuracy(Predict(dho.WithAlphaBeta(0.5f, 0.5f)), testLabels));
                runs["ce_head"].Add(Accuracy(Predict(dho.WithAlphaBeta(1f, 0.5f)), testLabels));
                runs["kd_head"].Add(Accuracy(Predict(dho.WithAlphaBeta(0f, 0.5f)), testLabels));
                cosines["dho_backbone"].Add(dho.TrainingReport.Epochs.Average(e => e.BackboneGradientCosine ?? double.NaN));
            }
            seconds["dho"].Add(dhoSeconds);
            Console.WriteLine(FormattableString.Invariant(
                $"seed {seed}: supervised {runs["supervised_only"][^1]:P2}, single-head KD {runs["single_head_kd"][^1]:P2}, DHO default {runs["dho_default"][^1]:P2}, DHO auto {runs["dho_auto"][^1]:P2} (alpha {((Dictionary<string, object>)chosen[^1])["alpha"]}, beta {((Dictionary<string, object>)chosen[^1])["beta"]}), CE head {runs["ce_head"][^1]:P2}, KD head {runs["kd_head"][^1]:P2}; {supSeconds:0}s / {singleSeconds:0}s / {dhoSeconds:0}s"));
        }

        object Summary(List<double> values, List<double> secs) => new Dictionary<string, object>
        {
            ["mean"] = values.Average(), ["std"] = Std(values), ["runs"] = values, ["seconds"] = secs,
        };
        var results = new Dictionary<string, object>
        {
            ["fraction"] = fraction, ["labeled_per_class"] = labeledPerClass, ["labeled_rows"] = split.Labeled.Length, ["unlabeled_rows"] = split.Unlabeled.Length,
            ["validation_rows"] = split.Validation.Length, ["test_rows"] = test.Count, ["seeds"] = seeds, ["epochs"] = epochs,
            ["confuse"] = confuse ?? "", ["teacher_description"] = teacherDescription,
            ["teacher"] = new Dictionary<string, object> { ["mean"] = teacherAccuracy, ["std"] = 0.0, ["seconds"] = Array.Empty<double>() },
            ["supervised_only"] = Summary(runs["supervised_only"], seconds["supervised_only"]),
            ["single_head_kd"] = Summary(runs["single_head_kd"], seconds["single_head_kd"]),
            ["dho_default"] = Summary(runs["dho_default"], seconds["dho"]),
            ["dho_auto"] = Summary(runs["dho_auto"], seconds["dho"]),
            ["ce_head"] = Summary(runs["ce_head"], seconds["dho"]),
            ["kd_head"] = Summary(runs["kd_head"], seconds["dho"]),
            ["per_class"] = new Dictionary<string, object>
            {
                ["class_names"] = FashionMnist.ClassNames,
                ["single_head_kd"] = MeanPerClass(perClass["single_head_kd"]),
                ["dho_auto"] = MeanPerClass(perClass["dho_auto"]),
                ["teacher"] = PerClass(teacherTest, testLabels),
            },
            ["chosen_alpha_beta"] = chosen,
            ["mean_gradient_cosine"] = cosines.ToDictionary(p => p.Key, p => (object)p.Value.Average(v => v ?? double.NaN)),
        };
        Console.WriteLine();
        Console.WriteLine($"| method | mean test accuracy | std | seconds per run |");
        Console.WriteLine($"|---|---|---|---|");
        Console.WriteLine($"| teacher | {teacherAccuracy:P2} | | |");
        foreach (var (name, secKey) in new[] { ("supervised_only", "supervised_only"), ("single_head_kd", "single_head_kd"), ("dho_default", "dho"), ("dho_auto", "dho"), ("ce_head", "dho"), ("kd_head", "dho") })
            Console.WriteLine(FormattableString.Invariant($"| {name} | {runs[name].Average():P2} | {Std(runs[name]) * 100:0.00} | {seconds[secKey].Average():0} |"));
        return results;
    }

    internal static int ArgMax(float[] v) => Array.IndexOf(v, v.Max());
    internal static double Accuracy(int[] predicted, int[] truth) => predicted.Zip(truth).Count(p => p.First == p.Second) / (double)truth.Length;
    private static double[] PerClass(int[] predicted, int[] truth) =>
        Enumerable.Range(0, 10).Select(c => { var idx = Enumerable.Range(0, truth.Length).Where(i => truth[i] == c).ToArray(); return idx.Count(i => predicted[i] == c) / (double)idx.Length; }).ToArray();
    private static double[] MeanPerClass(List<double[]> runs) => Enumerable.Range(0, 10).Select(c => runs.Average(r => r[c])).ToArray();
    internal static double Std(List<double> v) { double m = v.Average(); return v.Count < 2 ? 0 : Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / (v.Count - 1)); }
    internal static string? Arg(string[] args, string name) => BenchArgs.Value(args, name);
    internal static int IntArg(string[] args, string name, int fallback, int min) => BenchArgs.Int(args, name, fallback, min);

    /// <summary>The built dualhead tool (bench cli and bench scale run it as a child process).</summary>
    internal static string DualheadTool()
    {
        string tool = typeof(PaperBenchmark).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "DualheadCli").Value!;
        if (!File.Exists(tool)) throw new FileNotFoundException($"The dualhead tool was not built: {tool}");
        return tool;
    }
}
