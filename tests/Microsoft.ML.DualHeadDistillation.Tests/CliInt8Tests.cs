using SkiaSharp;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>`dualhead export --int8` on a trained run: calibrated on a folder, checked on labeled images, refused when calibration is sabotaged.</summary>
[TestClass]
public sealed class CliInt8Tests
{
    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    [TestMethod]
    public void ExportInt8CalibratesChecksAndRefusesASabotagedCalibration()
    {
        var (run, _) = CliFixture.SharedRun;
        using var dir = new TempDir();
        string file = Path.Combine(dir.Path, "student.int8.onnx");
        var ok = CliFixture.Run("--plain", "export", "--model", run, "--output", file, "--int8", "--calibration", CliFixture.Data.Unlabeled, "--validation", CliFixture.Data.Test);
        Assert.AreEqual(0, ok.Exit, Describe(ok));
        StringAssert.Contains(ok.Output, "int8, 3 nodes quantised");
        StringAssert.Matches(ok.Output, new System.Text.RegularExpressions.Regex(@"validation \(200 images\): fp32 [0-9.]+ %, int8 [0-9.]+ % \(([+-][0-9.]+|0.00) points\), [0-9.]+ % of the images agree"));
        Assert.IsTrue(new FileInfo(file).Length < new FileInfo(Path.Combine(run, "student.onnx")).Length * 0.4, "int8 weights");
        var info = CliFixture.Run("--plain", "info", file);
        Assert.AreEqual(0, info.Exit, Describe(info));
        StringAssert.Matches(info.Output, new System.Text.RegularExpressions.Regex(@"precision\s+.*int8 \(QDQ; weights int8 symmetric per channel"));
        StringAssert.Matches(info.Output, new System.Text.RegularExpressions.Regex(@"int8 check\s+.*fp32 accuracy [0-9.]+, int8 accuracy [0-9.]+, agreement [0-9.]+ on 200 validation rows"));
        var fp32Info = CliFixture.Run("--plain", "info", Path.Combine(run, "student.onnx"));
        StringAssert.Matches(fp32Info.Output, new System.Text.RegularExpressions.Regex(@"precision\s+.*fp32"));

        // Blank calibration images: the activations' ranges are slivers and real images saturate them.
        string blank = Path.Combine(dir.Path, "blank");
        Directory.CreateDirectory(blank);
        for (int i = 0; i < 4; i++)
        {
            using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque));
            using var image = SKImage.FromBitmap(bitmap);
            using var data = image.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(blank, $"{i}.png"), data.ToArray());
        }
        string refused = Path.Combine(dir.Path, "refused.onnx");
        var bad = CliFixture.Run("--plain", "export", "--model", run, "--output", refused, "--int8", "--calibration", blank, "--validation", CliFixture.Data.Test);
        Assert.AreEqual(4, bad.Exit, Describe(bad));
        StringAssert.Contains(bad.Error + bad.Output, "more than --max-accuracy-drop (1 points)");
        StringAssert.Contains(bad.Error + bad.Output, "Nothing was written");
        Assert.IsFalse(File.Exists(refused));

        var none = CliFixture.Run("--plain", "export", "--model", run, "--output", refused, "--int8");
        Assert.AreEqual(2, none.Exit, Describe(none));
        StringAssert.Contains(none.Error + none.Output, "--int8 needs --calibration DIR");
        var unchecked_ = CliFixture.Run("--plain", "export", "--model", run, "--output", refused, "--int8", "--calibration", CliFixture.Data.Unlabeled, "--calibration-rows", "50");
        Assert.AreEqual(0, unchecked_.Exit, Describe(unchecked_));
        StringAssert.Contains(unchecked_.Error + unchecked_.Output, "accuracy is unchecked");
        StringAssert.Contains(unchecked_.Output, "calibrated on 50 images");
    }
}
