using System.Text.Json;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The `dualhead` tool end to end, run as a child process on a Fashion-MNIST PNG folder (CliFixture).</summary>
[TestClass]
public sealed class CliTests
{
    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    [TestMethod]
    public void TrainEvaluatePredictExportAndInfoWorkOnAFolderOfImages()
    {
        using var dir = new TempDir();
        string run = Path.Combine(dir.Path, "run");
        var train = CliFixture.Run(CliFixture.TrainArgs(run));
        Assert.AreEqual(0, train.Exit, Describe(train));
        foreach (var file in new[] { "model.zip", "student.onnx", "checkpoint.zip", "metrics.json", "report.html", "report.md", "run.json", "plots/loss.svg", "plots/confusion.svg", "plots/per-class-accuracy.svg", "plots/alpha-beta.svg", "plots/validation-accuracy.svg", "consumption/DualHeadModelConsumption.csproj" })
            Assert.IsTrue(File.Exists(Path.Combine(run, file)), $"{file} is missing\n{Describe(train)}");
        Assert.IsFalse(Directory.Exists(Path.Combine(run, ".work")), "the work folder (store, cache) is removed after a finished run");
        StringAssert.Contains(train.Output, "== Training");
        StringAssert.Contains(train.Output, "epoch 2/2");

        // metrics.json: the split, the four ways of predicting, the time split.
        var metrics = CliFixture.Json(Path.Combine(run, "metrics.json"));
        Assert.AreEqual(10, metrics.GetProperty("classes").GetArrayLength());
        Assert.AreEqual(160, metrics.GetProperty("labeled_images").GetInt32(), "20 per class minus the 20% carved for validation");
        Assert.AreEqual(40, metrics.GetProperty("validation_images").GetInt32());
        Assert.AreEqual(800, metrics.GetProperty("unlabeled_images").GetInt32());
        var validation = metrics.GetProperty("validation").EnumerateArray().ToDictionary(v => v.GetProperty("name").GetString()!, v => v.GetProperty("accuracy").GetDouble());
        CollectionAssert.AreEquivalent(new[] { "teacher", "DHO", "CE head", "KD head" }, validation.Keys.ToArray());
        Assert.IsTrue(validation["teacher"] > 0.5, $"the centroid teacher knows Fashion-MNIST: {validation["teacher"]}");
        Assert.IsTrue(validation["DHO"] > 0.3, $"DHO after 2 short epochs beats chance (0.1): {validation["DHO"]}");
        var seconds = metrics.GetProperty("seconds");
        foreach (var phase in new[] { "listing", "decoding_store", "teacher", "training", "report", "total" })
            Assert.IsTrue(seconds.GetProperty(phase).GetDouble() >= 0, phase);
        Assert.IsTrue(seconds.GetProperty("training").GetDouble() > 0);

        // evaluate on the held-out test folder.
        string evalJson = Path.Combine(dir.Path, "eval.json");
        var evaluate = CliFixture.Run("evaluate", "--model", run, "--data", CliFixture.Data.Test, "--json", evalJson);
        Assert.AreEqual(0, evaluate.Exit, Describe(evaluate));
        StringAssert.Contains(evaluate.Output, "Confusion matrix");
        var eval = CliFixture.Json(evalJson);
        Assert.AreEqual(200, eval.GetProperty("images").GetInt32());
        double testAccuracy = eval.GetProperty("accuracy").GetDouble();
        Assert.IsTrue(testAccuracy > 0.3, $"test accuracy {testAccuracy}");
        int confusionTotal = eval.GetProperty("results")[0].GetProperty("confusion").EnumerateArray().Sum(r => r.EnumerateArray().Sum(v => v.GetInt32()));
        Assert.AreEqual(200, confusionTotal);

        // predict: a folder as JSON agrees with evaluate's accuracy; a single file as a table.
        var predict = CliFixture.Run("predict", "--model", Path.Combine(run, "model.zip"), CliFixture.Data.Test, "--json");
        Assert.AreEqual(0, predict.Exit, Describe(predict));
        using var predictions = JsonDocument.Parse(predict.Output);
        var rows = predictions.RootElement.EnumerateArray().ToArray();
        Assert.AreEqual(200, rows.Length);
        int right = rows.Count(r => Path.GetFileName(Path.GetDirectoryName(r.GetProperty("file").GetString()!)) == r.GetProperty("predicted").GetString());
        Assert.AreEqual(testAccuracy, right / 200.0, 1e-9, "predict and evaluate score the same images the same way");
        string one = rows[0].GetProperty("file").GetString()!;
        var single = CliFixture.Run("predict", "-m", run, one, "--top", "2");
        Assert.AreEqual(0, single.Exit, Describe(single));
        StringAssert.Contains(single.Output, rows[0].GetProperty("predicted").GetString()!);

        // export with other alpha/beta, and info on every kind of file.
        string onnx = Path.Combine(dir.Path, "ce-only.onnx");
        var export = CliFixture.Run("export", "--model", run, "--output", onnx, "--alpha", "1");
        Assert.AreEqual(0, export.Exit, Describe(export));
        var info = CliFixture.Run("info", onnx);
        Assert.AreEqual(0, info.Exit, Describe(info));
        StringAssert.Contains(info.Output, "DualHead, 1, ");
        StringAssert.Contains(info.Output, "Ankle boot");
        var infoRun = CliFixture.Run("info", run);
        Assert.AreEqual(0, infoRun.Exit, Describe(infoRun));
        StringAssert.Contains(infoRun.Output, "training checkpoint");
        StringAssert.Contains(infoRun.Output, "images stored at 32x32, input [3, 28, 28]");
        var infoZip = CliFixture.Run("info", Path.Combine(run, "model.zip"));
        Assert.AreEqual(0, infoZip.Exit, Describe(infoZip));
        StringAssert.Contains(infoZip.Output, "T-shirt_top");
    }

    [TestMethod]
    public void TrainHelpListsEveryRegisteredBackboneAndObjective()
    {
        var help = CliFixture.Run("train", "--help");
        Assert.AreEqual(0, help.Exit, Describe(help));
        foreach (var backbone in DualHeadRegistry.Backbones.Names) StringAssert.Contains(help.Output, backbone);
        foreach (var objective in DualHeadRegistry.Objectives.Names) StringAssert.Contains(help.Output, objective);
        StringAssert.Contains(help.Output, "--time-budget");
        StringAssert.Contains(help.Output, "Exit codes");
        var wrong = CliFixture.Run("train", "--epochs", "many");
        Assert.AreEqual(2, wrong.Exit, Describe(wrong));
        StringAssert.Contains(wrong.Error, "--epochs");
        var budget = CliFixture.Run("train", "--time-budget", "soon", "--output", "x");
        Assert.AreEqual(2, budget.Exit, Describe(budget));
        StringAssert.Contains(budget.Error, "not a duration");
    }
}
