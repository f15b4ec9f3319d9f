using System.Diagnostics;
using System.Text.Json;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>`dualhead train --search` end to end on the small folder dataset: stopped by SIGINT (Ctrl+C) during the search, resumed, leaderboard in the report.</summary>
[TestClass]
public sealed class CliSearchTests
{
    public TestContext TestContext { get; set; } = null!;

    private static string Describe(JsonElement arm) => FormattableString.Invariant(
        $"{arm.GetProperty("Objective").GetString()}, {arm.GetProperty("Backbone").GetString()}, lr {arm.GetProperty("LearningRate").GetSingle():0.#####}, T {arm.GetProperty("Temperature").GetSingle():0.##}");

    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    [TestMethod]
    public void ASearchStoppedByCtrlCResumesWithoutRepeatingItsTrialsAndReportsTheLeaderboard()
    {
        using var dir = new TempDir();
        string output = Path.Combine(dir.Path, "search");
        var args = CliFixture.TrainArgs(output, 1, "--search", "--no-augment").Prepend("--plain").ToArray();

        // Stop it (SIGINT, what Ctrl+C sends) once three trials are done.
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { CliFixture.Tool }.Concat(args)) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var lines = new List<string>();
        var stderr = process.StandardError.ReadToEndAsync();
        bool signalled = false;
        while (process.StandardOutput.ReadLine() is { } line)
        {
            lines.Add(line);
            if (!signalled && line.StartsWith("trial 3:", StringComparison.Ordinal))
            {
                using var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                kill.WaitForExit();
                signalled = true;
            }
        }
        Assert.IsTrue(process.WaitForExit(120_000));
        string first = string.Join('\n', lines) + "\n" + stderr.Result;
        Assert.IsTrue(signalled, first);
        Assert.AreEqual(130, process.ExitCode, first);
        StringAssert.Contains(first, $"dualhead train --search --resume {output}");
        using (var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "search.json"))))
            Assert.IsTrue(state.RootElement.GetProperty("Trials").GetArrayLength() >= 3, "the finished trials are kept");
        Assert.IsFalse(File.Exists(Path.Combine(output, "model.zip")));
        int before = lines.Count(l => l.StartsWith("trial ", StringComparison.Ordinal));

        var plain = CliFixture.Run("train", "--resume", output);
        Assert.AreEqual(2, plain.Exit, Describe(plain));
        StringAssert.Contains(plain.Error + plain.Output, $"holds a search (search.json); resume it with --search --resume {output}");

        var resumed = CliFixture.Run("--plain", "train", "--search", "--resume", output);
        Assert.AreEqual(0, resumed.Exit, Describe(resumed));
        StringAssert.Contains(resumed.Output, $"{before} trials done before");
        int after = resumed.Output.Split('\n').Count(l => l.StartsWith("trial ", StringComparison.Ordinal));

        // 10 configurations (DHO and single-head KD at 2 learning rates x 2 temperatures, supervised at 2) for 1 epoch,
        // the best 10 / 3 = 3 for 3 epochs, and the configuration without a search for 3 epochs when halving dropped it:
        // 13 or 14 trials, none run twice.
        var metrics = CliFixture.Json(Path.Combine(output, "metrics.json"));
        var search = metrics.GetProperty("search");
        var board = search.GetProperty("leaderboard").EnumerateArray().ToArray();
        var choice = search.GetProperty("choice");
        const string reference = "DualHead, SmallCnn, lr 0.001, T 2";
        Assert.AreEqual(reference, choice.GetProperty("reference").GetString());
        int referenceTrials = board.Count(t => t.GetProperty("epochs").GetInt32() == 3 && t.GetProperty("configuration").GetString() == reference);
        Assert.AreEqual(1, referenceTrials, "the configuration without a search is trained for the best's budget once");
        int total = board.Length;
        Assert.IsTrue(total is 13 or 14, $"{total} trials");
        Assert.AreEqual(total, before + after, resumed.Output);
        Assert.AreEqual(10, board.Count(t => t.GetProperty("epochs").GetInt32() == 1));
        Assert.AreEqual(total - 10, board.Count(t => t.GetProperty("epochs").GetInt32() == 3));
        var rung1 = board.Where(t => t.GetProperty("rung").GetInt32() == 1).ToArray();
        string halvingBest = choice.GetProperty("halving_best").GetString()!;
        Assert.AreEqual(rung1.Max(t => t.GetProperty("validation_accuracy").GetDouble()), choice.GetProperty("best_score").GetDouble());

        // The choice, recomputed from the trials' recorded outcomes: the best is kept only beyond 2 paired standard errors.
        using (var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "search.json"))))
        {
            var trials = state.RootElement.GetProperty("Trials").EnumerateArray().Where(t => t.GetProperty("Budget").GetInt32() == 3).ToArray();
            string Outcomes(string configuration) => trials.Single(t => Describe(t.GetProperty("Arm")) == configuration).GetProperty("Outcomes").GetString()!;
            string a = Outcomes(halvingBest), b = Outcomes(reference);
            Assert.AreEqual(40, a.Length, "one outcome per validation image");
            int onlyBest = a.Zip(b).Count(p => p.First == '1' && p.Second == '0'), onlyReference = a.Zip(b).Count(p => p.First == '0' && p.Second == '1');
            double se = Math.Sqrt(onlyBest + onlyReference - (onlyBest - onlyReference) * (onlyBest - onlyReference) / 40.0) / 40;
            double lead = (onlyBest - onlyReference) / 40.0;
            string expected = halvingBest != reference && lead > 2 * se && lead > 0 ? halvingBest : reference;
            Assert.AreEqual(expected, choice.GetProperty("kept").GetString(), choice.GetProperty("reason").GetString());
            Assert.AreEqual(expected, search.GetProperty("best").GetString());
        }
        StringAssert.Contains(choice.GetProperty("reason").GetString(), "fewer than 20", "4 validation images a class are flagged");
        var finalSpec = CliFixture.Json(Path.Combine(output, "run.json")).GetProperty("Settings");
        var bestConfiguration = search.GetProperty("best_configuration");
        Assert.AreEqual(bestConfiguration.GetProperty("objective").GetString(), finalSpec.GetProperty("Objective").GetString(), "the final run trains the best");
        Assert.AreEqual(bestConfiguration.GetProperty("learning_rate").GetSingle(), finalSpec.GetProperty("LearningRate").GetSingle());
        Assert.AreEqual(bestConfiguration.GetProperty("temperature").GetSingle(), finalSpec.GetProperty("Temperature").GetSingle());
        Assert.IsFalse(Directory.Exists(Path.Combine(output, "trials")), "the trials' shared work is removed");

        string md = File.ReadAllText(Path.Combine(output, "report.md"));
        StringAssert.Contains(md, $"## Search leaderboard ({total} trials");
        StringAssert.Contains(md, $"kept {search.GetProperty("best").GetString()}");
        StringAssert.Contains(md, "plots/search.svg");
        var page = HeadlessChromium.Open(Path.Combine(output, "report.html"), TimeSpan.FromSeconds(60));
        Assert.AreEqual(Directory.GetFiles(Path.Combine(output, "plots"), "*.svg").Length, page.Images);
        Assert.AreEqual(page.Images, page.LoadedImages, "every plot image loaded");
        Assert.AreEqual(0, page.Errors.Count, string.Join("\n", page.Errors));
    }
}
