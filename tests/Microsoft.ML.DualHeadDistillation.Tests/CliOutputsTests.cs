using System.Text.Json;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>What a user does with the outputs of `dualhead train`: open the report in a browser, build the generated project.</summary>
[TestClass]
public sealed class CliOutputsTests
{
    public TestContext TestContext { get; set; } = null!;

    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    [TestMethod]
    public void ReportHtmlOpensInHeadlessChromiumWithEveryPlotLoadedAndNoConsoleErrors()
    {
        var (run, _) = CliFixture.SharedRun;
        string html = Path.Combine(run, "report.html");
        var page = HeadlessChromium.Open(html, TimeSpan.FromSeconds(60));
        string screenshot = Path.Combine(TestContext.TestResultsDirectory ?? Path.GetTempPath(), "dualhead-report.png");
        File.WriteAllBytes(screenshot, page.Screenshot);
        TestContext.AddResultFile(screenshot);
        // teacher confusion (the diagnosis), loss per step, validation accuracy, gradient cosine (--gradient-cosine), per-class accuracy, confusion matrix, alpha/beta grid
        Assert.AreEqual(7, page.Images, "one image per plot");
        Assert.AreEqual(page.Images, page.LoadedImages, "every plot image loaded");
        Assert.AreEqual(0, page.Errors.Count, string.Join("\n", page.Errors));
        Assert.IsTrue(page.Screenshot.Length > 10_000, "a real screenshot");
        foreach (var svg in Directory.GetFiles(Path.Combine(run, "plots"), "*.svg"))
            Assert.IsFalse(File.ReadAllText(svg).Contains("OxyPlot exception", StringComparison.OrdinalIgnoreCase), $"{svg} holds an OxyPlot error");
        var md = File.ReadAllText(Path.Combine(run, "report.md"));
        foreach (var svg in Directory.GetFiles(Path.Combine(run, "plots"), "*.svg"))
            StringAssert.Contains(md, $"plots/{Path.GetFileName(svg)}");
    }

