using Microsoft.ML.DualHeadDistillation.Runs;
using System.CommandLine;
using System.Globalization;
using System.IO.Compression;
using DualHeadML.Cli.Console;
using DualHeadML.Cli.Training;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Export.Quantization;

namespace DualHeadML.Cli.Commands;

/// <summary>`dualhead export`: the student as ONNX from a checkpoint (optionally with other alpha/beta).</summary>
public static class ExportCommand
{
    public static Command Build(Option<bool> plain)
    {
        var model = new Option<string>("--model", "-m") { Description = "checkpoint.zip, or the output folder of `dualhead train`.", Required = true, HelpName = "PATH" };
        var output = new Option<string>("--output", "-o") { Description = "The ONNX file to write.", Required = true, HelpName = "FILE.onnx" };
        var alpha = new Option<float?>("--alpha") { Description = "Weight of the CE head built into the graph (default: the checkpoint's)." };
        var beta = new Option<float?>("--beta") { Description = "Temperature of the KD head built into the graph (default: the checkpoint's)." };
        var int8 = new Option<bool>("--int8") { Description = "Write a static int8 (QDQ) student: weights int8 per channel, activations calibrated on --calibration; checked on --validation." };
        var calibration = new Option<string?>("--calibration") { Description = "Images to calibrate the int8 activations on (any depth; the first --calibration-rows are used).", HelpName = "DIR" };
        var calibrationRows = new Option<int>("--calibration-rows") { Description = "Calibration images used.", DefaultValueFactory = _ => 512 };
        var validation = new Option<string?>("--validation") { Description = "Labeled images (one subfolder per class) to compare int8 with fp32 on; without it the accuracy is unchecked.", HelpName = "DIR" };
        var maxDrop = new Option<double>("--max-accuracy-drop") { Description = "Refuse an int8 student that loses more accuracy points than this on --validation.", DefaultValueFactory = _ => StudentExportOptions.DefaultMaxAccuracyDrop * 100, HelpName = "POINTS" };
        var allowDrop = new Option<bool>("--allow-accuracy-drop") { Description = "Write the int8 student even when it loses more than --max-accuracy-drop." };
        var command = new Command("export", "Export a trained student to ONNX (opset 13; Score, both heads' probabilities, class index and name), fp32 or int8.")
            { model, output, alpha, beta, int8, calibration, calibrationRows, validation, maxDrop, allowDrop };
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                string path = ModelPaths.Resolve(parse.GetValue(model)!, RunFolder.Checkpoint, "--model");
                DualHeadCheckpoint checkpoint;
                try { checkpoint = DualHeadCheckpoint.Load(path); }
                catch (InvalidDataException e) { throw new UsageException(ExitCodes.ModelError, e.Message); }
                using var trained = checkpoint.ToModel();
                float a = parse.GetValue(alpha) ?? trained.Alpha, b = parse.GetValue(beta) ?? trained.Beta;
                DualHeadDistillTransformer chosen;
                try { chosen = a == trained.Alpha && b == trained.Beta ? trained : trained.WithAlphaBeta(a, b); }
                catch (Exception e) when (e is ArgumentOutOfRangeException or InvalidOperationException) { throw new UsageException(ExitCodes.UsageError, e.Message.Split(" (Parameter")[0]); }
                string file = Path.GetFullPath(parse.GetValue(output)!);
                if (!parse.GetValue(int8))
                {
                    if (parse.GetValue(calibration) is not null || parse.GetValue(validation) is not null) throw new UsageException(ExitCodes.UsageError, "--calibration and --validation are for --int8.");
                    chosen.ExportToOnnx(file); // whole or not at all
                    ui.Info(string.Create(CultureInfo.InvariantCulture, $"Wrote {file} ({new FileInfo(file).Length / 1e6:0.0} MB): {chosen.ClassNames.Count} classes, alpha {a:0.##}, beta {b:0.##}"));
                    return ExitCodes.Success;
                }
                var result = Int8Files.Export(chosen, file, parse.GetValue(calibration), parse.GetValue(calibrationRows), parse.GetValue(validation), parse.GetValue(maxDrop), parse.GetValue(allowDrop), cancel);
                foreach (var w in result.Warnings) ui.Warn(w);
                ui.Info(string.Create(CultureInfo.InvariantCulture, $"Wrote {file} ({result.Bytes / 1e6:0.00} MB, fp32 {result.Fp32Bytes / 1e6:0.00} MB): int8, {result.Int8!.QuantizedNodes} nodes quantised, {result.Int8.FoldedBatchNorms} BatchNorm folded, calibrated on {result.Int8.CalibrationRows} images ({result.Int8.CalibrationMethod})"));
                if (result.ValidationRows > 0)
                    ui.Info(string.Create(CultureInfo.InvariantCulture, $"validation ({result.ValidationRows} images): fp32 {result.Fp32Accuracy:P2}, int8 {result.Int8Accuracy:P2} ({Points(result.Int8Accuracy - result.Fp32Accuracy)} points), {result.Agreement:P1} of the images agree"));
                return ExitCodes.Success;
            }, cancel);
        });
        return command;
    }

    /// <summary>A change of accuracy in points, signed ("+0.30", "-1.20", "0.00").</summary>
    internal static string Points(double change) => Math.Round(change * 100, 2) is var p && p == 0 ? "0.00" : p.ToString("+0.00;-0.00", CultureInfo.InvariantCulture);
}

