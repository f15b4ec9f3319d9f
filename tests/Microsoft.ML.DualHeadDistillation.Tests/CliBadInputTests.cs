namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>`dualhead train` on bad folders: a clear message naming the folder, file or class, the documented exit code, no output left behind.</summary>
[TestClass]
public sealed class CliBadInputTests
{
    private static string Describe((int Exit, string Output, string Error) r) => $"exit {r.Exit}\n--- stdout\n{r.Output}\n--- stderr\n{r.Error}";

    /// <summary>A labeled folder with <paramref name="perClass"/> images of each of the teacher's 10 classes, copied from the fixture.</summary>
    private static string Labeled(string root, int perClass = 3)
    {
        string labeled = Path.Combine(root, "labeled");
        foreach (var classDir in Directory.GetDirectories(CliFixture.Data.Labeled))
        {
            string target = Directory.CreateDirectory(Path.Combine(labeled, Path.GetFileName(classDir))).FullName;
            foreach (var file in Directory.GetFiles(classDir).Order().Take(perClass)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }
        return labeled;
    }

    private static string Unlabeled(string root, int count = 40)
    {
        string unlabeled = Directory.CreateDirectory(Path.Combine(root, "unlabeled", "nested", "deeper")).FullName;
        foreach (var file in Directory.GetFiles(Path.Combine(CliFixture.Data.Unlabeled, "part000")).Order().Take(count)) File.Copy(file, Path.Combine(unlabeled, Path.GetFileName(file)));
        return Path.Combine(root, "unlabeled");
    }

    private static (int Exit, string Output, string Error) Train(string labeled, string unlabeled, string output, params string[] more) =>
        CliFixture.Run(["train", "--labeled", labeled, "--unlabeled", unlabeled, "--teacher", CliFixture.Teacher, "--output", output, "--image-size", "28", "--epochs", "1", .. more]);

    private static void Fails((int Exit, string Output, string Error) r, int exit, string output, params string[] message)
    {
        Assert.AreEqual(exit, r.Exit, Describe(r));
        foreach (var m in message) StringAssert.Contains(r.Error, m, Describe(r));
        Assert.IsFalse(Directory.Exists(output), $"a failed run leaves no output folder\n{Describe(r)}");
    }

    [TestMethod]
    public void BadTrainingRecipeOptionsNameTheOptionAndLeaveNothingBehind()
    {
        using var dir = new TempDir();
        string output = Path.Combine(dir.Path, "out");
        string labeled = Labeled(Path.Combine(dir.Path, "a"));
        string unlabeled = Unlabeled(Path.Combine(dir.Path, "a"));
        Fails(Train(labeled, unlabeled, output, "--precision", "fp8"), 2, output, "--precision 'fp8'", "auto, float32, bfloat16");
        Fails(Train(labeled, unlabeled, output, "--resolution-schedule", "16,x,28"), 2, output, "--resolution-schedule '16,x,28'", "'x'");
        Fails(Train(labeled, unlabeled, output, "--early-stopping", "-1"), 2, output, "--early-stopping -1");
        Fails(Train(labeled, unlabeled, output, "--precise-bn-batches", "-2"), 2, output, "--precise-bn-batches -2");
        Fails(Train(labeled, unlabeled, output, "--frozen-stages", "-1"), 2, output, "--frozen-stages -1");
        Fails(Train(labeled, unlabeled, output, "--frozen-stages", "2"), 2, output, "FrozenStages = 2", "SmallCnn", "no stages to freeze");
    }

    [TestMethod]
    public void BadFoldersAreClearErrorsWithExitCodesAndLeaveNothingBehind()
    {
        using var dir = new TempDir();
        string output = Path.Combine(dir.Path, "out");

        // An empty class folder.
        string labeled = Labeled(Path.Combine(dir.Path, "a"));
        string unlabeled = Unlabeled(Path.Combine(dir.Path, "a"));
        string empty = Directory.CreateDirectory(Path.Combine(labeled, "Kangaroo")).FullName;
        Fails(Train(labeled, unlabeled, output), 3, output, $"Class folder '{empty}' (class 'Kangaroo') holds no images");

        // A class the teacher does not know.
        File.Copy(Directory.GetFiles(Path.Combine(labeled, "Bag"))[0], Path.Combine(empty, "k1.png"));
        File.Copy(Directory.GetFiles(Path.Combine(labeled, "Bag"))[1], Path.Combine(empty, "k2.png"));
        Fails(Train(labeled, unlabeled, output), 3, output, "'Kangaroo'", "not among the classes of teacher", "--teacher-classes");
        Directory.Delete(empty, recursive: true);

        // A class with one labeled image: no validation image can be carved from it.
        foreach (var f in Directory.GetFiles(Path.Combine(labeled, "Coat")).Skip(1)) File.Delete(f);
        Fails(Train(labeled, unlabeled, output), 3, output, "Class 'Coat' has 1 labeled image", "--validation DIR");

        // No class subfolders; images directly in the labeled folder; a folder that does not exist; no unlabeled images.
        string flat = Directory.CreateDirectory(Path.Combine(dir.Path, "flat")).FullName;
        Fails(Train(flat, unlabeled, output), 3, output, "has no class subfolders");
        File.Copy(Directory.GetFiles(Path.Combine(labeled, "Bag"))[0], Path.Combine(flat, "loose.png"));
        Fails(Train(flat, unlabeled, output), 3, output, "has images directly in it", "loose.png");
        Fails(Train(Path.Combine(dir.Path, "missing"), unlabeled, output), 3, output, "is not a folder");
        string noImages = Directory.CreateDirectory(Path.Combine(dir.Path, "no-images", "sub")).FullName;
        File.WriteAllText(Path.Combine(noImages, "notes.txt"), "not an image");
        Fails(Train(Labeled(Path.Combine(dir.Path, "b")), Path.Combine(dir.Path, "no-images"), output), 3, output, "holds no images");

        // No --output: a usage error (exit 2).
        var usage = CliFixture.Run("train", "--labeled", labeled, "--teacher", CliFixture.Teacher);
        Assert.AreEqual(2, usage.Exit, Describe(usage));
        StringAssert.Contains(usage.Error, "--output");
        // A teacher file that does not exist: exit 4.
        Fails(CliFixture.Run("train", "--labeled", labeled, "--teacher", Path.Combine(dir.Path, "nope.onnx"), "--output", output), 4, output, "nope.onnx");
    }

    [TestMethod]
    public void AnUnreadableImageIsSkippedAndCountedOrWithStrictAnErrorNamingIt()
    {
        using var dir = new TempDir();
        string labeled = Labeled(dir.Path, perClass: 4);
        string unlabeled = Unlabeled(dir.Path);
        string broken = Path.Combine(unlabeled, "nested", "broken.png");
        File.WriteAllText(broken, "this is not a PNG");
        string output = Path.Combine(dir.Path, "out");

        Fails(Train(labeled, unlabeled, output, "--strict"), 3, output, $"Image '{broken}' cannot be read");

        var run = Train(labeled, unlabeled, output);
        Assert.AreEqual(0, run.Exit, Describe(run));
        StringAssert.Contains(run.Error, $"skipped '{broken}'");
        var metrics = CliFixture.Json(Path.Combine(output, "metrics.json"));
        var skipped = metrics.GetProperty("skipped").EnumerateArray().ToArray();
        Assert.AreEqual(1, skipped.Length);
        Assert.AreEqual(broken, skipped[0].GetProperty("path").GetString());
        Assert.AreEqual(40, metrics.GetProperty("unlabeled_images").GetInt32(), "the 40 readable unlabeled images");
        StringAssert.Contains(File.ReadAllText(Path.Combine(output, "report.md")), "broken.png");

        // The finished run is not overwritten by accident.
        var again = Train(labeled, unlabeled, output);
        Assert.AreEqual(2, again.Exit, Describe(again));
        StringAssert.Contains(again.Error, "already holds a run");
        Assert.IsTrue(File.Exists(Path.Combine(output, "model.zip")));
    }
}
