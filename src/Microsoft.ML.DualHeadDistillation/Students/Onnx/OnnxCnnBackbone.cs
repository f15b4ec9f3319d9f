using System.Globalization;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students.Onnx;

/// <summary>
/// A pretrained CNN imported from ONNX (<see cref="OnnxCnnNetwork"/>) as a trainable student backbone: z is the
/// graph's pooled output. Any such CNN a user has as ONNX (Conv / BatchNormalization / Relu / Add / pooling) can be a
/// pretrained student; its weights are the graph's.
/// </summary>
public sealed class OnnxCnnBackbone : StudentBackbone
{
    private readonly OnnxCnnNetwork network;
    private readonly InputImageShape _shape;
    private readonly string _file;

    public OnnxCnnBackbone(BackboneSpec spec) : base(spec)
    {
        _shape = spec.ImageShape ?? throw new ArgumentException("An OnnxCnn spec needs an image shape.", nameof(spec));
        string path = OnnxCnnBackboneDefinition.ModelPath(spec.Settings);
        if (spec.Settings.TryGetValue(OnnxCnnBackboneDefinition.HashSetting, out var hash) && RunSpecs.WeightsHash(path) != hash)
            throw new InvalidDataException($"ONNX model '{path}' is not the file this student was made from (its hash is no longer {hash}).");
        if (!File.Exists(path))
            throw new FileNotFoundException($"BackboneSettings[\"model\"]: ONNX model '{path}' does not exist. An OnnxCnn student rebuilds its layers from that file (its weights come from the checkpoint), so the file must be there to load a checkpoint; a model saved with mlContext.Model.Save or exported to ONNX does not need it.", path);
        network = OnnxCnnNetwork.Import(path, spec.Settings.TryGetValue(OnnxCnnBackboneDefinition.OutputSetting, out var o) ? o : null, OnnxCnnBackboneDefinition.SwapsChannels(spec.Settings));
        if (network.OutputSize != spec.EmbeddingSize)
        {
            network.Dispose();
            throw new InvalidDataException($"ONNX model '{path}' gives {network.OutputSize} features; the spec says {spec.EmbeddingSize}.");
        }
        _file = Path.GetFileName(path);
        RegisterComponents();
    }

    public override string Description => $"OnnxCnn {_file} ({network.Summary}) {_shape} -> {EmbeddingSize}";

    public override bool AcceptsOtherImageSizes => network.AcceptsOtherImageSizes;

    public override Tensor forward(Tensor input)
    {
        // Images [N, C, h, w] of another size (a resolution schedule) are read as they are.
        using var images = input.dim() == 4 ? input.alias() : input.view(-1, _shape.Channels, _shape.Height, _shape.Width);
        if (FrozenStages == 0) return network.forward(images);
        using var prefix = ForwardPrefix(images, FrozenStages);
        return network.ForwardSuffix(prefix, FrozenStages);
    }

    /// <summary>The graph's weights are the pretrained start.</summary>
    public override bool StartsPretrained => true;

    /// <summary>Where the graph is one tensor (after the stem, after each residual block), named by that ONNX value.</summary>
    public override IReadOnlyList<string> StageNames => network.StageNames;

    internal override Tensor ForwardPrefix(Tensor input, int stages)
    {
        using var images = input.dim() == 4 ? input.alias() : input.view(-1, _shape.Channels, _shape.Height, _shape.Width);
        using var noGrad = no_grad();
        return network.ForwardPrefix(images, stages);
    }

    internal override Tensor ForwardSuffix(Tensor prefix, int stages) => network.ForwardSuffix(prefix, stages);

    internal override IReadOnlyList<nn.Module> StageModules(int stages) => network.StageModules(stages);

    public override OnnxValue ExportOnnx(OnnxExportContext context, OnnxValue input) =>
        network.ExportOnnx(context, "backbone", context.Reshape(input, "backbone.image", _shape.Channels, _shape.Height, _shape.Width));

