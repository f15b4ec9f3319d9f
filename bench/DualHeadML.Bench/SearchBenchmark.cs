using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Runs;
using DualHeadML.Samples;
using Microsoft.ML.DualHeadDistillation.Search;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Bench;

/// <summary>
/// Does `train --search` find what an exhaustive run of the same space finds, in a third of the time? On a Fashion-MNIST
/// folder (PNG files: N labeled a class, 20 % of them carved for validation, the unlabeled rest, the sample's
/// nearest-centroid teacher, a test folder) per seed: the search (<see cref="DistillationSearch.Execute"/>: successive
/// halving over the 10 configurations, the kept one trained for the largest budget) and the exhaustive run (every
/// configuration trained for that budget, the best on validation kept), alternating which goes first. Both share nothing
/// but the files (each has its own teacher cache). Figures: the test accuracy of each pick, the exhaustive best's, the
/// configuration without a search's (the exhaustive run trains it), wall seconds and their ratio per seed (median).
/// </summary>
internal static class SearchBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        int Int(string name, int fallback, int min) => BenchArgs.Int(args, name, fallback, min);
        int seeds = Int("--seeds", 3, 1), labeledPerClass = Int("--labeled-per-class", 100, 5), unlabeled = Int("--unlabeled", 5_000, 100),
            testPerClass = Int("--test-per-class", 200, 1), epochs = Int("--epochs", DualHeadDefaults.Epochs * 3, 1);
        string work = BenchArgs.Value(args, "--work") ?? Path.Combine(Path.GetTempPath(), "dualhead-bench-search-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        try
        {
            string dataDir = FashionMnist.Locate(allowDownload: false);
            var train = FashionMnist.Load(dataDir, train: true);
            var test = FashionMnist.Load(dataDir, train: false);
            var written = FashionMnistFolders.Write(Path.Combine(work, "data"), train, test, labeledPerClass, unlabeled, testPerClass);
            string teacher = Path.Combine(work, "data", "teacher.onnx");
            File.WriteAllBytes(teacher, FashionMnistFolders.CentroidTeacher(train, FashionMnistFolders.TeacherPool(train)));
            Console.WriteLine($"{written.LabeledCount} labeled ({labeledPerClass} a class, 20 % carved for validation), {written.UnlabeledCount} unlabeled, {written.TestCount} test PNG files; {epochs} epochs per configuration");

            var ml = new MLContext(seed: 1);
            var (classes, testItems) = ImageListing.ReadClassFolders(written.Test, "test");
            var testRows = ImageRows.Load(ml, testItems, classes);
            double Test(DualHeadDistillTransformer model)
            {
                var scored = model.Transform(testRows);
                var labels = ScoredColumns.Labels(scored);
                var scores = ScoredColumns.Vectors(scored, "Score");
                return labels.Where((l, i) => ClassifierScores.ArgMax(scores[i]) == l).Count() / (double)labels.Length;
            }

            var runs = new List<Dictionary<string, object>>();
            for (int seed = 1; seed <= seeds; seed++)
            {
                var spec = new DistillationRunSpec
                {
                    Labeled = written.Labeled, Unlabeled = written.Unlabeled, Teacher = new TeacherSpec { OnnxPath = teacher },
                    ImageSize = 28, Epochs = epochs, Seed = seed, Augment = false,
                };
                var row = new Dictionary<string, object> { ["seed"] = seed };
                void Search()
                {
                    string folder = Path.Combine(work, $"search-{seed}");
                    var watch = Stopwatch.StartNew();
                    var (result, search) = DistillationSearch.Execute(spec, folder, replace: true);
                    using (result)
                    {
                        row["search_seconds"] = watch.Elapsed.TotalSeconds;
                        row["search_kept"] = search.Best.ToString();
                        row["search_halving_best"] = search.Choice?.Best.ToString() ?? "";
                        row["search_reason"] = search.Choice?.Reason ?? "";
                        row["search_trials"] = search.Trials.Count;
                        row["search_epoch_units"] = search.Trials.Sum(t => t.Budget) + epochs;
                        row["search_test_accuracy"] = Test(result.Model);
                    }
                    Directory.Delete(folder, recursive: true);
                }
                void Exhaustive()
                {
                    var watch = Stopwatch.StartNew();
                    var space = new DistillationSearchSpace();
                    var reference = space.Reference(spec);
                    var all = new List<(SearchConfiguration Configuration, double Validation, double Test)>();
                    string shared = Path.Combine(work, $"exhaustive-{seed}-work");
                    foreach (var c in space.Configurations(spec))
                    {
                        string folder = Path.Combine(work, $"exhaustive-{seed}");
                        var run = DistillationRun.Create(c.Apply(spec) with { WorkFolder = shared }, folder, replace: true);
                        using (var result = run.Execute())
                            all.Add((c, result.Summary.Validation.First(s => s.Name != "teacher").Accuracy, Test(result.Model)));
                        Directory.Delete(folder, recursive: true);
                        Console.WriteLine($"  [seed {seed}] exhaustive {c}: validation {all[^1].Validation:P2}, test {all[^1].Test:P2}");
                    }
                    Directory.Delete(shared, recursive: true);
                    row["exhaustive_seconds"] = watch.Elapsed.TotalSeconds;
                    row["exhaustive_epoch_units"] = all.Count * epochs;
                    var best = all.Select((r, i) => (r, i)).OrderByDescending(x => x.r.Validation).ThenBy(x => x.i).First().r; // ties: the first listed, as the search
                    row["exhaustive_pick"] = best.Configuration.ToString();
                    row["exhaustive_test_accuracy"] = best.Test;
                    row["exhaustive_best_on_test"] = all.Max(r => r.Test);
                    row["no_search_test_accuracy"] = all.Single(r => r.Configuration == reference).Test;
                    row["configurations"] = all.Select(r => new Dictionary<string, object> { ["configuration"] = r.Configuration.ToString(), ["validation"] = r.Validation, ["test"] = r.Test }).ToArray();
                }
                // A B, then B A: neither side always runs on a cold machine.
                if (seed % 2 == 1) { Search(); Exhaustive(); } else { Exhaustive(); Search(); }
                double ratio = (double)row["search_seconds"] / (double)row["exhaustive_seconds"];
                row["time_ratio"] = ratio;
                row["accuracy_gap_points"] = ((double)row["exhaustive_test_accuracy"] - (double)row["search_test_accuracy"]) * 100;
                Console.WriteLine(FormattableString.Invariant(
                    $"seed {seed}: search kept {row["search_kept"]} -> test {(double)row["search_test_accuracy"]:P2} in {(double)row["search_seconds"]:0} s; exhaustive picked {row["exhaustive_pick"]} -> test {(double)row["exhaustive_test_accuracy"]:P2} in {(double)row["exhaustive_seconds"]:0} s (best on test {(double)row["exhaustive_best_on_test"]:P2}, no search {(double)row["no_search_test_accuracy"]:P2}); time ratio {ratio:0.000}"));
                runs.Add(row);
            }
            double Mean(string key) => runs.Average(r => (double)r[key]);
            var ratios = Spread.Of(runs.Select(r => (double)r["time_ratio"]));
            double gap = (Mean("exhaustive_test_accuracy") - Mean("search_test_accuracy")) * 100;
            Console.WriteLine(FormattableString.Invariant(
                $"mean test accuracy: search {Mean("search_test_accuracy"):P2}, exhaustive pick {Mean("exhaustive_test_accuracy"):P2} (gap {gap:0.00} points, goal <= 0.5), no search {Mean("no_search_test_accuracy"):P2}; time ratio median {ratios.Median:0.000} (min {ratios.Min:0.000}, max {ratios.Max:0.000}; goal <= 0.333)"));
            return new Dictionary<string, object>
            {
                ["labeled_per_class"] = labeledPerClass, ["validation_per_class"] = labeledPerClass / 5, ["unlabeled"] = written.UnlabeledCount, ["test_images"] = written.TestCount,
                ["epochs_per_configuration"] = epochs, ["seeds"] = seeds, ["runs"] = runs,
                ["mean_search_test_accuracy"] = Mean("search_test_accuracy"), ["mean_exhaustive_test_accuracy"] = Mean("exhaustive_test_accuracy"),
                ["mean_no_search_test_accuracy"] = Mean("no_search_test_accuracy"), ["accuracy_gap_points"] = gap,
                ["time_ratio_median"] = ratios.Median, ["time_ratio_min"] = ratios.Min, ["time_ratio_max"] = ratios.Max,
                ["goal_met"] = gap <= 0.5 && ratios.Median <= 1 / 3.0,
            };
        }
        finally
        {
            if (BenchArgs.Value(args, "--work") is null) Directory.Delete(work, recursive: true);
        }
    }
}
