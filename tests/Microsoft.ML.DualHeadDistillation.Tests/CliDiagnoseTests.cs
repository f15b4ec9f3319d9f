using System.Diagnostics;
using System.Text.Json;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>`dualhead diagnose`, the diagnosis block of `train` and its report, and `evaluate --teacher`.</summary>
[TestClass]
public sealed class CliDiagnoseTests
{
    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    [TestMethod]
    public void DiagnoseMeasuresTheTeacherOnTheLabeledImagesAndGivesAVerdictWithItsEvidence()
    {
        var data = CliFixture.Data;
        using var dir = new TempDir(); // not in the fixture's folder: other tests label every image there
        string json = Path.Combine(dir.Path, "diagnosis.json"), svg = Path.Combine(dir.Path, "diagnosis.svg");
        var watch = Stopwatch.StartNew();
        var r = CliFixture.Run("diagnose", "--labeled", data.Labeled, "--unlabeled", data.Unlabeled, "--teacher", CliFixture.Teacher, "--unlabeled-sample", "100", "--json", json, "--plot", svg);
        double seconds = watch.Elapsed.TotalSeconds;
        Assert.AreEqual(0, r.Exit, Describe(r));
        StringAssert.Contains(r.Output, "teacher accuracy on the labeled images:");
        StringAssert.Contains(r.Output, "verdict: ");
        Assert.IsTrue(seconds < 60, $"diagnose took {seconds:0.0} s on 200 images");
        var d = CliFixture.Json(json);
        var accuracy = d.GetProperty("accuracy");
        Assert.AreEqual(200, accuracy.GetProperty("rows").GetInt32(), "every labeled image (training and validation)");
        double value = accuracy.GetProperty("value").GetDouble();
        Assert.IsTrue(value > 0.3 && value < 1, $"accuracy {value}");
        Assert.IsTrue(accuracy.GetProperty("lower").GetDouble() < value && value < accuracy.GetProperty("upper").GetDouble());
        Assert.AreEqual(10, d.GetProperty("per_class").GetArrayLength());
        Assert.AreEqual(10, d.GetProperty("confusion").GetArrayLength());
        Assert.AreEqual(200, d.GetProperty("confusion").EnumerateArray().Sum(row => row.EnumerateArray().Sum(v => v.GetInt32())));
        Assert.AreEqual(100, d.GetProperty("unlabeled_rows").GetInt32());
        string verdict = d.GetProperty("verdict").GetProperty("objective").GetString()!;
        CollectionAssert.Contains(new[] { "DualHead", "SingleHeadKd", "SupervisedOnly" }, verdict);
        StringAssert.Contains(r.Output, $"verdict: {verdict}: ");
        Assert.IsTrue(d.GetProperty("expected_calibration_error").GetDouble() >= 0);
        StringAssert.StartsWith(File.ReadAllText(svg).TrimStart(), "<?xml");
        StringAssert.Contains(File.ReadAllText(svg), "Teacher on the labeled images");
    }

    [TestMethod]
    public void DiagnoseRefusesAClassWithoutImagesAndATeacherWhoseClassesDoNotMatch()
    {
        var data = CliFixture.Data;
        using var dir = new TempDir(); // not in the fixture's folder: other tests label every image there
        string root = dir.Path;
        string labeled = Path.Combine(root, "labeled");
        foreach (var classDir in Directory.GetDirectories(data.Labeled))
        {
            string target = Path.Combine(labeled, Path.GetFileName(classDir));
            Directory.CreateDirectory(target);
            foreach (var f in Directory.GetFiles(classDir).Take(3)) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        }
        Directory.CreateDirectory(Path.Combine(labeled, "Empty"));
        var empty = CliFixture.Run("diagnose", "--labeled", labeled, "--teacher", CliFixture.Teacher);
        Assert.AreEqual(3, empty.Exit, Describe(empty));
        StringAssert.Contains(empty.Error + empty.Output, "(class 'Empty') holds no images");

        Directory.Delete(Path.Combine(labeled, "Empty"));
        string classes = Path.Combine(root, "classes.txt");
        File.WriteAllLines(classes, Enumerable.Range(0, 10).Select(i => $"thing{i}"));
        var mismatch = CliFixture.Run("diagnose", "--labeled", labeled, "--teacher", CliFixture.Teacher, "--teacher-classes", classes);
        Assert.AreEqual(3, mismatch.Exit, Describe(mismatch));
        StringAssert.Contains(mismatch.Error + mismatch.Output, "not among the classes of teacher");
        StringAssert.Contains(mismatch.Error + mismatch.Output, "--teacher-classes");

        var negative = CliFixture.Run("diagnose", "--labeled", labeled, "--teacher", CliFixture.Teacher, "--unlabeled-sample", "-1");
        Assert.AreEqual(2, negative.Exit, Describe(negative));
        StringAssert.Contains(negative.Error + negative.Output, "--unlabeled-sample must be 0 or more");
    }

