using System.Text.Json;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.Events;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Executes every code cell of the sample notebook in an in-process .NET Interactive C# kernel. The
/// notebook's <c>#r "nuget: ..."</c> lines are what a user runs in Jupyter / VS Code; here the same
/// assemblies come from the test's build output instead, and each named package is checked to be one
/// this repository builds or references.
/// </summary>
[TestClass]
public sealed class NotebookTests
{
    [TestMethod]
    public async Task SampleNotebookExecutes()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "notebooks", "dual-head-distillation.ipynb");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var cells = doc.RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.GetProperty("cell_type").GetString() == "code")
            .Select(c => string.Concat(c.GetProperty("source").EnumerateArray().Select(s => s.GetString())))
            .ToList();
        Assert.IsTrue(cells.Count >= 5, "the notebook should have its code cells");

        using var kernel = new CSharpKernel();
        foreach (var dll in Directory.GetFiles(AppContext.BaseDirectory, "*.dll")
                     .Where(f => Path.GetFileName(f) is var n && (n.StartsWith("Microsoft.ML") || n.StartsWith("TorchSharp"))))
            await Submit(kernel, $"#r \"{dll}\"");

        var known = new[] { "Microsoft.ML", "Microsoft.ML.DualHeadDistillation", "libtorch-cpu-linux-x64" };
        var returned = new List<object>();
        foreach (var cell in cells)
        {
            var lines = cell.Split('\n');
            foreach (var nuget in lines.Where(l => l.TrimStart().StartsWith("#r \"nuget:")))
            {
                string package = nuget.Split(':', 2)[1].Split(',')[0].Trim(' ', '"');
                CollectionAssert.Contains(known, package, $"the notebook references {package}, which the tests do not provide");
            }
            string code = string.Join('\n', lines.Where(l => !l.TrimStart().StartsWith("#r \"nuget:")));
            if (!string.IsNullOrWhiteSpace(code) && await Submit(kernel, code) is { } value) returned.Add(value);
        }

        static Dictionary<string, object?> Properties(object o) => o.GetType().GetProperties().Where(p => p.GetIndexParameters().Length == 0).ToDictionary(p => p.Name, p => p.GetValue(o));
        var results = returned.Select(Properties).ToList();
        var accuracies = results.SingleOrDefault(r => r.ContainsKey("Dho"))?.ToDictionary(kv => kv.Key, kv => (double)kv.Value!);
        Assert.IsNotNull(accuracies, "a cell returns the accuracies (Teacher, Dho, CeHead, KdHead)");
        Console.WriteLine(string.Join(", ", accuracies.Select(kv => $"{kv.Key} {kv.Value:P2}")));
        Assert.IsTrue(accuracies["Dho"] > 0.6, $"DHO accuracy {accuracies["Dho"]:P2}");
        Assert.IsTrue(accuracies["Dho"] > accuracies["CeHead"], "the combined prediction should beat the CE head with 10 labels per class");

        var deployment = results.SingleOrDefault(r => r.ContainsKey("ReloadedMaxAbsDiff"));
        Assert.IsNotNull(deployment, "the save/reload/export cell returns its checks");
        Console.WriteLine(string.Join(", ", deployment.Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.AreEqual(0.0, (double)deployment["ReloadedMaxAbsDiff"]!, "the reloaded model scores differently");
        Assert.AreEqual(accuracies["Dho"], (double)deployment["ReloadedAccuracy"]!);
        Assert.IsTrue((long)deployment["StudentOnnxBytes"]! > 100_000);
    }

    private static async Task<object?> Submit(Kernel kernel, string code)
    {
        var result = await kernel.SendAsync(new SubmitCode(code));
        var failure = result.Events.OfType<CommandFailed>().FirstOrDefault();
        if (failure is not null) Assert.Fail($"Notebook cell failed: {failure.Message}\n--- cell ---\n{code}");
        return result.Events.OfType<ReturnValueProduced>().LastOrDefault()?.Value;
    }
}