    protected override void Dispose(bool disposing)
    {
        if (disposing) network.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// "OnnxCnn": a CNN imported from an ONNX file as a pretrained, trainable backbone. Backbone settings: <c>model</c>
/// (the .onnx path, required), <c>output</c> (the value to use as z; default the only output), <c>channels</c>
/// ("rgb", default, or "bgr": the graph reads BGR and the student RGB, so its first convolutions' input channels are
/// reversed), and <c>mean</c> / <c>std</c> (per channel, in the units of the feature column, RGB order: the
/// preprocessing the weights were trained with, used by InputNormalization = Standardize). The file's hash goes into
/// the spec (<c>model_hash</c>), so a checkpoint resumes only on the same graph.
/// </summary>
[DualHeadComponent]
public sealed class OnnxCnnBackboneDefinition : BackboneDefinition
{
    public const string ModelSetting = "model", OutputSetting = "output", ChannelsSetting = "channels", MeanSetting = "mean", StdSetting = "std", HashSetting = "model_hash";

    public override string Name => "OnnxCnn";
    public override string Summary => "a CNN imported from ONNX (Conv, BatchNormalization, Relu, Add, pooling) with its pretrained weights; settings model, output, channels, mean, std.";
    public override bool ReadsImages => true;

    public override BackboneSpec Resolve(BackboneRequest request)
    {
        var spec = base.Resolve(request);
        string path = ModelPath(spec.Settings);
        if (spec.Settings.TryGetValue(ChannelsSetting, out var channels) && channels.Trim().ToLowerInvariant() is not ("rgb" or "bgr"))
            throw new ArgumentException($"Backbone setting '{ChannelsSetting}' is '{channels}'; expected 'rgb' or 'bgr'.", nameof(DualHeadDistillOptions.BackboneSettings));
        // Building the layers draws from TorchSharp's global generator: keep another thread's seeded student creation intact.
        using var network = ImportUnseeded(path, spec.Settings.TryGetValue(OutputSetting, out var o) ? o : null, SwapsChannels(spec.Settings));
        var shape = spec.ImageShape!.Value;
        if (network.DeclaredInputShape[0] != shape.Channels)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"ONNX model '{path}' reads {network.DeclaredInputShape[0]}-channel images; ImageShape is {shape}.");
        var output = network.OutputShapeAt([shape.Channels, shape.Height, shape.Width]);
        if (output.Length == 3 && (output[1] != 1 || output[2] != 1) || output.Aggregate(1L, (a, b) => a * b) != network.OutputSize)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape), $"ONNX model '{path}' gives [{string.Join(", ", output)}] for images of {shape}; its features must not depend on the image size (a global pool at the end).");
        foreach (var key in new[] { MeanSetting, StdSetting })
            if (spec.Settings.ContainsKey(key) && Floats(spec.Settings, key).Length != shape.Channels)
                throw new ArgumentException($"Backbone setting '{key}' needs {shape.Channels} values (one per channel); got '{spec.Settings[key]}'.", nameof(DualHeadDistillOptions.BackboneSettings));
        return spec with { EmbeddingSize = (int)network.OutputSize, Settings = spec.Settings.With(HashSetting, RunSpecs.WeightsHash(path)) };
    }

    public override PretrainedConfig? PretrainedFor(BackboneSpec spec, bool weightsLoaded) =>
        spec.Settings.ContainsKey(MeanSetting) || spec.Settings.ContainsKey(StdSetting)
            ? new PretrainedConfig(
                spec.Settings.ContainsKey(MeanSetting) ? Floats(spec.Settings, MeanSetting) : new float[spec.ImageShape!.Value.Channels],
                spec.Settings.ContainsKey(StdSetting) ? Floats(spec.Settings, StdSetting) : Enumerable.Repeat(1f, spec.ImageShape!.Value.Channels).ToArray())
            : null;

    public override StudentBackbone Create(BackboneSpec spec) => new OnnxCnnBackbone(spec);

    private static OnnxCnnNetwork ImportUnseeded(string path, string? output, bool swap)
    {
        lock (StudentFactory.s_seedLock)
        {
            using var state = random.get_rng_state();
            try
            {
                return OnnxCnnNetwork.Import(path, output, swap);
            }
            finally
            {
                random.set_rng_state(state);
            }
        }
    }

    internal static string ModelPath(SpecSettings settings) =>
        settings.TryGetValue(ModelSetting, out var path) && !string.IsNullOrWhiteSpace(path) ? path
        : throw new ArgumentException($"Backbone OnnxCnn needs the setting '{ModelSetting}': the path of the .onnx file (BackboneSettings = new() {{ [\"model\"] = \"resnet18.onnx\" }}).", nameof(DualHeadDistillOptions.BackboneSettings));

    internal static bool SwapsChannels(SpecSettings settings) =>
        settings.TryGetValue(ChannelsSetting, out var c) && c.Trim().Equals("bgr", StringComparison.OrdinalIgnoreCase);

    private static float[] Floats(SpecSettings settings, string key) =>
        settings[key].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(v =>
            float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && float.IsFinite(f) ? f
            : throw new ArgumentException($"Backbone setting '{key}' is '{settings[key]}'; expected numbers separated by commas.", nameof(DualHeadDistillOptions.BackboneSettings))).ToArray();
}
