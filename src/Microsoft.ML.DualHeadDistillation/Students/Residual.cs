using Microsoft.ML.DualHeadDistillation.Export;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>
/// A residual connection: body(x) + shortcut(x) (shortcut = identity when null), as in ResNet's blocks. Put
/// the activation after it in a Sequential. Exports itself as the body's and shortcut's nodes plus one Add.
/// </summary>
public sealed class Residual : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly nn.Module<Tensor, Tensor> body;
    private readonly nn.Module<Tensor, Tensor>? shortcut;

    public Residual(nn.Module<Tensor, Tensor> body, nn.Module<Tensor, Tensor>? shortcut = null) : base(nameof(Residual))
    {
        this.body = body ?? throw new ArgumentNullException(nameof(body));
        this.shortcut = shortcut;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var y = body.forward(input);
        if (shortcut is null) return y + input;
        using var s = shortcut.forward(input);
        return y + s;
    }

    public OnnxValue ExportOnnx(OnnxExportContext context, string path, OnnxValue input)
    {
        var y = context.Export(body, $"{path}.body", input);
        var s = shortcut is null ? input : context.Export(shortcut, $"{path}.shortcut", input);
        return context.Add(y, s, path);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            body.Dispose();
            shortcut?.Dispose();
        }
        base.Dispose(disposing);
    }
}