    [TestMethod]
    public void TrainPrintsTheDiagnosisAndItsReportExplainsTheAlphaBetaChoice()
    {
        var (run, _) = CliFixture.SharedRun;
        var metrics = CliFixture.Json(Path.Combine(run, "metrics.json"));
        var diagnosis = metrics.GetProperty("diagnosis");
        Assert.AreEqual(200, diagnosis.GetProperty("accuracy").GetProperty("rows").GetInt32());
        var ab = metrics.GetProperty("alpha_beta");
        Assert.IsTrue(ab.GetProperty("reason").GetString()!.Length > 20);
        Assert.AreEqual(4, ab.GetProperty("fewest_rows_per_class").GetInt32(), "20 labeled a class, 20 % carved");
        StringAssert.Contains(string.Join("\n", metrics.GetProperty("warnings").EnumerateArray().Select(w => w.GetString())), "fewer than 20 a class");
        float alpha = metrics.GetProperty("alpha").GetSingle();
        Assert.AreEqual(ab.GetProperty("alpha").GetSingle(), alpha);
        var reference = ab.GetProperty("reference");
        var best = ab.GetProperty("best");
        bool keptBest = best.GetProperty("accuracy").GetDouble() - reference.GetProperty("accuracy").GetDouble() > ab.GetProperty("required_lead").GetDouble();
        Assert.AreEqual((keptBest ? best : reference).GetProperty("alpha").GetSingle(), alpha, ab.GetProperty("reason").GetString());

        string md = File.ReadAllText(Path.Combine(run, "report.md"));
        StringAssert.Contains(md, "## Diagnosis: the teacher on the labeled images, before training");
        StringAssert.Contains(md, "- verdict: ");
        StringAssert.Contains(md, "## Choice of alpha and beta");
        StringAssert.Contains(md, "(one standard error) on 40 images, the smallest class 4");
        StringAssert.Contains(File.ReadAllText(Path.Combine(run, "report.html")), "Choice of alpha and beta");
        Assert.IsTrue(File.Exists(Path.Combine(run, "plots", "teacher-confusion.svg")));

        // The loss plot is per step (2 epochs of this run: one point per step, the epoch boundary marked) and its learning-rate axis reads 1e-3.
        var steps = metrics.GetProperty("epoch_reports").EnumerateArray().Sum(e => e.GetProperty("steps").GetInt32());
        string loss = File.ReadAllText(Path.Combine(run, "plots", "loss.svg"));
        StringAssert.Contains(loss, "per step");
        StringAssert.Contains(loss, ">1e-3<");
        StringAssert.Contains(loss, ">epoch 2<");
        Assert.IsTrue(steps > 20 && steps <= 512, $"{steps} steps");
    }

    [TestMethod]
    public void EvaluateWithATeacherShowsItsAccuracyOnTheSameImagesBesideTheModelsAndHeads()
    {
        var (run, _) = CliFixture.SharedRun;
        var data = CliFixture.Data;
        using var dir = new TempDir();
        string json = Path.Combine(dir.Path, "evaluate-teacher.json");
        var r = CliFixture.Run("evaluate", "--model", run, "--data", data.Test, "--teacher", CliFixture.Teacher, "--json", json);
        Assert.AreEqual(0, r.Exit, Describe(r));
        var results = CliFixture.Json(json).GetProperty("results").EnumerateArray().ToArray();
        CollectionAssert.AreEqual(new[] { "teacher", "model", "CE head", "KD head" }, results.Select(x => x.GetProperty("name").GetString()).ToArray());
        double teacher = results[0].GetProperty("accuracy").GetDouble();
        Assert.IsTrue(teacher > 0.3 && teacher < 1, $"teacher {teacher}");
        Assert.AreEqual(results[1].GetProperty("accuracy").GetDouble(), CliFixture.Json(json).GetProperty("accuracy").GetDouble(), "the top-level accuracy stays the model's");
        var without = CliFixture.Run("evaluate", "--model", run, "--data", data.Test);
        Assert.AreEqual(0, without.Exit, Describe(without));
        Assert.IsFalse(without.Output.Contains("teacher", StringComparison.Ordinal), "no teacher column without a teacher");
    }
}
