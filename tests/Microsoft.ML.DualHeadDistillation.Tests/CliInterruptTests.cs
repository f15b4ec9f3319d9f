using System.Diagnostics;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Ctrl+C in a real pseudo-terminal (tmux send-keys C-c): `dualhead train` stops within a step, writes a resumable
/// checkpoint, says how to resume, exits 130; `--resume` finishes to the weights of an uninterrupted run.
/// </summary>
[TestClass]
public sealed class CliInterruptTests
{
    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    private static (int Exit, string Output) Tmux(params string[] args)
    {
        var start = new ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    [TestMethod]
    public void CtrlCInATerminalLeavesACheckpointThatResumesToTheUninterruptedWeights()
    {
        Assert.AreEqual(0, Tmux("-V").Exit, "tmux is required (bash scripts/install-test-tools.sh installs it)");
        using var dir = new TempDir();
        string[] extra = ["--labeled-batch", "16", "--unlabeled-batch", "16"];
        string full = Path.Combine(dir.Path, "full");
        var uninterrupted = CliFixture.Run(CliFixture.TrainArgs(full, 4, extra));
        Assert.AreEqual(0, uninterrupted.Exit, Describe(uninterrupted));

        // The same run in a tmux session (a real terminal: live progress), stopped with Ctrl+C during epoch 2.
        string stopped = Path.Combine(dir.Path, "stopped");
        string session = "dualhead-" + Guid.NewGuid().ToString("N")[..8];
        string log = Path.Combine(dir.Path, "pane.txt"), exitFile = Path.Combine(dir.Path, "exit.txt");
        string command = string.Join(' ', new[] { "dotnet", CliFixture.Tool }.Concat(CliFixture.TrainArgs(stopped, 4, extra)).Select(Quote))
            + $"; echo $? > {Quote(exitFile)}; sleep 600";
        Assert.AreEqual(0, Tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50", command).Exit);
        try
        {
            var watch = Stopwatch.StartNew();
            string pane = "";
            while (watch.Elapsed < TimeSpan.FromMinutes(5))
            {
                pane = Tmux("capture-pane", "-p", "-t", session).Output;
                if (pane.Contains("epoch 2/4 step")) break;
                Thread.Sleep(100);
            }
            StringAssert.Contains(pane, "epoch 2/4 step", "live progress shows the training step");
            Assert.AreEqual(0, Tmux("send-keys", "-t", session, "C-c").Exit);
            while (!File.Exists(exitFile) && watch.Elapsed < TimeSpan.FromMinutes(6)) Thread.Sleep(100);
            pane = Tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", session).Output;
            File.WriteAllText(log, pane);
            Assert.IsTrue(File.Exists(exitFile), $"the tool did not stop after Ctrl+C:\n{pane}");
            Assert.AreEqual("130", File.ReadAllText(exitFile).Trim(), pane);
            StringAssert.Contains(pane, "dualhead train --resume", "it says how to resume");
        }
        finally
        {
            Tmux("kill-session", "-t", session);
        }
        var checkpoint = DualHeadCheckpoint.Load(Path.Combine(stopped, "checkpoint.zip"));
        Assert.IsTrue(checkpoint.CompletedEpochs is >= 1 and < 4, $"stopped before the end: {checkpoint.CompletedEpochs} epochs + {checkpoint.StepsIntoEpoch} steps");
        Assert.IsFalse(File.Exists(Path.Combine(stopped, "model.zip")), "an interrupted run has no model yet");

        var resumed = CliFixture.Run("train", "--resume", stopped);
        Assert.AreEqual(0, resumed.Exit, Describe(resumed));
        StringAssert.Contains(resumed.Output, "Resuming");
        using var a = DualHeadCheckpoint.Load(Path.Combine(full, "checkpoint.zip")).ToModel();
        using var b = DualHeadCheckpoint.Load(Path.Combine(stopped, "checkpoint.zip")).ToModel();
        CollectionAssert.AreEqual(SyntheticData.Weights(a), SyntheticData.Weights(b), "resumed weights differ from the uninterrupted run's");
        Assert.AreEqual(a.Alpha, b.Alpha);
        Assert.AreEqual(a.Beta, b.Beta);
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(full, "student.onnx")), File.ReadAllBytes(Path.Combine(stopped, "student.onnx")), "the same student.onnx");
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";
}
