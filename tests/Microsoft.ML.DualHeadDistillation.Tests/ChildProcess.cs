using System.Diagnostics;
using System.Reflection;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Runs a .NET program built alongside the tests (its path is in the test assembly's metadata) in a fresh process.</summary>
internal static class ChildProcess
{
    public static string BuiltProgram(string key)
    {
        string path = typeof(ChildProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
        Assert.IsTrue(File.Exists(path), $"{path} was not built");
        return path;
    }

    public static (int Exit, string Output, string Error) Run(string dll, IEnumerable<string> args, int timeoutMs = 180_000,
        IReadOnlyDictionary<string, string?>? environment = null)
        => RunTogether(dll, [args], timeoutMs, environment)[0];

    /// <summary>Starts one process per argument list at once and waits for all of them.</summary>
    public static (int Exit, string Output, string Error)[] RunTogether(string dll, IEnumerable<string>[] argLists, int timeoutMs = 180_000,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var running = argLists.Select(args =>
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
                if (value is null) start.Environment.Remove(name); else start.Environment[name] = value;
            start.ArgumentList.Add(dll);
            foreach (var a in args) start.ArgumentList.Add(a);
            var process = Process.Start(start)!;
            return (Process: process, Output: process.StandardOutput.ReadToEndAsync(), Error: process.StandardError.ReadToEndAsync());
        }).ToArray();
        try
        {
            foreach (var p in running)
                Assert.IsTrue(p.Process.WaitForExit(timeoutMs), $"{Path.GetFileName(dll)} did not finish in {timeoutMs / 1000} s");
            return running.Select(p => (p.Process.ExitCode, p.Output.Result, p.Error.Result)).ToArray();
        }
        finally
        {
            foreach (var p in running)
            {
                if (!p.Process.HasExited) p.Process.Kill(entireProcessTree: true);
                p.Process.Dispose();
            }
        }
    }
}
