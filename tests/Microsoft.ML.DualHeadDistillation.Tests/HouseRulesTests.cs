namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The house rules that are checked (.editorconfig): src/ is whitespace-formatted and the tool stays an orchestrator.</summary>
[TestClass]
public sealed class HouseRulesTests
{
    private static string Root => TorchVisionFixtures.RepositoryRoot();

    [TestMethod]
    [DataRow("src/Microsoft.ML.DualHeadDistillation/Microsoft.ML.DualHeadDistillation.csproj")]
    [DataRow("src/DualHeadML.Cli/DualHeadML.Cli.csproj")]
    public void SourceIsFormattedAsEditorconfigSays(string project)
    {
        var r = NotebookTests.Run("dotnet", ["format", "whitespace", Path.Combine(Root, project), "--verify-no-changes"], Root,
            new Dictionary<string, string?> { ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" }, 300_000);
        Assert.AreEqual(0, r.Exit, $"`dotnet format whitespace {project}` would change files (run it):\n{r.Output}\n{r.Error}");
    }

    [TestMethod]
    public void TheToolsTrainCommandIsAnOrchestrator()
    {
        int lines = File.ReadAllLines(Path.Combine(Root, "src", "DualHeadML.Cli", "Training", "TrainRun.cs")).Length;
        Assert.IsTrue(lines <= 100, $"TrainRun.cs has {lines} lines: the run belongs in the library (DistillationRun)");
    }
}
