// DualHeadML quickstart: distil an ONNX teacher into a small CNN with 50 labels per class (1% of
// Fashion-MNIST's training images) and every other image unlabeled, inside an ML.NET pipeline.
//
//   dotnet run -c Release --project samples/Quickstart [-- --json results.json] [--epochs N] [--compare-ce-only]
//                                                      [--save-model model.zip] [--export-onnx student.onnx]
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Teachers;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
string? jsonPath = ArgValue("--json");
bool compareCeOnly = args.Contains("--compare-ce-only");
int epochs = int.Parse(ArgValue("--epochs") ?? "3", CultureInfo.InvariantCulture);
var total = Stopwatch.StartNew();

// 1. Data: Fashion-MNIST from $FASHION_MNIST_DIR, Debian's package, or the cache (downloaded if allowed).
string dir;
try { dir = FashionMnist.Locate(); }
catch (FileNotFoundException e) { Console.Error.WriteLine(e.Message); return 2; }
var train = FashionMnist.Load(dir, train: true);
var test = FashionMnist.Load(dir, train: false);
var split = FashionMnistProtocol.Split(train, poolSize: 10_000, labeledPerClass: 50);
Console.WriteLine($"Fashion-MNIST from {dir}: teacher pool {split.TeacherPool.Length}, student labeled {split.Labeled.Length}, unlabeled {split.Unlabeled.Length}, test {test.Count}");

var ml = new MLContext(seed: 1);
ml.Log += (_, e) => { if (e.Source.StartsWith("DualHeadDistill", StringComparison.Ordinal)) Console.WriteLine($"  [log] {e.Message}"); };

// 2. Teacher: plain ML.NET trained on the disjoint pool and exported to ONNX (no DualHeadML code involved);
//    the pipeline runs that ONNX file with the batched teacher transform.
var teacher = OnnxTeacher.Train(ml, train, split.TeacherPool);
string teacherPath = ArgValue("--save-teacher") ?? Path.Combine(Path.GetTempPath(), $"dualhead-quickstart-teacher-{Environment.ProcessId}.onnx");
File.WriteAllBytes(teacherPath, teacher.Onnx);
Console.WriteLine($"Teacher: ML.NET L-BFGS maximum entropy, {teacher.Parameters:N0} parameters, trained in {teacher.TrainSeconds:0.0}s, ONNX {teacher.Onnx.Length:N0} bytes");

// 3. Student: labeled and unlabeled rows together; the missing label marks the unlabeled ones.
var studentData = ml.Data.LoadFromEnumerable(FashionMnistProtocol.StudentRows(train, split));
var testData = ml.Data.LoadFromEnumerable(FashionMnistProtocol.Rows(test, Enumerable.Range(0, test.Count), labeled: true));
var teacherSoftLabels = ml.Transforms.TeacherSoftLabels(new TeacherSoftLabelsOptions
{
    InputColumnName = "Features",
    OutputColumnName = "TeacherProbabilities",
    ModelPath = teacherPath,
    ModelInputName = OnnxTeacher.InputName,
    ModelOutputName = OnnxTeacher.OutputName,     // class probabilities of the ML.NET model
    ClassNames = FashionMnist.ClassNames,          // matched by name to the label's key values
    BatchSize = 256,
});
DualHeadDistillOptions StudentOptions(float lambda) => new()
{
    FeatureColumnName = "Features",
    TeacherColumnName = "TeacherProbabilities",
    TeacherOutput = TeacherOutputKind.Probabilities,
    Backbone = DualHeadBackbone.SmallCnn,
    ImageShape = [1, 28, 28],
    // Recorded in the exported model's metadata: 28x28 grayscale bytes scaled to [0, 1].
    InputPreprocessing = new TeacherPreprocessing { CropHeight = 28, CropWidth = 28, Scale = 1f / 255f },
    NumberOfEpochs = epochs,
    Lambda = lambda,
    Seed = 1,
};
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml))
    .Append(teacherSoftLabels)
    .Append(ml.MulticlassClassification.Trainers.DualHeadDistill(StudentOptions(DualHeadDefaults.Lambda)));

var fitWatch = Stopwatch.StartNew();
var model = pipeline.Fit(studentData); // the teacher runs once per row, inside Fit
double fitSeconds = fitWatch.Elapsed.TotalSeconds;
var student = model.LastTransformer;
var teacherTransformer = (TeacherSoftLabelsTransformer)model.ElementAt(1);
var report = student.TrainingReport;

// 4. Evaluate on the official test images with ML.NET's evaluator: DHO, then each head alone.
var scoredTest = model.Transform(testData);
double Accuracy() => ml.MulticlassClassification.Evaluate(model.Transform(testData)).MicroAccuracy;
var keyedTest = model.First().Transform(testData); // labels as keys: all a student needs (no teacher at test time)
double AccuracyOf(DualHeadDistillTransformer s) => ml.MulticlassClassification.Evaluate(s.Transform(keyedTest)).MicroAccuracy;
double dho = Accuracy();
double ceHead = AccuracyOf(student.WithAlphaBeta(1, student.Beta)); // each head alone: same student, other inference weights
double kdHead = AccuracyOf(student.WithAlphaBeta(0, student.Beta));
double teacherAccuracy = ArgMaxAccuracy(scoredTest, "TeacherProbabilities", "Label");