/// <summary>`dualhead info`: what a model, checkpoint, ONNX student or run folder is.</summary>
public static class InfoCommand
{
    public static Command Build(Option<bool> plain)
    {
        var model = new Argument<string>("path") { Description = "model.zip, checkpoint.zip, student.onnx, or the output folder of `dualhead train`." };
        var command = new Command("info", "Show a model's classes, preprocessing, student, alpha/beta and training summary.") { model };
        command.SetAction(async (parse, cancel) =>
        {
            var ui = new RunDisplay(parse.GetValue(plain));
            return await Cli.Guard(ui, () =>
            {
                string path = parse.GetValue(model)!;
                var rows = new List<IReadOnlyList<string>>();
                if (Directory.Exists(path))
                {
                    path = ModelPaths.Resolve(path, File.Exists(Path.Combine(path, RunFolder.Checkpoint)) ? RunFolder.Checkpoint : RunFolder.Model, "path");
                }
                if (!File.Exists(path)) throw new UsageException(ExitCodes.ModelError, $"'{path}' was not found.");
                if (path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) Onnx(path, rows);
                else if (IsCheckpoint(path)) Checkpoint(path, rows);
                else Model(path, rows);
                ui.Table(path, ["", ""], rows);
                return ExitCodes.Success;
            }, cancel);
        });
        return command;
    }

