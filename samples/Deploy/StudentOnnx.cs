// The exported student with ONNX Runtime alone: this file uses only Microsoft.ML.OnnxRuntime and the BCL
// (no ML.NET, no TorchSharp, no DualHeadML), so it can be copied into any .NET application.
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;

namespace DualHeadML.Deploy;

/// <summary>Scores images with a student exported by <c>DualHeadDistillTransformer.ExportToOnnx</c>.</summary>
public sealed class StudentOnnx : IDisposable
{
    private readonly InferenceSession _session;

    public StudentOnnx(string path)
    {
        _session = new InferenceSession(path);
        // Everything needed to feed the model and name its classes travels in the file's metadata.
        var meta = _session.ModelMetadata.CustomMetadataMap;
        string Get(string key) => meta.TryGetValue(key, out var value)
            ? value
            : throw new InvalidDataException($"'{path}': metadata '{key}' is missing; is this an exported DualHeadDistill student?");
        float[]? Floats(string key) => meta.TryGetValue(key, out var value)
            ? value.Split(',').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray()
            : null;

        InputName = Get("dualhead.input_name");                                   // "Features"
        FeatureSize = int.Parse(Get("dualhead.feature_size"), CultureInfo.InvariantCulture); // 784
        ClassNames = JsonSerializer.Deserialize<string[]>(Get("dualhead.class_names"))!;
        ImageShape = meta.TryGetValue("dualhead.image_shape", out var shape)      // "1,28,28" = C,H,W
            ? shape.Split(',').Select(int.Parse).ToArray()
            : [1, 1, FeatureSize];
        // How raw pixel values (0..255) became the features: x * scale, then (x - mean[c]) / std[c].
        // Written only when the model was trained with options.InputPreprocessing.
        HasPreprocessing = meta.ContainsKey("dualhead.scale");
        Scale = Floats("dualhead.scale")?[0] ?? 1f;
        Mean = Floats("dualhead.mean") ?? [0f];
        Std = Floats("dualhead.std") ?? [1f];
    }

    public string InputName { get; }
    public int FeatureSize { get; }
    public string[] ClassNames { get; }
    public int[] ImageShape { get; }
    public bool HasPreprocessing { get; }
    public float Scale { get; }
    public float[] Mean { get; }
    public float[] Std { get; }

    /// <summary>
    /// Turns one image's raw pixels ([C, H, W] planar, values 0..255, already the model's H x W) into features,
    /// as the metadata says. A grey image ([1, H, W]) given to a 3-channel model (ResNet, MobileNet) is
    /// replicated into its three channels, as the training pipeline's Concatenate(Features x 3) did.
    /// Other image sizes must first be resized and center-cropped to H x W
    /// (metadata <c>dualhead.resize</c>, <c>dualhead.input_size</c>).
    /// </summary>
    public void Preprocess(ReadOnlySpan<byte> rawPixels, Span<float> features)
    {
        if (!HasPreprocessing)
            throw new InvalidOperationException("The model records no preprocessing (it was trained without InputPreprocessing); build the features exactly as in training.");
        int channels = ImageShape[0], plane = FeatureSize / channels;
        if ((rawPixels.Length != FeatureSize && rawPixels.Length != plane) || features.Length != FeatureSize)
            throw new ArgumentException($"Expected {FeatureSize} pixels ({string.Join("x", ImageShape)}){(channels > 1 ? $" or one grey plane of {plane}" : "")}, got {rawPixels.Length}; features must hold {FeatureSize}, got {features.Length}.");
        for (int i = 0; i < FeatureSize; i++)
        {
            int c = i / plane;
            float mean = Mean[Math.Min(c, Mean.Length - 1)], std = Std[Math.Min(c, Std.Length - 1)];
            byte pixel = rawPixels.Length == FeatureSize ? rawPixels[i] : rawPixels[i % plane];
            features[i] = (pixel * Scale - mean) / std;
        }
    }

    /// <summary>
    /// Scores <paramref name="rows"/> images at once: <paramref name="features"/> holds rows * FeatureSize values.
    /// Returns the combined probabilities [rows, K] (row-major), the 0-based class per row and its name.
    /// Thread-safe: one session can serve many threads.
    /// </summary>
    public (float[] Probabilities, long[] ClassIndex, string[] ClassName) Predict(float[] features, int rows)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(
            OrtMemoryInfo.DefaultInstance, features.AsMemory(0, rows * FeatureSize), [rows, FeatureSize]);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, [InputName], [input], ["Score", "PredictedLabelIndex", "PredictedClassName"]);
        return (outputs[0].GetTensorDataAsSpan<float>().ToArray(),
                outputs[1].GetTensorDataAsSpan<long>().ToArray(),
                outputs[2].GetStringTensorAsArray());
    }

    public void Dispose() => _session.Dispose();
}
