using Microsoft.ML.DualHeadDistillation.Export;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>Per-channel input statistics of a student, and where they came from.</summary>
/// <param name="Mean">Mean per channel.</param>
/// <param name="Std">Standard deviation per channel (population; 1 for a constant channel).</param>
public sealed record InputStatistics(float[] Mean, float[] Std)
{
    public override string ToString() => Mean.Length <= 4
        ? FormattableString.Invariant($"mean [{string.Join(", ", Mean.Select(m => m.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture)))}], std [{string.Join(", ", Std.Select(s => s.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture)))}]")
        : $"{Mean.Length} channels";
}

/// <summary>
/// (x - mean) / std on the flattened input rows, with per-channel statistics expanded to every slot of the
/// channel. The statistics are buffers, so they are saved, loaded and moved with the weights, and exported as
/// one Sub and one Div node at the start of the student's ONNX graph.
/// </summary>
public sealed class InputStandardization : nn.Module<Tensor, Tensor>
{
    private const string MeanBuffer = "mean", StdBuffer = "std";

    /// <param name="inputSize">D, values per flattened row.</param>
    /// <param name="channels">Channels: C of a [C, H, W] image (each channel then covers D / C consecutive slots), or D for a feature vector.</param>
    public InputStandardization(int inputSize, int channels) : base(Native.TorchSharpNative.Ensured(nameof(InputStandardization)))
    {
        if (channels < 1 || inputSize % channels != 0)
            throw new ArgumentOutOfRangeException(nameof(channels), $"{channels} channels do not divide the {inputSize} input values.");
        InputSize = inputSize;
        Channels = channels;
        register_buffer(MeanBuffer, zeros(inputSize));
        register_buffer(StdBuffer, ones(inputSize));
    }

    public int InputSize { get; }
    public int Channels { get; }

    /// <summary>Sets the statistics (one value per channel); a std that is not a finite number &gt; 0 is an error.</summary>
    public void Set(InputStatistics statistics)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        if (statistics.Mean.Length != Channels || statistics.Std.Length != Channels)
            throw new ArgumentException($"Input statistics have {statistics.Mean.Length} means and {statistics.Std.Length} stds; the student standardises {Channels} channels.", nameof(statistics));
        for (int c = 0; c < Channels; c++)
            if (!float.IsFinite(statistics.Mean[c]) || !(statistics.Std[c] > 0) || !float.IsFinite(statistics.Std[c]))
                throw new ArgumentOutOfRangeException(nameof(statistics), $"Input statistics of channel {c}: mean {statistics.Mean[c]}, std {statistics.Std[c]}; expected a finite mean and a finite std > 0.");
        int per = InputSize / Channels;
        var mean = new float[InputSize];
        var std = new float[InputSize];
        for (int c = 0; c < Channels; c++)
        {
            mean.AsSpan(c * per, per).Fill(statistics.Mean[c]);
            std.AsSpan(c * per, per).Fill(statistics.Std[c]);
        }
        using var noGrad = no_grad();
        using (var m = tensor(mean)) Buffer(MeanBuffer).copy_(m);
        using (var s = tensor(std)) Buffer(StdBuffer).copy_(s);
    }

    /// <summary>The statistics per channel, read back from the buffers.</summary>
    public InputStatistics Statistics
    {
        get
        {
            var mean = OnnxExportContext.Values(Buffer(MeanBuffer));
            var std = OnnxExportContext.Values(Buffer(StdBuffer));
            int per = InputSize / Channels;
            return new InputStatistics(
                Enumerable.Range(0, Channels).Select(c => mean[c * per]).ToArray(),
                Enumerable.Range(0, Channels).Select(c => std[c * per]).ToArray());
        }
    }

    public override Tensor forward(Tensor input)
    {
        using var centred = input - Buffer(MeanBuffer);
        return centred / Buffer(StdBuffer);
    }

    /// <summary>Sub(mean) then Div(std), per slot.</summary>
    public OnnxValue ExportOnnx(OnnxExportContext context, string path, OnnxValue input)
    {
        string mean = context.Weights($"{path}.mean", Buffer(MeanBuffer));
        string std = context.Weights($"{path}.std", Buffer(StdBuffer));
        var centred = context.Node("Sub", [input.Name, mean], input.Shape, $"{path}.centred");
        return context.Node("Div", [centred.Name, std], input.Shape, path);
    }

    private Tensor Buffer(string name) => get_buffer(name) ?? throw new InvalidOperationException($"InputStandardization lost its '{name}' buffer.");
}
