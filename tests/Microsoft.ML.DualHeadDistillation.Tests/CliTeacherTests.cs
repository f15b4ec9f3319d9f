using DualHeadML.Samples;
using DualHeadML.Samples.Onnx;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>`dualhead label`, the CLIP zero-shot teacher, a manifest instead of folders, and --time-budget.</summary>
[TestClass]
public sealed class CliTeacherTests
{
    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    [TestMethod]
    public void LabelWritesTheTeachersSoftLabelsAndReusesItsCache()
    {
        using var dir = new TempDir();
        string output = Path.Combine(dir.Path, "labels");
        var first = CliFixture.Run("label", "--input", CliFixture.Data.Test, "--teacher", CliFixture.Teacher, "--output", output);
        Assert.AreEqual(0, first.Exit, Describe(first));
        StringAssert.Contains(first.Output, "200 computed and 0 from the cache");
        var lines = File.ReadAllLines(Path.Combine(output, "soft-labels.tsv"));
        Assert.AreEqual(201, lines.Length, "a header and one line per image");
        var header = lines[0].Split('\t');
        Assert.AreEqual(3 + 10, header.Length);
        Assert.AreEqual("logit:T-shirt_top", header[3], "the teacher's own class order");
        int right = lines.Skip(1).Select(l => l.Split('\t')).Count(f => Path.GetFileName(Path.GetDirectoryName(f[0])) == f[1]);
        Assert.IsTrue(right > 100, $"the centroid teacher is right on {right} of 200 test images");
        Assert.IsTrue(Directory.EnumerateFiles(Path.Combine(output, "teacher-cache")).Any(), "the cache is on disk");

        var second = CliFixture.Run("label", "--input", CliFixture.Data.Test, "--teacher", CliFixture.Teacher, "--output", output);
        Assert.AreEqual(0, second.Exit, Describe(second));
        StringAssert.Contains(second.Output, "0 computed and 200 from the cache");
        CollectionAssert.AreEqual(lines, File.ReadAllLines(Path.Combine(output, "soft-labels.tsv")), "the cached soft labels are the computed ones");
    }

    [TestMethod]
    public void AClipZeroShotTeacherTrainsFromFolderNamesPromptsAndTemplates()
    {
        using var dir = new TempDir();
        const int E = 16;
        var (vocab, merges, ids) = TeacherFixtures.ClipVocabulary(dir.Path, ["photo", "shirt", "boot"]);
        string text = dir.File("text.onnx", TinyOnnxModels.ClipTextEncoder(TeacherFixtures.RandomMatrix(ids.Count, E, 5)));
        string image = dir.File("image.onnx", TinyOnnxModels.ClipImageEncoder(TeacherFixtures.RandomMatrix(3 * 28 * 28, E, 3), 3, 28, 28));
        string templates = dir.File("templates.txt", "a photo of a {}.\nart of the {}.\n"u8.ToArray());
        string prompts = dir.File("prompts.txt", "T-shirt_top=tee shirt\nAnkle boot=boot\n"u8.ToArray());
        string run = Path.Combine(dir.Path, "run");
        var train = CliFixture.Run("train", "--labeled", CliFixture.Data.Labeled, "--unlabeled", CliFixture.Data.Unlabeled, "--output", run,
            "--clip-image", image, "--clip-text", text, "--clip-vocab", vocab, "--clip-merges", merges, "--clip-templates", templates, "--class-prompts", prompts,
            "--image-size", "28", "--epochs", "1");
        Assert.AreEqual(0, train.Exit, Describe(train));
        StringAssert.Contains(train.Output, "CLIP zero-shot (image.onnx)");
        var metrics = CliFixture.Json(Path.Combine(run, "metrics.json"));
        Assert.AreEqual("CLIP zero-shot (image.onnx)", metrics.GetProperty("teacher").GetString());
        Assert.AreEqual(4, metrics.GetProperty("validation").GetArrayLength(), "teacher, DHO and both heads");

        // A prompt file naming a class the data does not have: a clear error.
        string bad = dir.File("bad-prompts.txt", "Kangaroo=kangaroo\n"u8.ToArray());
        var refused = CliFixture.Run("train", "--labeled", CliFixture.Data.Labeled, "--output", Path.Combine(dir.Path, "bad"),
            "--clip-image", image, "--clip-text", text, "--clip-vocab", vocab, "--clip-merges", merges, "--class-prompts", bad);
        Assert.AreEqual(3, refused.Exit, Describe(refused));
        StringAssert.Contains(refused.Error, "'Kangaroo' is not a class of the data");
        Assert.IsFalse(Directory.Exists(Path.Combine(dir.Path, "bad")));
    }