    /// <summary>
    /// One `dotnet pack` gives a pointer package and a tool package per platform (linux-x64, win-x64, osx-arm64), each
    /// with its own libtorch CPU backend and no other platform's; the Linux one installs and runs here (the Debian fix
    /// inside), the Windows and macOS builds publish.
    /// </summary>
    [TestMethod]
    public void TheToolPacksPerPlatformAndTheLinuxPackageInstallsAndRuns()
    {
        var (run, _) = CliFixture.SharedRun;
        string work = Path.Combine(Path.GetTempPath(), "dualhead-tool-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        try
        {
            string Metadata(string key) => typeof(NotebookTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
                .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
            string root = Metadata("RepositoryRoot");
            string project = Path.Combine(root, "src", "DualHeadML.Cli", "DualHeadML.Cli.csproj");
            string feed = Path.Combine(work, "feed"), tools = Path.Combine(work, "tools");
            var env = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = NotebookTests.LinkedPackagesFolder(work), ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
            var pack = NotebookTests.Run("dotnet", ["pack", project, "-c", Metadata("Configuration"), "-o", feed], root, env, 900_000);
            Assert.AreEqual(0, pack.Exit, Describe(pack));
            Assert.IsTrue(File.Exists(Path.Combine(feed, "DualHeadML.Cli.0.1.0.nupkg")), pack.Output);
            var natives = new Dictionary<string, string>
            {
                ["linux-x64"] = "libtorch_cpu.so", ["win-x64"] = "torch_cpu.dll", ["osx-arm64"] = "libtorch_cpu.dylib",
            };
            foreach (var (rid, native) in natives)
            {
                string package = Path.Combine(feed, $"DualHeadML.Cli.{rid}.0.1.0.nupkg");
                Assert.IsTrue(File.Exists(package), $"{package}\n{pack.Output}");
                using var zip = System.IO.Compression.ZipFile.OpenRead(package);
                var files = zip.Entries.Select(e => e.Name).ToHashSet();
                Assert.IsTrue(files.Contains(native), $"{rid}: its libtorch ({native})");
                foreach (var (other, otherNative) in natives.Where(n => n.Key != rid))
                    Assert.IsFalse(files.Contains(otherNative), $"{rid} holds {other}'s {otherNative}");
            }
            var install = NotebookTests.Run("dotnet", ["tool", "install", "--tool-path", tools, "DualHeadML.Cli", "--version", "0.1.0", "--add-source", feed], work, env, 900_000);
            Assert.AreEqual(0, install.Exit, Describe(install));
            StringAssert.Contains(install.Output, "dualhead");
            string dualhead = Path.Combine(tools, "dualhead");
            var help = NotebookTests.Run(dualhead, ["--help"], work, env, 120_000);
            Assert.AreEqual(0, help.Exit, Describe(help));
            foreach (var verb in new[] { "train", "label", "evaluate", "predict", "export", "info" }) StringAssert.Contains(help.Output, verb);
            // The installed tool scores with TorchSharp's native library loaded (info on a checkpoint builds the student).
            var info = NotebookTests.Run(dualhead, ["info", run], work, env, 120_000);
            Assert.AreEqual(0, info.Exit, Describe(info));
            StringAssert.Contains(info.Output, "training checkpoint");
            var predict = NotebookTests.Run(dualhead, ["predict", "--model", run, Directory.GetFiles(Path.Combine(CliFixture.Data.Test, "Bag"))[0]], work, env, 120_000);
            Assert.AreEqual(0, predict.Exit, Describe(predict));
            // Windows and macOS: the tool publishes with that platform's backend (it cannot run here).
            foreach (var rid in new[] { "win-x64", "osx-arm64" })
            {
                string output = Path.Combine(work, "publish-" + rid);
                var publish = NotebookTests.Run("dotnet", ["publish", project, "-c", Metadata("Configuration"), "-r", rid, "--self-contained", "false", "-o", output], root, env, 900_000);
                Assert.AreEqual(0, publish.Exit, Describe(publish));
                Assert.IsTrue(File.Exists(Path.Combine(output, natives[rid])), $"{rid}: {natives[rid]} published");
                Assert.IsFalse(File.Exists(Path.Combine(output, natives["linux-x64"])), $"{rid}: no Linux libtorch");
            }
        }
        finally
        {
            NotebookTests.DeleteWork(work);
            // The per-platform builds the pack and publish made in the tool's bin/ (about 1.3 GB) are not needed after.
            string bin = Path.Combine(TorchVisionFixtures.RepositoryRoot(), "src", "DualHeadML.Cli", "bin", typeof(NotebookTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
                .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "Configuration").Value!, "net10.0");
            foreach (var rid in new[] { "linux-x64", "win-x64", "osx-arm64" })
                try { if (Directory.Exists(Path.Combine(bin, rid))) Directory.Delete(Path.Combine(bin, rid), recursive: true); }
                catch (IOException) { }
        }
    }

    [TestMethod]
    public void TheGeneratedConsumptionProjectBuildsAndPredictsTheSameClassesAsPredict()
    {
        var (run, _) = CliFixture.SharedRun;
        string work = Path.Combine(Path.GetTempPath(), "dualhead-consumption-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        try
        {
            // A copy, as a user would take the run folder elsewhere: the project reads ../model.zip.
            string copy = Path.Combine(work, "run");
            Directory.CreateDirectory(copy);
            File.Copy(Path.Combine(run, "model.zip"), Path.Combine(copy, "model.zip"));
            string project = Path.Combine(copy, "consumption");
            Directory.CreateDirectory(project);
            foreach (var f in Directory.GetFiles(Path.Combine(run, "consumption"))) File.Copy(f, Path.Combine(project, Path.GetFileName(f)));
            StringAssert.Contains(File.ReadAllText(Path.Combine(project, "nuget.config")), "packages");
            var env = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = NotebookTests.LinkedPackagesFolder(work), ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
            var build = NotebookTests.Run("dotnet", ["build", "-c", "Release"], project, env, 600_000);
            Assert.AreEqual(0, build.Exit, Describe(build));

            var images = Directory.GetDirectories(CliFixture.Data.Test).Select(d => Directory.GetFiles(d).Order().First()).ToArray();
            var consumption = NotebookTests.Run("dotnet", ["run", "-c", "Release", "--no-build", "--", .. images], project, env, 300_000);
            Assert.AreEqual(0, consumption.Exit, Describe(consumption));
            var generated = consumption.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')).ToDictionary(f => f[0], f => f[1]);

            var predict = CliFixture.Run(["predict", "--model", run, "--json", .. images]);
            Assert.AreEqual(0, predict.Exit, Describe(predict));
            using var json = JsonDocument.Parse(predict.Output);
            var expected = json.RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("file").GetString()!, r => r.GetProperty("predicted").GetString()!);
            Assert.AreEqual(images.Length, generated.Count, consumption.Output);
            foreach (var image in images)
                Assert.AreEqual(expected[image], generated[image], $"{image}: the generated project and `dualhead predict` disagree");
        }
        finally
        {
            NotebookTests.DeleteWork(work);
        }
    }
}
