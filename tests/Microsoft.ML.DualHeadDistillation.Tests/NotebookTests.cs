using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Runs every notebook in samples/notebooks the way a user does: the library is packed into a local feed
/// (<c>dotnet pack</c>), and Jupyter's nbconvert executes the committed .ipynb, cells unchanged, with the .NET
/// Interactive kernel (<c>.net-csharp</c>). The package source reaches the notebook through DUALHEADML_PACKAGES,
/// the variable its first cell reads (default: the repository's artifacts/packages). The kernel gets its own
/// NuGet global packages folder (NUGET_PACKAGES): links to the user's packages, without DualHeadML, so the
/// freshly packed 0.1.0 is extracted, never a stale cached 0.1.0, and nothing is downloaded again.
/// Needs jupyter-nbconvert, python3-ipykernel and the Microsoft.dotnet-interactive tool (.ci/run installs them).
/// </summary>
[TestClass]
public sealed class NotebookTests
{
    private static string Metadata(string key) =>
        typeof(NotebookTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    private static string RepositoryRoot => Metadata("RepositoryRoot");

    [TestMethod]
    [Timeout(1_800_000)]
    public void SampleNotebooksRunInJupyterFromAPackedPackage()
    {
        var notebooks = Directory.GetFiles(Path.Combine(RepositoryRoot, "samples", "notebooks"), "*.ipynb");
        Assert.IsTrue(notebooks.Length >= 1, "samples/notebooks should hold the notebooks");
        RequireJupyter();
        string work = Path.Combine(Path.GetTempPath(), $"dualheadml-notebooks-{Guid.NewGuid():N}");
        try
        {
            string feed = Pack(work);
            foreach (var notebook in notebooks)
            {
                var watch = Stopwatch.StartNew();
                var (exit, cells, error) = Execute(notebook, work, feed);
                string failures = string.Join("\n", cells.Select((c, i) => (c, i)).Where(x => x.c.Errors.Length > 0).Select(x => $"code cell {x.i + 1}: {x.c.Errors}"));
                Assert.AreEqual(0, exit, $"jupyter nbconvert failed on {Path.GetFileName(notebook)}:\n{failures}\n{Tail(error)}");
                Assert.AreEqual("", failures, "cells reported errors");
                Assert.IsTrue(cells.Count > 0, "the executed notebook has code cells");
                Console.WriteLine($"{Path.GetFileName(notebook)}: executed in {watch.Elapsed.TotalSeconds:F0} s");
                switch (Path.GetFileName(notebook))
                {
                    case "dual-head-distillation.ipynb": CheckDualHeadNotebook(cells); break;
                    case "when-two-heads-pay-off.ipynb": CheckTwoHeadsNotebook(cells); break;
                    case "clip-image-folder.ipynb": CheckClipNotebook(cells); break;
                    default: Assert.Fail($"{Path.GetFileName(notebook)} has no checks in NotebookTests: add what its cells must print."); break;
                }
            }
            // On Debian 12 / Ubuntu 22.04 nothing patched TorchSharp's library in the kernel's packages folder: the
            // library's run-time fix must have cached and loaded its copy (NativeLibraryTests covers the details).
            if (OperatingSystem.IsLinux() && !File.ReadAllText(Native.TorchSharpNative.LoadedPath("libstdc++.so.6")!, Encoding.Latin1).Contains("GLIBCXX_3.4.32"))
            {
                string cache = Path.Combine(work, "native-cache");
                Assert.IsTrue(Directory.Exists(cache) && Directory.GetFiles(cache, "libLibTorchSharp.so", SearchOption.AllDirectories).Length == 1,
                    "the notebook's TorchSharp should have loaded the run-time fixed copy from DUALHEADML_NATIVE_CACHE");
            }
        }
        finally
        {
            DeleteWork(work);
        }
    }

    /// <summary>Without the package in the source folder, the first code cell stops the run and says what to run.</summary>
    [TestMethod]
    [Timeout(600_000)]
    public void NotebookWithoutThePackageSaysHowToMakeIt()
    {
        RequireJupyter();
        string work = Path.Combine(Path.GetTempPath(), $"dualheadml-notebooks-{Guid.NewGuid():N}");
        try
        {
            string emptyFeed = Directory.CreateDirectory(Path.Combine(work, "empty-feed")).FullName;
            // nbconvert stops at the first failing cell (no later cell runs, so no package search reaches nuget.org)
            // and prints that cell and its error.
            var (exit, _, error) = Execute(Path.Combine(RepositoryRoot, "samples", "notebooks", "dual-head-distillation.ipynb"), work, emptyFeed);
            Assert.AreNotEqual(0, exit, "the notebook should fail without the package");
            var message = Regex.Match(error, @"FileNotFoundException: DualHeadML\.0\.1\.0\.nupkg is not in .*");
            Assert.IsTrue(message.Success, $"the first cell's message is missing:\n{Tail(error)}");
            Console.WriteLine($"first cell: {message.Value}");
            StringAssert.Contains(message.Value, "DualHeadML.0.1.0.nupkg is not in " + emptyFeed);
            StringAssert.Contains(message.Value, "dotnet pack src/Microsoft.ML.DualHeadDistillation -c Release -o artifacts/packages");
            StringAssert.Contains(message.Value, "DUALHEADML_PACKAGES");
            StringAssert.Contains(error, "var packageSource = Environment.GetEnvironmentVariable(\"DUALHEADML_PACKAGES\")", "the failing cell should be the package-source cell");
        }
        finally
        {
            DeleteWork(work);
        }
    }

    private static void CheckDualHeadNotebook(List<CellOutput> cells)
    {
        string all = string.Join("\n", cells.Select(c => c.Text));
        var accuracy = Regex.Match(all, @"accuracy: teacher ([0-9.]+), DHO ([0-9.]+), CE head ([0-9.]+), KD head ([0-9.]+)");
        Assert.IsTrue(accuracy.Success, "the evaluation cell prints the accuracies:\n" + all);
        double F(Match m, int g) => double.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
        double teacher = F(accuracy, 1), dho = F(accuracy, 2), ce = F(accuracy, 3), kd = F(accuracy, 4);
        Console.WriteLine($"teacher {teacher:P2}, DHO {dho:P2}, CE head {ce:P2}, KD head {kd:P2}");
        Assert.IsTrue(teacher > 0.6, $"teacher accuracy {teacher:P2}");
        Assert.IsTrue(dho > 0.6, $"DHO accuracy {dho:P2}");
        Assert.IsTrue(dho > ce, "the combined prediction should beat the CE head with 10 labels per class");

        var deployment = Regex.Match(all, @"deployment: reloaded max \|diff\| ([0-9.Ee+-]+), reloaded accuracy ([0-9.]+), zip (\d+) bytes, student ONNX (\d+) bytes");
        Assert.IsTrue(deployment.Success, "the save/reload/export cell prints its checks:\n" + all);
        Console.WriteLine(deployment.Value);
        Assert.AreEqual(0.0, F(deployment, 1), "the reloaded model scores differently");
        Assert.AreEqual(dho, F(deployment, 2), 1e-9, "the reloaded model's accuracy");
        Assert.IsTrue(long.Parse(deployment.Groups[4].Value) > 100_000, "the student ONNX file");
        StringAssert.Contains(all, "labeled, 3000 unlabeled student rows");
    }

    private static double F(Match m, int g) => double.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);