// Optional: the same student, labels, steps and seed trained on the labels alone (lambda = 1, alpha = 1).
double? ceOnly = null;
if (compareCeOnly)
{
    var ceOnlyModel = ml.Transforms.Conversion.MapValueToKey("Label", keyData: OnnxTeacher.ClassKeys(ml))
        .Append(teacherSoftLabels)
        .Append(ml.MulticlassClassification.Trainers.DualHeadDistill(StudentOptions(1f)))
        .Fit(studentData);
    using var ceOnlyTeacher = (TeacherSoftLabelsTransformer)ceOnlyModel.ElementAt(1);
    using var ceOnlyStudent = ceOnlyModel.LastTransformer;
    using var ceOnlyHead = ceOnlyStudent.WithAlphaBeta(1, ceOnlyStudent.Beta);
    ceOnly = AccuracyOf(ceOnlyHead);
}

// 5. Deployment: save the fitted pipeline (the teacher is training-only and is left out), reload it in a
//    fresh MLContext and check it scores identically; export the student to ONNX.
string? modelPath = ArgValue("--save-model");
string? onnxPath = ArgValue("--export-onnx");
double? reloadDiff = null;
if (modelPath is not null)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(modelPath))!);
    DualHeadModel.Save(ml, model, studentData.Schema, modelPath); // atomic: temp file, read back, rename
    var reloaded = DualHeadModel.Load(new MLContext(), modelPath, out _); // checks CRCs and the student's SHA-256
    var a = model.Transform(testData).GetColumn<float[]>("Score");
    var b = reloaded.Transform(testData).GetColumn<float[]>("Score");
    reloadDiff = a.Zip(b, (x, y) => x.Zip(y, (u, v) => (double)Math.Abs(u - v)).Max()).Max();
    Console.WriteLine($"Saved {modelPath} ({new FileInfo(modelPath).Length:N0} bytes); reloaded in a fresh MLContext: max |Score difference| over {test.Count:N0} test images = {reloadDiff}");
}
if (onnxPath is not null)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(onnxPath))!);
    student.ExportToOnnx(onnxPath);
    Console.WriteLine($"Exported the student to {onnxPath} ({new FileInfo(onnxPath).Length:N0} bytes)");
}

// 6. Data path vs bare TorchSharp steps on the same batch shapes.
double bareStepMs = BareStep.MeasureMilliseconds(
    () => new DualHeadStudent(new SmallCnnBackbone(1, 28, 28, DualHeadDefaults.EmbeddingSize), FashionMnist.ClassNames.Count,
        inputStandardization: new InputStandardization(28 * 28, 1)), batch: 64 + 64, steps: 30);

Console.WriteLine();
Console.WriteLine("| model                | test accuracy | train seconds | parameters |");
Console.WriteLine("|----------------------|---------------|---------------|------------|");
Console.WriteLine($"| teacher (ONNX)       | {teacherAccuracy,13:P2} | {teacher.TrainSeconds,13:0.0} | {teacher.Parameters,10:N0} |");
Console.WriteLine($"| DHO combined (a=b=.5)| {dho,13:P2} | {report.TrainSeconds,13:0.0} | {student.StudentParameters,10:N0} |");
Console.WriteLine($"| CE head alone        | {ceHead,13:P2} | {"(same run)",13} | {student.StudentParameters,10:N0} |");
Console.WriteLine($"| KD head alone        | {kdHead,13:P2} | {"(same run)",13} | {student.StudentParameters,10:N0} |");
if (ceOnly is double c)
    Console.WriteLine($"| CE-only student      | {c,13:P2} | {"(2nd run)",13} | {student.StudentParameters,10:N0} |");
Console.WriteLine();
Console.WriteLine($"Teacher transform: {teacherTransformer.Statistics}");
Console.WriteLine($"Fit {fitSeconds:0.0}s in all: reading rows + teacher {report.ReadSeconds:0.0}s, {report.TotalSteps} steps at {report.MeanStepMilliseconds:0.0} ms/step; a bare TorchSharp step on the same shapes takes {bareStepMs:0.0} ms.");
Console.WriteLine($"Total {total.Elapsed.TotalSeconds:0.0}s");

if (jsonPath is not null)
{
    var json = new Dictionary<string, object>
    {
        ["teacher_accuracy"] = teacherAccuracy,
        ["dho_accuracy"] = dho,
        ["ce_head_accuracy"] = ceHead,
        ["kd_head_accuracy"] = kdHead,
        ["train_seconds"] = report.TrainSeconds,
        ["fit_seconds"] = fitSeconds,
        ["read_seconds"] = report.ReadSeconds,
        ["teacher_train_seconds"] = teacher.TrainSeconds,
        ["student_parameters"] = student.StudentParameters,
        ["teacher_parameters"] = teacher.Parameters,
        ["labeled_rows"] = report.LabeledRows,
        ["unlabeled_rows"] = report.UnlabeledRows,
        ["test_rows"] = test.Count,
        ["epochs"] = epochs,
        ["steps"] = report.TotalSteps,
        ["fit_step_ms"] = report.MeanStepMilliseconds,
        ["bare_step_ms"] = bareStepMs,
        ["total_seconds"] = total.Elapsed.TotalSeconds,
    };
    if (ceOnly is double c2) json["ce_only_accuracy"] = c2;
    if (reloadDiff is double r) json["reload_max_abs_diff"] = r;
    File.WriteAllText(jsonPath, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"Wrote {jsonPath}");
}
student.Dispose();
teacherTransformer.Dispose();
if (ArgValue("--save-teacher") is null) File.Delete(teacherPath);
return 0;

static double ArgMaxAccuracy(IDataView data, string scores, string label)
{
    var probabilities = data.GetColumn<float[]>(scores).ToArray();
    var keys = data.GetColumn<uint>(label).ToArray();
    int correct = 0;
    for (int i = 0; i < keys.Length; i++)
        if (Array.IndexOf(probabilities[i], probabilities[i].Max()) + 1 == keys[i]) correct++;
    return (double)correct / keys.Length;
}

string? ArgValue(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
