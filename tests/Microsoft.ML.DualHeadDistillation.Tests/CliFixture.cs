using System.Text.Json;
using DualHeadML.Samples;
using Microsoft.ML.DualHeadDistillation.Datasets;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// The folder dataset the CLI tests run `dualhead` on, written once from real Fashion-MNIST as PNG files:
/// labeled/&lt;class&gt;/ (20 per class), unlabeled/part000/ (800), test/&lt;class&gt;/ (20 per class), and teacher.onnx, a
/// nearest-centroid classifier over 2,000 other training images with its class names and preprocessing in its metadata.
/// </summary>
internal static class CliFixture
{
    private static readonly object s_lock = new();
    private static FashionMnistFolders.Written? s_data;
    private static string? s_root;

    public static FashionMnistFolders.Written Data { get { Ensure(); return s_data!; } }
    public static string Teacher => Path.Combine(Data.Root, "teacher.onnx");
    public static string Tool => ChildProcess.BuiltProgram("DualheadCli");

    private static void Ensure()
    {
        lock (s_lock)
        {
            if (s_data is not null) return;
            s_root = Path.Combine(Path.GetTempPath(), "dualhead-cli-tests-" + Environment.ProcessId);
            if (Directory.Exists(s_root)) Directory.Delete(s_root, recursive: true);
            string dir = FashionMnist.Locate(allowDownload: false);
            var train = FashionMnist.Load(dir, train: true);
            var test = FashionMnist.Load(dir, train: false);
            s_data = FashionMnistFolders.Write(s_root, train, test, labeledPerClass: 20, unlabeled: 800, testPerClass: 20);
            File.WriteAllBytes(Path.Combine(s_root, "teacher.onnx"), FashionMnistFolders.CentroidTeacher(train, FashionMnistFolders.TeacherPool(train)));
        }
    }

    private static string? s_sharedRun, s_feed;

    /// <summary>
    /// One finished `dualhead train` run shared by the tests that only read its outputs (report, consumption project),
    /// trained with --package-source pointing at the library packed into a temporary feed.
    /// </summary>
    public static (string Run, string Feed) SharedRun
    {
        get
        {
            lock (s_lock)
            {
                if (s_sharedRun is not null) return (s_sharedRun, s_feed!);
                string root = Data.Root;
                string feed = NotebookTests.Pack(Path.Combine(root, "feed-work"));
                string run = Path.Combine(root, "shared-run");
                var r = Run(TrainArgs(run, 2, "--package-source", feed, "--gradient-cosine"));
                Assert.AreEqual(0, r.Exit, $"exit {r.Exit}\n{r.Output}\n{r.Error}");
                (s_sharedRun, s_feed) = (run, feed);
                return (run, feed);
            }
        }
    }

    public static void Delete()
    {
        lock (s_lock)
        {
            if (s_root is not null && Directory.Exists(s_root)) Directory.Delete(s_root, recursive: true);
            s_root = null;
            s_data = null;
            s_sharedRun = s_feed = null;
        }
    }

    /// <summary>Runs the tool with <paramref name="args"/> (plain output: stdout is redirected).</summary>
    public static (int Exit, string Output, string Error) Run(params string[] args) => ChildProcess.Run(Tool, args, timeoutMs: 600_000);

    /// <summary>The quick training arguments every CLI test shares (28 px, SmallCnn, 2 epochs).</summary>
    public static string[] TrainArgs(string output, int epochs = 2, params string[] more) =>
    [
        "train", "--labeled", Data.Labeled, "--unlabeled", Data.Unlabeled, "--teacher", Teacher, "--output", output,
        "--image-size", "28", "--epochs", epochs.ToString(System.Globalization.CultureInfo.InvariantCulture), "--seed", "3", .. more,
    ];

    public static JsonElement Json(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.Clone();
    }
}