    /// <summary>The confused-teacher comparison: DHO recovers the classes the teacher gets wrong; the plots are SVG in the notebook.</summary>
    private static void CheckTwoHeadsNotebook(List<CellOutput> cells)
    {
        string all = string.Join("\n", cells.Select(c => c.Text));
        var teacher = Regex.Match(all, @"teacher: test accuracy ([0-9.]+); Shirt (\d+) %, Coat (\d+) %");
        Assert.IsTrue(teacher.Success, all);
        Assert.IsTrue(F(teacher, 2) <= 5 && F(teacher, 3) <= 5, $"the teacher confuses Shirt and Coat: {teacher.Value}");
        var accuracy = Regex.Match(all, @"test accuracy: teacher ([0-9.]+), SupervisedOnly ([0-9.]+), SingleHeadKd ([0-9.]+), DualHead ([0-9.]+)");
        Assert.IsTrue(accuracy.Success, all);
        Console.WriteLine(accuracy.Value);
        Assert.IsTrue(F(accuracy, 4) > F(accuracy, 3), $"DHO beats single-head KD with a confused teacher: {accuracy.Value}");
        var confused = Regex.Match(all, @"on the confused classes \(Shirt, Coat\): teacher ([0-9.]+) ([0-9.]+), SingleHeadKd ([0-9.]+) ([0-9.]+), DualHead ([0-9.]+) ([0-9.]+)");
        Assert.IsTrue(confused.Success, all);
        Assert.IsTrue(F(confused, 5) + F(confused, 6) > F(confused, 3) + F(confused, 4) + 0.1, $"DHO recovers the confused classes: {confused.Value}");
        Assert.AreEqual(2, cells.Sum(c => Regex.Matches(c.Html, "<svg ").Count), "two plots rendered as SVG in the notebook");
        StringAssert.Contains(all, "alpha sweep: KD head alone");
    }

