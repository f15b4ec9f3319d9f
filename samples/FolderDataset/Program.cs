// dotnet run --project samples/FolderDataset -- OUT [--labeled-per-class 50] [--unlabeled 5000] [--test-per-class 100]
// Writes OUT/labeled/<class>/*.png, OUT/unlabeled/partNNN/*.png, OUT/test/<class>/*.png from Fashion-MNIST (Debian's
// dataset-fashion-mnist, or FASHION_MNIST_DIR) and OUT/teacher.onnx: a nearest-centroid classifier over 2,000 other training
// images, with its class names and preprocessing in its metadata. Then:
//   dotnet run --project src/DualHeadML.Cli -- train --labeled OUT/labeled --unlabeled OUT/unlabeled --teacher OUT/teacher.onnx --output run
using System.Diagnostics;
using System.Globalization;
using DualHeadML.Samples;
using Microsoft.ML.DualHeadDistillation.Datasets;

if (args.Length == 0 || args[0].StartsWith('-'))
{
    Console.Error.WriteLine("usage: FolderDataset OUT [--labeled-per-class 50] [--unlabeled 5000] [--test-per-class 100]");
    return 2;
}
int Option(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    if (i < 0) return fallback;
    if (i + 1 >= args.Length || !int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < 0)
        throw new ArgumentException($"{name} needs a whole number >= 0.");
    return v;
}
string root = Path.GetFullPath(args[0]);
if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
{
    Console.Error.WriteLine($"error: '{root}' is not empty; choose a new folder.");
    return 2;
}
int labeled = Option("--labeled-per-class", 50), unlabeled = Option("--unlabeled", 5000), test = Option("--test-per-class", 100);
var watch = Stopwatch.StartNew();
string dir = FashionMnist.Locate(allowDownload: false);
var train = FashionMnist.Load(dir, train: true);
var testSplit = FashionMnist.Load(dir, train: false);
if (10 * labeled + unlabeled > train.Count - 2000) throw new ArgumentException($"At most {train.Count - 2000} labeled + unlabeled training images (2,000 are the teacher's).");
var written = FashionMnistFolders.Write(root, train, testSplit, labeled, unlabeled, test);
File.WriteAllBytes(Path.Combine(root, "teacher.onnx"), FashionMnistFolders.CentroidTeacher(train, FashionMnistFolders.TeacherPool(train)));
Console.WriteLine($"Wrote {written.LabeledCount} labeled, {written.UnlabeledCount} unlabeled and {written.TestCount} test PNG images and teacher.onnx to {root} in {watch.Elapsed.TotalSeconds:0.0} s");
return 0;
