using System.Diagnostics;
using System.Text.Json;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>`dualhead train --search` end to end on the small folder dataset: stopped by SIGINT (Ctrl+C) during the search, resumed, leaderboard in the report.</summary>
[TestClass]
public sealed class CliSearchTests
{
    public TestContext TestContext { get; set; } = null!;

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
        // the best 10 / 3 = 3 for 3 epochs: 13 trials, none run twice.
        var metrics = CliFixture.Json(Path.Combine(output, "metrics.json"));
        var search = metrics.GetProperty("search");
        var board = search.GetProperty("leaderboard").EnumerateArray().ToArray();
        Assert.AreEqual(13, board.Length);
        Assert.AreEqual(13, before + after, resumed.Output);
        Assert.AreEqual(10, board.Count(t => t.GetProperty("epochs").GetInt32() == 1));
        Assert.AreEqual(3, board.Count(t => t.GetProperty("epochs").GetInt32() == 3));
        var best = board[0];
        Assert.AreEqual(best.GetProperty("configuration").GetString(), search.GetProperty("best").GetString());
        Assert.AreEqual(best.GetProperty("validation_accuracy").GetDouble(), board.Where(t => t.GetProperty("rung").GetInt32() == 1).Max(t => t.GetProperty("validation_accuracy").GetDouble()));
        var finalSpec = CliFixture.Json(Path.Combine(output, "run.json")).GetProperty("Settings");
        var bestConfiguration = search.GetProperty("best_configuration");
        Assert.AreEqual(bestConfiguration.GetProperty("objective").GetString(), finalSpec.GetProperty("Objective").GetString(), "the final run trains the best");
        Assert.AreEqual(bestConfiguration.GetProperty("learning_rate").GetSingle(), finalSpec.GetProperty("LearningRate").GetSingle());
        Assert.AreEqual(bestConfiguration.GetProperty("temperature").GetSingle(), finalSpec.GetProperty("Temperature").GetSingle());
        Assert.IsFalse(Directory.Exists(Path.Combine(output, "trials")), "the trials' shared work is removed");

        string md = File.ReadAllText(Path.Combine(output, "report.md"));
        StringAssert.Contains(md, "## Search leaderboard (13 trials");
        StringAssert.Contains(md, "plots/search.svg");
        var page = HeadlessChromium.Open(Path.Combine(output, "report.html"), TimeSpan.FromSeconds(60));
        Assert.AreEqual(Directory.GetFiles(Path.Combine(output, "plots"), "*.svg").Length, page.Images);
        Assert.AreEqual(page.Images, page.LoadedImages, "every plot image loaded");
        Assert.AreEqual(0, page.Errors.Count, string.Join("\n", page.Errors));
    }
}