    /// <summary>The CLIP folder notebook, run with the tiny CLIP fixture (random weights): every step runs, the saved model scores as the trained one.</summary>
    private static void CheckClipNotebook(List<CellOutput> cells)
    {
        string all = string.Join("\n", cells.Select(c => c.Text));
        StringAssert.Contains(all, "10 classes (Ankle_boot, Bag, Coat");
        StringAssert.Contains(all, "100 labeled, 2000 unlabeled, 500 test images");
        StringAssert.Contains(all, "CLIP zero-shot on the test images:");
        var accuracy = Regex.Match(all, @"test accuracy: CLIP teacher ([0-9.]+), DHO ([0-9.]+), CE head ([0-9.]+), KD head ([0-9.]+)");
        Assert.IsTrue(accuracy.Success, all);
        Console.WriteLine(accuracy.Value);
        Assert.IsTrue(F(accuracy, 3) > 0.4, $"the CE head learns from the 100 labels (the fixture CLIP is random): {accuracy.Value}");
        var saved = Regex.Match(all, @"max \|score difference\| saved vs trained ([0-9.Ee+-]+)");
        Assert.IsTrue(saved.Success, all);
        Assert.IsTrue(F(saved, 1) <= 1e-5, saved.Value);
    }

    private sealed record CellOutput(string Text, string Errors, string Html = "");

    private static void RequireJupyter()
    {
        var (exit, output, error) = Run("jupyter", ["kernelspec", "list"], null, null, 60_000);
        if (exit != 0 || !output.Contains(".net-csharp"))
            Assert.Fail("Jupyter with the .NET Interactive C# kernel is required (bash .ci/run installs it: apt-get install jupyter-nbconvert " +
                $"python3-ipykernel jupyter-client; dotnet tool install -g Microsoft.dotnet-interactive --version 1.0.712001; dotnet interactive jupyter install). " +
                $"`jupyter kernelspec list` gave exit {exit}: {output}{error}");
    }

    /// <summary>dotnet pack of the library as built for these tests (the repository's version, 0.1.0) into a temporary feed.</summary>
    /// <summary>A tiny CLIP (random weights, the Hugging Face naming) for the CLIP notebook: what a user's CLIP_DIR holds.</summary>
    private static string TinyClip(string work)
    {
        string dir = Path.Combine(work, "clip");
        if (Directory.Exists(dir)) return dir;
        Directory.CreateDirectory(dir);
        var (vocab, merges, ids) = TeacherFixtures.ClipVocabulary(dir, ["photo", "shirt", "boot"]);
        File.WriteAllBytes(Path.Combine(dir, "text.onnx"), DualHeadML.Samples.Onnx.TinyOnnxModels.ClipTextEncoder(TeacherFixtures.RandomMatrix(ids.Count, 16, 5)));
        File.WriteAllBytes(Path.Combine(dir, "image.onnx"), DualHeadML.Samples.Onnx.TinyOnnxModels.ClipImageEncoder(TeacherFixtures.RandomMatrix(3 * 28 * 28, 16, 3), 3, 28, 28));
        return dir;
    }

    internal static string Pack(string work)
    {
        string feed = Path.Combine(work, "packages");
        string project = Path.Combine(RepositoryRoot, "src", "Microsoft.ML.DualHeadDistillation", "Microsoft.ML.DualHeadDistillation.csproj");
        var (exit, output, error) = Run("dotnet", ["pack", project, "-c", Metadata("Configuration"), "--no-build", "-o", feed], null, null, 300_000);
        Assert.AreEqual(0, exit, $"dotnet pack failed:\n{output}\n{error}");
        Assert.IsTrue(File.Exists(Path.Combine(feed, "DualHeadML.0.1.0.nupkg")), $"dotnet pack wrote no DualHeadML.0.1.0.nupkg:\n{output}");
        return feed;
    }

