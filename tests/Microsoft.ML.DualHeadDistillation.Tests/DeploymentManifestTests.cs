using k8s;
using k8s.Models;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// deploy/: the Kubernetes manifests are checked against the Job schema of the official Kubernetes C# client (its models are
/// generated from the Kubernetes OpenAPI schema; strict parsing refuses any field the schema does not have), and against the
/// tool they run (every option they pass is one `dualhead label` has); the Dockerfiles build the tool that exists.
/// (`kubectl apply --dry-run=client` and `docker build` need a cluster client and an engine this machine lacks.)
/// </summary>
[TestClass]
public sealed class DeploymentManifestTests
{
    private static string Root => typeof(DeploymentManifestTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
        .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!;

    private static V1Job Job(string file) => KubernetesYaml.Deserialize<V1Job>(File.ReadAllText(Path.Combine(Root, "deploy", "k8s", file)), strict: true);

    [TestMethod]
    public void TheLabelJobIsAStrictlyValidIndexedJobWhoseShardCountMatchesItsCompletions()
    {
        var job = Job("label-job.yaml");
        Assert.AreEqual("batch/v1", job.ApiVersion);
        Assert.AreEqual("Job", job.Kind);
        Assert.AreEqual("Indexed", job.Spec.CompletionMode, "each pod gets JOB_COMPLETION_INDEX");
        Assert.IsNotNull(job.Spec.Completions);
        Assert.IsTrue(job.Spec.Parallelism is > 0 && job.Spec.Parallelism <= job.Spec.Completions);
        Assert.IsNotNull(job.Spec.BackoffLimitPerIndex, "a failed pod is retried with its own index");
        Assert.AreEqual("Failed", job.Spec.PodReplacementPolicy, "a replacement pod starts only once the one it replaces has ended (it then removes that pod's temporary file)");
        var pod = job.Spec.Template.Spec;
        Assert.AreEqual("Never", pod.RestartPolicy, "backoffLimitPerIndex needs restartPolicy Never");
        var container = pod.Containers.Single();
        Assert.AreEqual("label", container.Args[0]);
        CollectionAssert.DoesNotContain(container.Args.ToList(), "--shard", "the index comes from JOB_COMPLETION_INDEX");
        var count = container.Env.Single(e => e.Name == "JOB_COMPLETIONS");
        Assert.AreEqual(job.Spec.Completions.ToString(), count.Value, "JOB_COMPLETIONS (the shard count) equals completions");
        Assert.IsTrue(container.Resources.Limits.ContainsKey("nvidia.com/gpu"), "one GPU per pod");
        string output = container.Args[container.Args.IndexOf("--output") + 1];
        Assert.IsTrue(container.VolumeMounts.Any(m => output.StartsWith(m.MountPath + "/", StringComparison.Ordinal) && m.ReadOnlyProperty != true), "the output folder is on a writable volume");
        foreach (var mount in container.VolumeMounts)
            Assert.IsTrue(pod.Volumes.Any(v => v.Name == mount.Name), $"volume mount '{mount.Name}' has a volume");
        AssertOptionsExist(container.Args, "label");
    }

    [TestMethod]
    public void TheMergeJobIsAStrictlyValidJobRunningLabelMergeOnTheLabelJobsOutput()
    {
        var label = Job("label-job.yaml");
        var merge = Job("merge-job.yaml");
        var container = merge.Spec.Template.Spec.Containers.Single();
        CollectionAssert.AreEqual(new[] { "label", "merge" }, container.Args.Take(2).ToArray());
        var labelArgs = label.Spec.Template.Spec.Containers.Single().Args;
        Assert.AreEqual(labelArgs[labelArgs.IndexOf("--output") + 1], container.Args[2], "merge reads the folder the shards were written to");
        Assert.AreEqual(label.Spec.Template.Spec.Volumes.Single(v => v.Name == "data").PersistentVolumeClaim.ClaimName,
            merge.Spec.Template.Spec.Volumes.Single(v => v.Name == "data").PersistentVolumeClaim.ClaimName);
        AssertOptionsExist(container.Args.Skip(3).ToList(), "label", "merge");
    }

    [TestMethod]
    public void StrictParsingRefusesAFieldTheJobSchemaDoesNotHave()
    {
        string text = File.ReadAllText(Path.Combine(Root, "deploy", "k8s", "label-job.yaml")).Replace("completionMode: Indexed", "completionMod: Indexed");
        Assert.ThrowsExactly<YamlDotNet.Core.YamlException>(() => KubernetesYaml.Deserialize<V1Job>(text, strict: true), "the check can fail");
    }

    [TestMethod]
    public void TheDockerfilesPublishTheToolThatExists()
    {
        string csproj = File.ReadAllText(Path.Combine(Root, "src", "DualHeadML.Cli", "DualHeadML.Cli.csproj"));
        StringAssert.Contains(csproj, "<AssemblyName>dualhead</AssemblyName>");
        foreach (var (file, gpu) in new[] { ("Dockerfile", false), ("Dockerfile.gpu", true) })
        {
            var lines = File.ReadAllLines(Path.Combine(Root, "deploy", "docker", file));
            var publish = lines.Single(l => l.Contains("dotnet publish", StringComparison.Ordinal));
            StringAssert.Contains(publish, "src/DualHeadML.Cli/DualHeadML.Cli.csproj");
            Assert.IsTrue(File.Exists(Path.Combine(Root, "src", "DualHeadML.Cli", "DualHeadML.Cli.csproj")));
            Assert.AreEqual(gpu, publish.Contains("-p:DualHeadGpu=true", StringComparison.Ordinal), file);
            StringAssert.Contains(lines.Single(l => l.StartsWith("ENTRYPOINT", StringComparison.Ordinal)), "\"/app/dualhead.dll\"");
        }
        StringAssert.Contains(csproj, "Condition=\"'$(DualHeadGpu)' == 'true'\"", "the GPU build swaps ONNX Runtime's native library");
    }

    /// <summary>Every --option in <paramref name="args"/> is listed by `dualhead VERB --help`.</summary>
    private static void AssertOptionsExist(IList<string> args, params string[] verb)
    {
        var help = ChildProcess.Run(CliFixture.Tool, [.. verb, "--help"]);
        Assert.AreEqual(0, help.Exit, help.Error);
        foreach (var option in args.Where(a => a.StartsWith("--", StringComparison.Ordinal)))
            Assert.IsTrue(System.Text.RegularExpressions.Regex.IsMatch(help.Output, $@"(?<![\w-]){System.Text.RegularExpressions.Regex.Escape(option)}(?![\w-])"),
                $"dualhead {string.Join(' ', verb)} has {option} (as a whole option, not a prefix of another)");
    }
}
