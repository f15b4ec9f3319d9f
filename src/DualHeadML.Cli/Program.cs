using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using DualHeadML.Cli;
using DualHeadML.Cli.Commands;
using DualHeadML.Cli.Console;
using Microsoft.ML.DualHeadDistillation;

var plain = new Option<bool>("--plain") { Description = "Plain log lines instead of live progress (the default when the output is not a terminal).", Recursive = true };
var train = TrainCommand.Build(plain);
var root = new RootCommand("dualhead: distil a big ONNX or CLIP teacher into a small, fast image classifier (Dual-Head Optimization, arXiv 2505.07675).")
{
    plain, train, DiagnoseCommand.Build(plain), LabelCommand.Build(plain), EvaluateCommand.Build(plain), PredictCommand.Build(plain), ExportCommand.Build(plain), InfoCommand.Build(plain),
};
var help = root.Options.OfType<HelpOption>().Single();
help.Action = new RegistryHelp((HelpAction)help.Action!, train);
var parsed = root.Parse(args);
if (parsed.Action is ParseErrorAction error) error.ShowHelp = false; // the error and a pointer to --help, not a page of help
int code = await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromMinutes(5) });
// System.CommandLine returns 1 for parse errors; the tool documents 2 for a wrong command line.
return parsed.Errors.Count > 0 ? ExitCodes.UsageError : code;

/// <summary>`train --help` lists every registered backbone and objective after the options.</summary>
internal sealed class RegistryHelp(HelpAction inner, Command train) : SynchronousCommandLineAction
{
    public override bool ClearsParseErrors => true;

    public override int Invoke(ParseResult parse)
    {
        int code = inner.Invoke(parse);
        if (parse.CommandResult.Command != train) return code;
        var o = parse.InvocationConfiguration.Output;
        o.WriteLine("Student backbones (--student):");
        foreach (var b in DualHeadRegistry.Backbones.All) o.WriteLine($"  {b.Name,-18} {b.Summary}");
        o.WriteLine();
        o.WriteLine("Training objectives (--objective):");
        foreach (var m in DualHeadRegistry.Objectives.All) o.WriteLine($"  {m.Name,-18} {m.Summary}");
        o.WriteLine();
        o.WriteLine("Exit codes: 0 done, 1 unexpected failure, 2 bad command line, 3 bad data, 4 bad model/teacher/checkpoint file, 5 training diverged, 130 stopped by Ctrl+C (resumable).");
        return code;
    }
}

namespace DualHeadML.Cli
{
    /// <summary>Runs a command's work off the signal thread and turns exceptions into messages and exit codes.</summary>
    public static class Cli
    {
        public static async Task<int> Guard(RunDisplay ui, Func<int> work, CancellationToken cancel)
        {
            try
            {
                return await Task.Run(work, CancellationToken.None);
            }
            catch (UsageException e)
            {
                ui.Error(e.Message);
                return e.ExitCode;
            }
            catch (Microsoft.ML.DualHeadDistillation.Runs.DistillationRunException e)
            {
                ui.Error(e.Message);
                return e.Kind switch
                {
                    Microsoft.ML.DualHeadDistillation.Runs.RunErrorKind.Data => ExitCodes.DataError,
                    Microsoft.ML.DualHeadDistillation.Runs.RunErrorKind.Model => ExitCodes.ModelError,
                    _ => ExitCodes.UsageError,
                };
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                ui.Warn("Stopped.");
                return ExitCodes.Cancelled;
            }
            catch (DualHeadTrainingDivergedException e)
            {
                ui.Error(e.Message);
                return ExitCodes.Diverged;
            }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
            {
                ui.Error(e.Message);
                return ExitCodes.ModelError;
            }
            catch (Exception e) when (e is ArgumentException)
            {
                ui.Error(e.Message);
                return ExitCodes.UsageError;
            }
            catch (Exception e)
            {
                ui.Error($"{e.GetType().Name}: {e.Message}");
                if (Environment.GetEnvironmentVariable("DUALHEAD_DEBUG") == "1") System.Console.Error.WriteLine(e);
                else System.Console.Error.WriteLine("(set DUALHEAD_DEBUG=1 for the stack trace)");
                return ExitCodes.Failure;
            }
        }
    }
}
