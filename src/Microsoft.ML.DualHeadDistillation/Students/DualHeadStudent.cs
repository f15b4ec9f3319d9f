using Microsoft.ML.DualHeadDistillation.Export;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>
/// The DHO student: optional input standardisation, a shared backbone z = g(x) and two linear heads, h_CE
/// (trained on labels only) and h_KD (trained on the teacher only). With one head (the single-head
/// objectives) h_CE is the only head and stands in for both.
/// </summary>
public sealed class DualHeadStudent : nn.Module<Tensor, (Tensor Ce, Tensor Kd)>
{
    private readonly InputStandardization? input_norm;
    private readonly StudentBackbone backbone;
    private readonly nn.Module<Tensor, Tensor> ce_head;
    private readonly nn.Module<Tensor, Tensor>? kd_head;

    public DualHeadStudent(StudentBackbone backbone, int classCount, bool twoHeads = true, InputStandardization? inputStandardization = null)
        : base(Native.TorchSharpNative.Ensured(nameof(DualHeadStudent)))
    {
        this.backbone = backbone;
        if (inputStandardization is not null && inputStandardization.InputSize != backbone.InputSize)
            throw new ArgumentException($"The input standardisation covers {inputStandardization.InputSize} values; the backbone reads {backbone.InputSize}.", nameof(inputStandardization));
        input_norm = inputStandardization;
        ClassCount = classCount;
        ce_head = nn.Linear(backbone.EmbeddingSize, classCount);
        kd_head = twoHeads ? nn.Linear(backbone.EmbeddingSize, classCount) : null;
        RegisterComponents();
    }

    public StudentBackbone Backbone => backbone;
    public nn.Module<Tensor, Tensor> CeHead => ce_head;
    /// <summary>The KD head; with one head, the same module as <see cref="CeHead"/>.</summary>
    public nn.Module<Tensor, Tensor> KdHead => kd_head ?? ce_head;
    public bool HasTwoHeads => kd_head is not null;
    public int HeadCount => HasTwoHeads ? 2 : 1;
    public int ClassCount { get; }
    /// <summary>The input standardisation applied before the backbone, or null.</summary>
    public InputStandardization? InputStandardization => input_norm;

    /// <summary>Total number of trainable parameters (backbone and both heads).</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    public string Description => (input_norm is null ? "" : "standardised input; ") + (HasTwoHeads
        ? $"{backbone.Description}; heads h_CE, h_KD: Linear({backbone.EmbeddingSize} -> {ClassCount}); {ParameterCount:N0} parameters"
        : $"{backbone.Description}; one head: Linear({backbone.EmbeddingSize} -> {ClassCount}); {ParameterCount:N0} parameters");

    /// <summary>Both heads' logits for a batch of flattened rows (with one head, its logits twice).</summary>
    public override (Tensor Ce, Tensor Kd) forward(Tensor input)
    {
        using var z = Embed(input);
        var ce = ce_head.forward(z);
        return (ce, kd_head is null ? ce.alias() : kd_head.forward(z));
    }

    /// <summary>
    /// Training forward pass over one concatenated batch whose first <paramref name="labeledRows"/> rows are
    /// labeled: the backbone runs once on all rows, h_CE sees only the labeled rows' z, h_KD sees every row.
    /// Unlabeled rows therefore never reach the CE head.
    /// </summary>
    public (Tensor CeLabeled, Tensor KdAll) ForwardTraining(Tensor input, long labeledRows)
    {
        using var z = Embed(input);
        return Heads(z, labeledRows);
    }

    /// <summary>
    /// <see cref="ForwardTraining"/> from the output of the backbone's frozen stages (<see cref="FrozenPrefix"/>, or a
    /// cached copy of it): the remaining stages, the pool and the heads.
    /// </summary>
    internal (Tensor CeLabeled, Tensor KdAll) ForwardTrainingFromPrefix(Tensor prefix, long labeledRows)
    {
        using var z = backbone.ForwardSuffix(prefix, backbone.FrozenStages);
        return Heads(z, labeledRows);
    }

    /// <summary>The output of the backbone's frozen stages (no gradient) for flattened rows: standardised, resized and cast as in <see cref="Embed"/>.</summary>
    internal Tensor FrozenPrefix(Tensor input)
    {
        using var scope = NewDisposeScope();
        return backbone.ForwardPrefix(Prepare(input), backbone.FrozenStages).MoveToOuterDisposeScope();
    }

    private (Tensor CeLabeled, Tensor KdAll) Heads(Tensor z, long labeledRows)
    {
        if (kd_head is null)
        {
            // One head: the same logits serve the CE term (labeled rows) and the KD term (every row).
            var all = ce_head.forward(z);
            return (all.narrow(0, 0, labeledRows), all);
        }
        using var zLabeled = z.narrow(0, 0, labeledRows);
        return (ce_head.forward(zLabeled), kd_head.forward(z));
    }

    /// <summary>
    /// The dtype the backbone and heads compute in, when it is not the input's (bfloat16 for mixed-precision
    /// training: the standardised input is cast to it before the backbone). Null: the input's dtype (float32).
    /// </summary>
    internal ScalarType? ComputeType { get; set; }

    /// <summary>
    /// Training under a resolution schedule: the height the standardised images are resized to (bilinear, antialiased;
    /// the width in proportion) before the backbone. Null (and always at inference): the full <see cref="StudentBackbone.ImageShape"/>.
    /// </summary>
    internal int? TrainingImageHeight { get; set; }

    /// <summary>z = g(standardise(x)).</summary>
    public Tensor Embed(Tensor input)
    {
        using var scope = NewDisposeScope();
        return backbone.forward(Prepare(input)).MoveToOuterDisposeScope();
    }

    /// <summary>The backbone's input: standardised, resized under a resolution schedule, cast to the compute type (its temporaries in the caller's scope).</summary>
    private Tensor Prepare(Tensor input)
    {
        var x = input_norm?.forward(input) ?? input;
        if (TrainingImageHeight is int height && backbone.ImageShape is { } shape && height != shape.Height) x = Resize(x, shape, height);
        return ComputeType is { } type && x.dtype != type ? x.to(type) : x;
    }

    /// <summary>Rows [N, C*H*W] as images [N, C, height, width * height / H].</summary>
    internal static Tensor Resize(Tensor rows, Specs.InputImageShape shape, int height)
    {
        using var images = rows.view(-1, shape.Channels, shape.Height, shape.Width);
        long width = Math.Max(1, (long)Math.Round((double)shape.Width * height / shape.Height));
        return nn.functional.interpolate(images, [height, width], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
    }

    /// <summary>Writes standardisation (if any) and the backbone as ONNX nodes; returns z.</summary>
    public OnnxValue ExportEmbedding(OnnxExportContext context, OnnxValue input)
    {
        if (input_norm is not null) input = input_norm.ExportOnnx(context, "input_standardization", input);
        return backbone.ExportOnnx(context, input);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            input_norm?.Dispose();
            backbone.Dispose();
            ce_head.Dispose();
            kd_head?.Dispose();
        }
        base.Dispose(disposing);
    }
}
