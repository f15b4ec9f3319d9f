using System.CommandLine;
using DualHeadML.Cli.Console;
using DualHeadML.Cli.Options;
using DualHeadML.Cli.Training;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace DualHeadML.Cli.Commands;

/// <summary>`dualhead train`: the run's settings come from the option tables (TrainOptions, TeacherOptions); the library runs it.</summary>
public static class TrainCommand
{
    public static Command Build(Option<bool> plain)
    {
        var output = new Option<string?>("--output", "-o") { Description = "Folder for model.zip, student.onnx, checkpoint.zip, metrics.json, report.html/.md and the consumption project.", HelpName = "DIR" };
        var force = new Option<bool>("--force") { Description = "Replace a previous run in --output." };
        var resume = new Option<string?>("--resume") { Description = "Continue the interrupted run in DIR (its own settings and checkpoint); with --search, the interrupted search.", HelpName = "DIR" };
        var search = new Option<bool>("--search") { Description = "Search objective, learning rate and temperature by successive halving on the validation images (within --time-budget: 60 % for the search), then train the best; the report holds the leaderboard." };
        var settings = TrainOptions.Create();
        var teacher = TeacherOptions.Create();
        var command = new Command("train", "Distil a teacher into a small student from folders (or a manifest) of labeled and unlabeled images.") { output, force, resume, search };
        settings.AddTo(command);
        teacher.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                string? resumeDir = parse.GetValue(resume);
                string? outputDir = parse.GetValue(output) ?? resumeDir;
                if (outputDir is null) throw new UsageException(ExitCodes.UsageError, "Give --output DIR (where the model and the report go), or --resume DIR.");
                var names = new RunInputNames(settings.NamesAsTyped(parse).Concat(teacher.NamesAsTyped(parse))
                    .Append(KeyValuePair.Create("Output", "--output")).Append(KeyValuePair.Create("Resume", "--resume")).Append(KeyValuePair.Create("Replace", "--force")).Append(KeyValuePair.Create("Search", "--search"))
                    .ToDictionary(p => p.Key, p => p.Value));
                var spec = settings.Read(parse, new DistillationRunSpec());
                spec = spec with { Teacher = teacher.Read(parse, spec.Teacher) };
                return new TrainRun(ui).Execute(spec, Path.GetFullPath(outputDir), resumeDir is not null, parse.GetValue(force), names, cancel, parse.GetValue(search));
            }, cancel);
        });
        return command;
    }

}

/// <summary>Checks of option values that the library does not make (a CLI-only count).</summary>
public static class TrainCommandChecks
{
    public static int Positive(int value, string option) =>
        value >= 1 ? value : throw new UsageException(ExitCodes.UsageError, $"{option} must be at least 1; got {value}.");
}
