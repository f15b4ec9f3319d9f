using System.Globalization;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Cli.Labeling;

/// <summary>
/// Which shard a `dualhead label` process labels: --shard I/N; else a Kubernetes Indexed Job's JOB_COMPLETION_INDEX with N
/// from --shards or JOB_COMPLETIONS (the manifest sets it to the Job's completions); else the whole input (0/1).
/// </summary>
public static class ShardSelection
{
    public const string IndexVariable = "JOB_COMPLETION_INDEX", CountVariable = "JOB_COMPLETIONS";

    /// <summary>The shard, and whether it was asked for (false: a single-process run over the whole input).</summary>
    public static (SoftLabelShard Shard, bool Sharded) Resolve(string? shardOption, int? shardsOption, Func<string, string?> environment)
    {
        if (shardOption is not null)
        {
            if (shardsOption is not null) throw new UsageException(ExitCodes.UsageError, "Give --shard I/N, or --shards N with the index from JOB_COMPLETION_INDEX; not both.");
            try
            {
                return (SoftLabelShard.Parse(shardOption, "--shard"), true);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(ExitCodes.UsageError, e.Message);
            }
        }
        string? index = environment(IndexVariable);
        if (string.IsNullOrEmpty(index))
        {
            if (shardsOption is not null) throw new UsageException(ExitCodes.UsageError, $"--shards {shardsOption} needs the shard index: give --shard I/N, or run as a Kubernetes Indexed Job ({IndexVariable} is not set).");
            return (SoftLabelShard.Whole, false);
        }
        if (!int.TryParse(index, NumberStyles.None, CultureInfo.InvariantCulture, out int i))
            throw new UsageException(ExitCodes.UsageError, $"{IndexVariable} is '{index}'; expected the 0-based shard index.");
        int n;
        if (shardsOption is { } given) n = given;
        else
        {
            string? count = environment(CountVariable);
            if (string.IsNullOrEmpty(count))
                throw new UsageException(ExitCodes.UsageError, $"{IndexVariable} is {i} but the shard count is unknown: give --shards N, or set {CountVariable} to the Job's completions (deploy/k8s/label-job.yaml does).");
            if (!int.TryParse(count, NumberStyles.None, CultureInfo.InvariantCulture, out n))
                throw new UsageException(ExitCodes.UsageError, $"{CountVariable} is '{count}'; expected the number of shards.");
        }
        if (n < 1 || n > SoftLabelShard.MaxCount) throw new UsageException(ExitCodes.UsageError, $"The shard count {n} is not in 1..{SoftLabelShard.MaxCount}.");
        if (i >= n) throw new UsageException(ExitCodes.UsageError, $"Shard index {i} is not in 0..{n - 1} ({n} shards).");
        return (new SoftLabelShard(i, n), true);
    }
}