    [TestMethod]
    public void EveryTeacherModeAndASingleHeadObjectiveTrain()
    {
        using var dir = new TempDir();
        // A teacher that sees the student's crops takes images [3, H, W] (the centroid teacher takes them flattened):
        // a small random CNN with the class names and preprocessing in its metadata.
        var metadata = Teachers.TeacherMetadata.Write(FashionMnistFolders.ClassNames, new Teachers.TeacherPreprocessing { ResizeShorterSide = 28, CropHeight = 28, CropWidth = 28 });
        string cnn = dir.File("cnn-teacher.onnx", TinyOnnxModels.ConvClassifier(3, 28, 28, 10, seed: 2, metadata: metadata).Onnx);
        foreach (var (mode, objective) in new[] { ("same-crop", "DualHead"), ("views:2", "DualHead"), ("cached", "SingleHeadKd") })
        {
            string run = Path.Combine(dir.Path, mode.Replace(':', '-') + objective);
            var args = CliFixture.TrainArgs(run, 1, "--teacher-mode", mode, "--objective", objective);
            args[Array.IndexOf(args, "--teacher") + 1] = cnn;
            var train = CliFixture.Run(args);
            Assert.AreEqual(0, train.Exit, $"{mode} {objective}: {Describe(train)}");
            var metrics = CliFixture.Json(Path.Combine(run, "metrics.json"));
            Assert.AreEqual(mode, metrics.GetProperty("teacher_mode").GetString());
            var names = metrics.GetProperty("validation").EnumerateArray().Select(v => v.GetProperty("name").GetString()).ToArray();
            CollectionAssert.AreEqual(objective == "DualHead" ? new[] { "teacher", "DHO", "CE head", "KD head" } : new[] { "teacher", "SingleHeadKd" }, names, mode);
            Assert.AreEqual(objective == "DualHead", File.Exists(Path.Combine(run, "plots", "alpha-beta.svg")), "the alpha/beta grid exists for two heads only");
        }
        var bad = CliFixture.Run(CliFixture.TrainArgs(Path.Combine(dir.Path, "bad"), 1, "--teacher-mode", "views:zero"));
        Assert.AreEqual(2, bad.Exit, Describe(bad));
        StringAssert.Contains(bad.Error, "--teacher-mode 'views:zero'");
        var student = CliFixture.Run(CliFixture.TrainArgs(Path.Combine(dir.Path, "bad"), 1, "--student", "ResNet19"));
        Assert.AreEqual(2, student.Exit, Describe(student));
        StringAssert.Contains(student.Error, "--student 'ResNet19' is not a registered backbone");
        Assert.IsFalse(Directory.Exists(Path.Combine(dir.Path, "bad")));
    }

    [TestMethod]
    public void AManifestAndATimeBudgetTrainLikeFolders()
    {
        using var dir = new TempDir();
        // path,label lines relative to the manifest; an empty label is an unlabeled image.
        var labeled = Directory.GetDirectories(CliFixture.Data.Labeled).SelectMany(d => Directory.GetFiles(d).Order().Take(6)).ToArray();
        var unlabeled = Directory.GetFiles(Path.Combine(CliFixture.Data.Unlabeled, "part000")).Order().Take(200).ToArray();
        var lines = new List<string> { "path,label" };
        lines.AddRange(labeled.Select(f => $"{Path.GetRelativePath(dir.Path, f)},{Path.GetFileName(Path.GetDirectoryName(f))}"));
        lines.AddRange(unlabeled.Select(f => $"\"{f}\","));
        string manifest = Path.Combine(dir.Path, "images.csv");
        File.WriteAllLines(manifest, lines);
        string run = Path.Combine(dir.Path, "run");
        var train = CliFixture.Run("train", "--manifest", manifest, "--teacher", CliFixture.Teacher, "--output", run, "--image-size", "28", "--time-budget", "40s");
        Assert.AreEqual(0, train.Exit, Describe(train));
        var metrics = CliFixture.Json(Path.Combine(run, "metrics.json"));
        Assert.AreEqual(200, metrics.GetProperty("unlabeled_images").GetInt32());
        Assert.AreEqual(50, metrics.GetProperty("labeled_images").GetInt32(), "6 per class, 1 of each carved for validation");
        StringAssert.Contains(metrics.GetProperty("epochs_chosen_by").GetString(), "--time-budget");
        StringAssert.Matches(train.Output, new System.Text.RegularExpressions.Regex(@"--time-budget 00:00:40: time budget [0-9:.]+: [0-9.]+s spent before training; a step measured at \d+ ms, \d+ steps an epoch, .*: \d+ epochs?"));
        int epochs = metrics.GetProperty("epochs").GetInt32();
        Assert.AreEqual(epochs, metrics.GetProperty("epoch_reports").GetArrayLength() is var n && n > 0 ? metrics.GetProperty("epoch_reports")[0].GetProperty("number_of_epochs").GetInt32() : -1, "metrics.json names the epochs the schedule spanned");

        var missing = Path.Combine(dir.Path, "missing.csv");
        File.WriteAllLines(missing, ["nope.png,Bag"]);
        var refused = CliFixture.Run("train", "--manifest", missing, "--teacher", CliFixture.Teacher, "--output", Path.Combine(dir.Path, "x"));
        Assert.AreEqual(3, refused.Exit, Describe(refused));
        StringAssert.Contains(refused.Error, "line 1: image");
        StringAssert.Contains(refused.Error, "nope.png");
    }
}
