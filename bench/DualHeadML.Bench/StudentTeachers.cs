using System.Reflection;
using DualHeadML.Bench;
using DualHeadML.Samples;
using Microsoft.ML;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// The two teachers of the 3xSxS student benchmarks (students, budget), built once per run: "confused" (ML.NET's L-BFGS
/// maximum entropy on the 28x28 pool with labels confused within pairs) or "probe" (the ImageNet ResNet-18 of
/// DnnImageFeaturizer, frozen, plus a linear probe on the pool at the student's size).
/// </summary>
internal static class StudentTeachers
{
    /// <summary>The folder of the DnnImageFeaturizer ResNet-18 package's ONNX files (the bench's build metadata).</summary>
    public static string DnnImageModels => typeof(StudentTeachers).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "DnnImageModels").Value!;

    /// <summary>The teacher's options (its ONNX written to <paramref name="path"/>; OutputColumnName left to the caller), its parameters, and the probe when it is one.</summary>
    public sealed record Built(TeacherSoftLabelsOptions Options, long Parameters, ResNet18ProbeTeacher? Probe);

    public static Built Build(MLContext ml, string teacher, FashionMnistSplit train, int[] pool, string confuse, Func<IDataView> probePool, int size,
        int probeEpochs, int seed, string models, string path)
    {
        TeacherSoftLabelsOptions options;
        Built built;
        if (teacher == "confused")
        {
            var model = OnnxTeacher.Train(ml, train, pool, PaperProtocol.ConfusedLabels(train, pool, confuse));
            File.WriteAllBytes(path, model.Onnx);
            options = new TeacherSoftLabelsOptions { InputColumnName = "Features", ModelInputName = OnnxTeacher.InputName, ModelOutputName = OnnxTeacher.OutputName };
            built = new Built(options, model.Parameters, null);
        }
        else
        {
            var probe = ResNet18ProbeTeacher.Train(ml, probePool(), "Pixels", "Label", size, epochs: probeEpochs, seed: seed, packageFolder: models);
            File.WriteAllBytes(path, probe.Onnx);
            // the graph reads the [3*S*S] column as it is (its standardisation is inside): no preprocessing
            options = new TeacherSoftLabelsOptions { InputColumnName = "Pixels", ModelInputName = probe.InputName, ModelOutputName = ResNet18ProbeTeacher.OutputName };
            built = new Built(options, probe.Parameters, probe);
        }
        options.ModelPath = path;
        options.ClassNames = FashionMnist.ClassNames;
        options.BatchSize = 256;
        return built;
    }
}