    private static bool IsCheckpoint(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            return zip.GetEntry("checkpoint.json") is not null;
        }
        catch (InvalidDataException e)
        {
            throw new UsageException(ExitCodes.ModelError, $"'{path}' is not a zip file: {e.Message}");
        }
    }

    private static void Checkpoint(string path, List<IReadOnlyList<string>> rows)
    {
        DualHeadCheckpoint c;
        try { c = DualHeadCheckpoint.Load(path); }
        catch (InvalidDataException e) { throw new UsageException(ExitCodes.ModelError, e.Message); }
        rows.Add(["kind", "training checkpoint"]);
        rows.Add(["classes", $"{c.ClassNames.Count}: {string.Join(", ", c.ClassNames)}"]);
        rows.Add(["student", c.Spec.Student.ToString()]);
        if (c.Spec.Images is { } images) rows.Add(["images", images.ToString()]);
        rows.Add(["objective", c.Spec.Objective.ToString()]);
        rows.Add(["batches", c.Spec.Batches.ToString()]);
        rows.Add(["optimizer", c.Spec.Optimizer.ToString()]);
        rows.Add(["fine-tuning", c.Spec.Tuning.ToString()]);
        rows.Add(["alpha, beta", string.Create(CultureInfo.InvariantCulture, $"{c.Alpha:0.##}, {c.Beta:0.##}")]);
        rows.Add(["progress", $"{c.CompletedEpochs} epochs{(c.StepsIntoEpoch > 0 ? $" + {c.StepsIntoEpoch} steps" : "")}, step {c.CompletedSteps}, seed {c.Seed}"]);
        if (c.Report is { } r)
        {
            rows.Add(["parameters", r.StudentParameters.ToString("N0", CultureInfo.InvariantCulture)]);
            rows.Add(["rows", $"{r.LabeledRows} labeled, {r.UnlabeledRows} unlabeled"]);
            if (r.Epochs.Count > 0) rows.Add(["last epoch", r.Epochs[^1].ToString()]);
            if (r.AlphaBeta is { } ab) rows.Add(["alpha/beta search", ab.ToString()]);
        }
    }

    private static void Onnx(string path, List<IReadOnlyList<string>> rows)
    {
        Microsoft.ML.OnnxRuntime.InferenceSession session;
        try { session = new Microsoft.ML.OnnxRuntime.InferenceSession(path); }
        catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e) { throw new UsageException(ExitCodes.ModelError, $"'{path}' is not an ONNX model ONNX Runtime can open: {e.Message}"); }
        using var _ = session;
        var map = session.ModelMetadata.CustomMetadataMap;
        if (!map.TryGetValue(StudentOnnxMetadata.ModelKey, out var kind) || kind != StudentOnnxMetadata.ModelValue)
            throw new UsageException(ExitCodes.ModelError, $"'{path}' is an ONNX model but not a DualHeadDistill student (no {StudentOnnxMetadata.ModelKey} metadata).");
        var m = StudentOnnxMetadata.Read(map, path);
        rows.Add(["kind", "ONNX student"]);
        rows.Add(["classes", $"{m.ClassNames.Count}: {string.Join(", ", m.ClassNames)}"]);
        rows.Add(["input", $"'{m.InputName}' float [N, {m.FeatureSize}]{(m.ImageShape is { } s ? $" = [{string.Join(", ", s)}]" : "")}"]);
        if (m.ImageStorageSize is int size) rows.Add(["preprocessing", $"shorter side to {size} (antialiased bilinear), center {size}x{size}, center crop to the input, pixels / 255"]);
        else if (m.Preprocessing is { } p) rows.Add(["preprocessing", p.Describe()]);
        rows.Add(["student", m.Student]);
        rows.Add(["mode, alpha, beta", string.Create(CultureInfo.InvariantCulture, $"{m.Mode}, {m.Alpha:0.##}, {m.Beta:0.##}")]);
        Precision(m, rows);
    }

    private static void Precision(StudentOnnxMetadata m, List<IReadOnlyList<string>> rows)
    {
        rows.Add(["precision", m.Quantization is { } q ? $"{m.Precision} ({q})" : m.Precision]);
        if (m.Int8Check is { } check) rows.Add(["int8 check", check]);
    }

    private static void Model(string path, List<IReadOnlyList<string>> rows)
    {
        using var loaded = LoadedModel.Open(path);
        rows.Add(["kind", "ML.NET model (DualHeadModel.Load), input: encoded image bytes"]);
        rows.Add(["classes", $"{loaded.Classes.Length}: {string.Join(", ", loaded.Classes)}"]);
        Precision(DualHeadModel.Describe(path), rows);
        using var zip = ZipFile.OpenRead(path);
        if (zip.GetEntry("DualHeadImageInput.json") is { } entry)
        {
            using var reader = new StreamReader(entry.Open());
            rows.Add(["image input", reader.ReadToEnd().Trim()]);
        }
    }
}
