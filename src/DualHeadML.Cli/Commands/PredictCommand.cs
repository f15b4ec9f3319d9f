using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using DualHeadML.Cli.Console;
using Microsoft.ML.DualHeadDistillation.Runs;
using DualHeadML.Cli.Reports;

namespace DualHeadML.Cli.Commands;

/// <summary>`dualhead predict`: the class of image files or of every image in folders, as a table or JSON.</summary>
public static class PredictCommand
{
    public static Command Build(Option<bool> plain)
    {
        var model = new Option<string>("--model", "-m") { Description = "model.zip, or the output folder of `dualhead train`.", Required = true, HelpName = "PATH" };
        var inputs = new Argument<string[]>("images") { Description = "Image files, or folders (every image at any depth).", Arity = ArgumentArity.OneOrMore };
        var top = new Option<int>("--top") { Description = "Classes to show per image.", DefaultValueFactory = _ => 3 };
        var json = new Option<bool>("--json") { Description = "Print JSON (one object per image) instead of a table." };
        var command = new Command("predict", "Predict the class of images with a trained model.") { model, inputs, top, json };
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                var files = new List<string>();
                foreach (var input in parse.GetValue(inputs)!)
                {
                    if (Directory.Exists(input)) files.AddRange(ImageListing.Images(input));
                    else if (File.Exists(input)) files.Add(Path.GetFullPath(input));
                    else throw new UsageException(ExitCodes.DataError, $"'{input}' is neither an image file nor a folder.");
                }
                if (files.Count == 0) throw new UsageException(ExitCodes.DataError, "No images to predict (the folders hold no .jpg, .jpeg, .png, .bmp or .webp files).");
                int n = TrainCommandChecks.Positive(parse.GetValue(top), "--top");
                using var loaded = LoadedModel.Open(parse.GetValue(model)!);
                var (score, _, _) = loaded.Score(files, cancel);
                var results = files.Select((f, i) =>
                {
                    var ranked = score[i].Select((p, k) => (Class: loaded.Classes[k], Probability: p)).OrderByDescending(x => x.Probability).Take(n).ToArray();
                    return (File: f, Predicted: loaded.Classes[ClassifierScores.ArgMax(score[i])], Ranked: ranked);
                }).ToArray();
                if (parse.GetValue(json))
                {
                    System.Console.Out.WriteLine(JsonSerializer.Serialize(results.Select(r => new
                    {
                        file = r.File,
                        predicted = r.Predicted,
                        probability = r.Ranked[0].Probability,
                        top = r.Ranked.Select(x => new { @class = x.Class, probability = x.Probability }),
                    }), new JsonSerializerOptions { WriteIndented = true }));
                }
                else
                {
                    ui.Table($"Predictions ({loaded.Path})", ["image", "class", "probability", $"top {n}"],
                        results.Select(r => (IReadOnlyList<string>)[r.File, r.Predicted, r.Ranked[0].Probability.ToString("0.0000", CultureInfo.InvariantCulture),
                            string.Join(", ", r.Ranked.Select(x => string.Create(CultureInfo.InvariantCulture, $"{x.Class} {x.Probability:0.000}")))]));
                }
                return ExitCodes.Success;
            }, cancel);
        });
        return command;
    }
}
