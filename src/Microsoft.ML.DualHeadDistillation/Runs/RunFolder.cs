using Microsoft.ML.DualHeadDistillation.Specs;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.DualHeadDistillation.Export;

namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>The files of a run folder, and run.json: the spec and what the run decided before training.</summary>
public static class RunFolder
{
    public const string Settings = "run.json", Model = "model.zip", Onnx = "student.onnx", Checkpoint = "checkpoint.zip", Work = ".work";

    /// <summary>What run.json holds (the property names of earlier versions are kept: "Settings" is the spec).</summary>
    internal sealed record RunFile(DistillationRunSpec Settings, string ListingFingerprint, int ChosenEpochs, string? EpochsChosenBy);

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>True when <paramref name="folder"/> holds a run (run.json or model.zip).</summary>
    public static bool HoldsRun(string folder) => File.Exists(Path.Combine(folder, Settings)) || File.Exists(Path.Combine(folder, Model));

    internal static RunFile Read(string folder, RunInputNames names)
    {
        string file = Path.Combine(folder, Settings);
        if (!File.Exists(file)) throw DistillationRunException.BadModel($"{names["Resume"]} '{folder}' holds no {Settings}: it is not the output folder of an interrupted `dualhead train`.");
        try
        {
            var run = JsonSerializer.Deserialize<RunFile>(File.ReadAllText(file), Json) ?? throw DistillationRunException.BadModel($"'{file}' is empty.");
            return run with { Settings = run.Settings.Upgraded() };
        }
        catch (JsonException e)
        {
            throw DistillationRunException.BadModel($"'{file}' is not a run.json this version can read ({e.Message}); start the run again without {names["Resume"]}.", e);
        }
    }

    internal static void Write(string folder, RunFile run) => WriteText(Path.Combine(folder, Settings), JsonSerializer.Serialize(run, Json));

    /// <summary>Writes a text file whole or not at all (UTF-8 without a byte-order mark).</summary>
    public static void WriteText(string path, string text) => AtomicFile.Write(path, new System.Text.UTF8Encoding(false).GetBytes(text));

    /// <summary>Replacing a run: its files go first, so nothing of it can be taken for the new run's (a checkpoint to resume, an old report).</summary>
    internal static void RemoveRun(string folder, IEnumerable<string> callerFiles)
    {
        foreach (var name in new[] { Settings, Model, Onnx, Checkpoint, Work }.Concat(callerFiles))
        {
            string path = Path.Combine(folder, name);
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else if (File.Exists(path)) File.Delete(path);
        }
    }

    internal static void DeleteQuietly(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else if (File.Exists(path)) File.Delete(path);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>
/// The outputs a run has written into its folder, so that a failure removes them all: the run's own and those a
/// caller adds while the run is still open (<see cref="DistillationRun.Execute"/>'s writeOutputs).
/// </summary>
public sealed class RunOutputs
{
    private readonly List<string> _written = [];

    internal RunOutputs(string folder) => Folder = folder;

    /// <summary>The run's folder.</summary>
    public string Folder { get; }

    /// <summary>The path of output <paramref name="name"/>, recorded (before it is written) to be removed if the run fails.</summary>
    public string Add(string name)
    {
        _written.Add(name);
        return Path.Combine(Folder, name);
    }

    /// <summary>Writes output <paramref name="name"/> (a relative path) whole or not at all.</summary>
    public void WriteText(string name, string text)
    {
        string path = Add(name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        RunFolder.WriteText(path, text);
    }

    internal void RemoveAll(bool folderCreated)
    {
        RunFolder.DeleteQuietly(Path.Combine(Folder, RunFolder.Work));
        foreach (var name in _written.Append(RunFolder.Checkpoint)) RunFolder.DeleteQuietly(Path.Combine(Folder, name.Split('/', '\\')[0]));
        try
        {
            if (folderCreated && Directory.Exists(Folder) && !Directory.EnumerateFileSystemEntries(Folder).Any()) Directory.Delete(Folder);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
