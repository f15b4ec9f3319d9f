using System.Runtime.InteropServices;
using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Students.Onnx;

/// <summary>
/// The ImageNet ResNet-18 that the NuGet package <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (0.24.0) ships, as an
/// <c>OnnxCnn</c> student: <c>tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx</c> (a CNTK 2.6 export, opset 8, input
/// <c>Input247</c> [1, 3, 224, 224] BGR 0-255 minus a mean image, output <c>Pooling395_Output_0</c> [1, 512, 1, 1]; its last
/// stage has three basic blocks and its paddings are asymmetric, so it is not torchvision's resnet18) and its
/// companion <c>ResNetPrepOnnx/ResNetPreprocess.onnx</c>, whose mean image gives the per-channel means. Get the package
/// by restoring it in any project (<c>&lt;PackageReference Include="Microsoft.ML.DnnImageFeaturizer.ResNet18"
/// Version="0.24.0" ExcludeAssets="all" /&gt;</c>: ~119 MB in the NuGet cache); <see cref="Locate"/> finds it there.
/// </summary>
public static class DnnImageFeaturizerResNet18
{
    public const string PackageId = "microsoft.ml.dnnimagefeaturizer.resnet18", Version = "0.24.0";

    /// <summary>
    /// The package's <c>tools/DnnImageModels</c> folder: <paramref name="folder"/> if given, else in the NuGet global
    /// packages folder (<c>NUGET_PACKAGES</c>, or <c>~/.nuget/packages</c>). Throws naming where it looked.
    /// </summary>
    public static string Locate(string? folder = null)
    {
        var candidates = new List<string>();
        if (folder is not null) candidates.Add(folder);
        else
        {
            string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            candidates.Add(Path.Combine(packages, PackageId, Version, "tools", "DnnImageModels"));
        }
        foreach (var c in candidates)
            if (File.Exists(Path.Combine(c, "ResNet18Onnx", "ResNet18.onnx")) && File.Exists(Path.Combine(c, "ResNetPrepOnnx", "ResNetPreprocess.onnx")))
                return c;
        throw new FileNotFoundException($"The ResNet-18 ONNX of NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 {Version} was not found in {string.Join(", ", candidates)}: restore the package (a PackageReference with ExcludeAssets=\"all\" is enough) or pass its tools/DnnImageModels folder.");
    }

    /// <summary>
    /// Backbone settings for <c>Backbone = "OnnxCnn"</c> on this model, for a student reading [0, 1] RGB images: the model
    /// file, <c>channels = bgr</c>, and mean/std so that standardisation gives the model its own input,
    /// 255 * x - mean (per channel: std 1/255, mean = the mean image's channel average / 255).
    /// </summary>
    public static Dictionary<string, string> BackboneSettings(string? folder = null)
    {
        string models = Locate(folder);
        var (b, g, r) = ChannelMeans(Path.Combine(models, "ResNetPrepOnnx", "ResNetPreprocess.onnx"));
        static string F(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        return new()
        {
            [OnnxCnnBackboneDefinition.ModelSetting] = Path.Combine(models, "ResNet18Onnx", "ResNet18.onnx"),
            [OnnxCnnBackboneDefinition.ChannelsSetting] = "bgr",
            [OnnxCnnBackboneDefinition.MeanSetting] = string.Join(",", new[] { r, g, b }.Select(m => F((float)(m / 255.0)))),
            [OnnxCnnBackboneDefinition.StdSetting] = string.Join(",", Enumerable.Repeat(F(1f / 255f), 3)),
        };
    }

    /// <summary>The per-channel averages (B, G, R) of the preprocessing graph's mean image (its only [1, 3, H, W] float initializer).</summary>
    public static (double B, double G, double R) ChannelMeans(string preprocessPath)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(preprocessPath));
        var mean = model.Graph.Initializer.FirstOrDefault(t => t.Dims.Count == 4 && t.Dims[1] == 3 && t.DataType == (int)TensorProto.Types.DataType.Float)
            ?? throw new InvalidDataException($"'{preprocessPath}' has no [1, 3, H, W] mean image.");
        float[] values = mean.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(mean.RawData.Span).ToArray() : [.. mean.FloatData];
        int plane = (int)(mean.Dims[2] * mean.Dims[3]);
        if (values.Length != 3 * plane) throw new InvalidDataException($"'{preprocessPath}': the mean image holds {values.Length} values for shape [{string.Join(", ", mean.Dims)}].");
        double Avg(int c) => values.AsSpan(c * plane, plane).ToArray().Average(v => (double)v);
        return (Avg(0), Avg(1), Avg(2));
    }
}