    /// <summary>Executes the committed notebook with nbconvert into work/ and returns each code cell's text and errors.</summary>
    private static (int Exit, List<CellOutput> Cells, string Error) Execute(string notebook, string work, string feed)
    {
        string packages = LinkedPackagesFolder(work);
        string outDir = Directory.CreateDirectory(Path.Combine(work, "executed")).FullName;
        string name = Path.GetFileNameWithoutExtension(notebook);
        var args = new List<string> { "nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.kernel_name=.net-csharp",
            "--ExecutePreprocessor.timeout=1200", "--output-dir", outDir, "--output", name, notebook };
        var env = new Dictionary<string, string?>
        {
            ["DUALHEADML_PACKAGES"] = feed,
            ["CLIP_DIR"] = TinyClip(work),
            ["NUGET_PACKAGES"] = packages,
            ["DUALHEADML_NATIVE_CACHE"] = Path.Combine(work, "native-cache"),
            ["DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT"] = "1",
            ["PATH"] = Environment.GetEnvironmentVariable("PATH") + Path.PathSeparator + Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools"),
        };
        var (exit, output, error) = Run("jupyter", args, Path.GetDirectoryName(notebook), env, 1_500_000);
        string executed = Path.Combine(outDir, name + ".ipynb");
        var cells = File.Exists(executed) ? ReadOutputs(executed) : [];
        return (exit, cells, error);
    }

    private static string Tail(string s) => s.Length > 6000 ? s[^6000..] : s;

    private static List<CellOutput> ReadOutputs(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var result = new List<CellOutput>();
        foreach (var cell in doc.RootElement.GetProperty("cells").EnumerateArray())
        {
            if (cell.GetProperty("cell_type").GetString() != "code") continue;
            var text = new StringBuilder();
            var errors = new StringBuilder();
            var html = new StringBuilder();
            foreach (var o in cell.GetProperty("outputs").EnumerateArray())
            {
                string kind = o.GetProperty("output_type").GetString()!;
                if (kind == "error")
                    errors.Append(o.GetProperty("ename").GetString()).Append(": ").AppendLine(o.GetProperty("evalue").GetString());
                else if (kind == "stream")
                    text.Append(Join(o.GetProperty("text")));
                else if (o.TryGetProperty("data", out var data))
                {
                    if (data.TryGetProperty("text/plain", out var plain)) text.AppendLine(Join(plain));
                    if (data.TryGetProperty("text/html", out var markup)) html.AppendLine(Join(markup));
                }
            }
            result.Add(new CellOutput(text.ToString(), errors.ToString(), html.ToString()));
        }
        return result;
    }

    private static string Join(JsonElement e) => e.ValueKind == JsonValueKind.Array ? string.Concat(e.EnumerateArray().Select(x => x.GetString())) : e.GetString() ?? "";

    /// <summary>
    /// A NuGet global packages folder for the kernel: a symbolic link to each package of the user's folder except
    /// DualHeadML, so restore finds ML.NET, TorchSharp and libtorch at once and extracts the packed DualHeadML fresh.
    /// </summary>
    internal static string LinkedPackagesFolder(string work)
    {
        string folder = Path.Combine(work, "nuget-packages");
        if (Directory.Exists(folder)) return folder;
        Directory.CreateDirectory(folder);
        string user = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        if (Directory.Exists(user))
            foreach (var package in Directory.GetDirectories(user).Where(d => !Path.GetFileName(d).StartsWith("dualheadml", StringComparison.OrdinalIgnoreCase))) // DualHeadML and DualHeadML.Cli
                Directory.CreateSymbolicLink(Path.Combine(folder, Path.GetFileName(package)), package);
        return folder;
    }

    /// <summary>Deletes the temporary folder; links are removed as links, never followed into the user's packages.</summary>
    internal static void DeleteWork(string work)
    {
        string links = Path.Combine(work, "nuget-packages");
        if (Directory.Exists(links))
            foreach (var entry in new DirectoryInfo(links).EnumerateFileSystemInfos())
                if (entry.LinkTarget is not null) entry.Delete();
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
    }

    internal static (int Exit, string Output, string Error) Run(string file, IEnumerable<string> args, string? directory, IReadOnlyDictionary<string, string?>? env, int timeoutMs)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (directory is not null) start.WorkingDirectory = directory;
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string?>()) start.Environment[k] = v;
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, "", $"{file} could not be started: {e.Message}");
        }
        using (process)
        {
            var error = process.StandardError.ReadToEndAsync();
            var output = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(timeoutMs))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"{file} {string.Join(' ', args)} did not finish in {timeoutMs / 1000} s");
            }
            return (process.ExitCode, output.Result, error.Result);
        }
    }
}
