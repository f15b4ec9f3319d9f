using Microsoft.ML;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Export.Quantization;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace DualHeadML.Cli.Commands;

/// <summary>The int8 export from folders of images: calibration images (any depth) and labeled validation images, as the library's IDataViews.</summary>
internal static class Int8Files
{
    public static StudentExportResult Export(DualHeadDistillTransformer model, string file, string? calibration, int calibrationRows, string? validation, double maxDropPoints, bool allowDrop, CancellationToken cancel)
    {
        if (calibration is null) throw new UsageException(ExitCodes.UsageError, "--int8 needs --calibration DIR: a few hundred images like those the model will see (the unlabeled training images will do).");
        if (calibrationRows < 1) throw new UsageException(ExitCodes.UsageError, $"--calibration-rows must be at least 1; got {calibrationRows}.");
        if (!(maxDropPoints >= 0 && maxDropPoints < 100)) throw new UsageException(ExitCodes.UsageError, $"--max-accuracy-drop is in points, 0 to 100; got {maxDropPoints}.");
        var ml = new MLContext(seed: 1);
        ImageListing.RequireFolder(calibration, "--calibration");
        var images = ImageListing.Images(calibration).Order(StringComparer.Ordinal).Take(calibrationRows).Select(p => new ImageItem(p, null)).ToList();
        if (images.Count == 0) throw new UsageException(ExitCodes.DataError, $"--calibration '{calibration}' holds no images ({string.Join(", ", ImageListing.Extensions)}).");
        var options = new StudentExportOptions
        {
            Quantization = DualHeadQuantization.Int8,
            CalibrationData = ImageRows.Load(ml, images, model.ClassNames),
            CalibrationRows = calibrationRows,
            MaxAccuracyDrop = maxDropPoints / 100,
            AllowAccuracyDrop = allowDrop,
        };
        if (validation is not null)
        {
            var (classes, items) = ImageListing.ReadClassFolders(validation, "--validation");
            var unknown = classes.Where(c => !model.ClassNames.Contains(c)).ToArray();
            if (unknown.Length > 0) throw new UsageException(ExitCodes.DataError, $"--validation has class folders the model does not know: {string.Join(", ", unknown)} (model classes: {string.Join(", ", model.ClassNames)}).");
            options = options with { ValidationData = ImageRows.Load(ml, items, model.ClassNames) };
        }
        try
        {
            return model.ExportToOnnx(file, options, cancel);
        }
        catch (InvalidOperationException e) when (e.Message.Contains("MaxAccuracyDrop", StringComparison.Ordinal))
        {
            throw new UsageException(ExitCodes.ModelError, e.Message.Replace("MaxAccuracyDrop", "--max-accuracy-drop", StringComparison.Ordinal).Replace("(AllowAccuracyDrop)", "(--allow-accuracy-drop)", StringComparison.Ordinal)
                .Replace("(CalibrationData)", "(--calibration)", StringComparison.Ordinal).Replace("(QuantizeFirstConvolution = false)", "", StringComparison.Ordinal).Replace(", keep the first convolution in fp32 ,", ",", StringComparison.Ordinal));
        }
    }
}
