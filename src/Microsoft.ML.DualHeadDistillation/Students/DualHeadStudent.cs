using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>
/// The DHO student: a shared backbone z = g(x) and two linear heads, h_CE (trained on labels only) and
/// h_KD (trained on the teacher only).
/// </summary>
public sealed class DualHeadStudent : nn.Module<Tensor, (Tensor Ce, Tensor Kd)>
{
    private readonly StudentBackbone backbone;
    private readonly nn.Module<Tensor, Tensor> ce_head;
    private readonly nn.Module<Tensor, Tensor> kd_head;

    public DualHeadStudent(StudentBackbone backbone, int classCount) : base(nameof(DualHeadStudent))
    {
        this.backbone = backbone;
        ClassCount = classCount;
        ce_head = nn.Linear(backbone.EmbeddingSize, classCount);
        kd_head = nn.Linear(backbone.EmbeddingSize, classCount);
        RegisterComponents();
    }

    public StudentBackbone Backbone => backbone;
    public nn.Module<Tensor, Tensor> CeHead => ce_head;
    public nn.Module<Tensor, Tensor> KdHead => kd_head;
    public int ClassCount { get; }

    /// <summary>Total number of trainable parameters (backbone and both heads).</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    public string Description => $"{backbone.Description}; heads h_CE, h_KD: Linear({backbone.EmbeddingSize} -> {ClassCount}); {ParameterCount:N0} parameters";

    /// <summary>Both heads' logits for a batch of flattened rows.</summary>
    public override (Tensor Ce, Tensor Kd) forward(Tensor input)
    {
        using var z = backbone.forward(input);
        return (ce_head.forward(z), kd_head.forward(z));
    }

    /// <summary>
    /// Training forward pass over one concatenated batch whose first <paramref name="labeledRows"/> rows are
    /// labeled: the backbone runs once on all rows, h_CE sees only the labeled rows' z, h_KD sees every row.
    /// Unlabeled rows therefore never reach the CE head.
    /// </summary>
    public (Tensor CeLabeled, Tensor KdAll) ForwardTraining(Tensor input, long labeledRows)
    {
        using var z = backbone.forward(input);
        using var zLabeled = z.narrow(0, 0, labeledRows);
        return (ce_head.forward(zLabeled), kd_head.forward(z));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            backbone.Dispose();
            ce_head.Dispose();
            kd_head.Dispose();
        }
        base.Dispose(disposing);
    }
}
