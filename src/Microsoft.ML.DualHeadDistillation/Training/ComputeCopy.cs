using Microsoft.ML.DualHeadDistillation.Students;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>
/// The copy of the student that computes forward and backward when the fast layout or arithmetic differs from the one the
/// rest of the library sees: the student the optimizer, the report, checkpoints and exports see (the master: float32,
/// contiguous weights, and AdamW's moments over them) stays as it is.
/// <list type="bullet">
/// <item><see cref="DualHeadPrecision.BFloat16"/>: convolutions and Linear layers of the copy hold bfloat16 weights;
/// BatchNorm layers and the input standardisation stay float32 (libtorch normalises bfloat16 activations with float32
/// statistics), and the standardised input is cast to bfloat16 before the backbone; the logits come back as bfloat16
/// and the loss is computed in float32 (the caller casts them).</item>
/// <item>Channels-last: the copy's 2-D convolution weights are laid out NHWC (strides [C*kh*kw, 1, kw*C, C]), so libtorch's
/// oneDNN convolutions (and the BatchNorm, activation and pooling after them) run channels-last, measured 0.86x the step
/// of ResNet-18 and 0.51x that of MobileNetV3 small on a 2-core EPYC (docs/performance.md). TorchSharp cannot save
/// non-contiguous tensors, so only this internal copy has that layout.</item>
/// <item>After backward, each master parameter's gradient is the copy's as a contiguous float32 tensor; after the optimizer
/// step the copy takes the updated master weights (rounded to bfloat16 where it computes in bfloat16); BatchNorm running
/// statistics are copied back to the master before it is scored or saved.</item>
/// </list>
/// </summary>
internal sealed class ComputeCopy : IDisposable
{
    private readonly (TorchSharp.Modules.Parameter Master, TorchSharp.Modules.Parameter Compute)[] _parameters;
    private readonly (Tensor Master, Tensor Compute)[] _buffers;

    private ComputeCopy(DualHeadStudent master, DualHeadStudent compute, bool bfloat16, int channelsLastConvolutions)
    {
        Student = compute;
        IsBFloat16 = bfloat16;
        ChannelsLastConvolutions = channelsLastConvolutions;
        var computeParameters = compute.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        _parameters = master.named_parameters().Select(p => (p.parameter, computeParameters.TryGetValue(p.name, out var c) ? c
            : throw new InvalidOperationException($"The compute copy of the student has no parameter '{p.name}'."))).ToArray();
        var computeBuffers = compute.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        _buffers = master.named_buffers().Where(b => computeBuffers.ContainsKey(b.name)).Select(b => (b.buffer, computeBuffers[b.name])).ToArray();
    }

    /// <summary>The copy that runs forward and backward.</summary>
    public DualHeadStudent Student { get; }
    /// <summary>True when the copy computes in bfloat16.</summary>
    public bool IsBFloat16 { get; }
    /// <summary>The 2-D convolutions whose weights the copy holds channels-last (0: none).</summary>
    public int ChannelsLastConvolutions { get; }

    /// <summary>True when a student has 2-D convolutions (channels-last then pays).</summary>
    public static bool HasConvolutions(nn.Module student) => student.modules().Any(m => m is TorchSharp.Modules.Conv2d);

    /// <summary>
    /// A copy of <paramref name="master"/>, made by <paramref name="createSameArchitecture"/> (a second student of the same
    /// spec) and given the master's weights and buffers; in bfloat16 when <paramref name="bfloat16"/>, with channels-last
    /// convolution weights when <paramref name="channelsLast"/>.
    /// </summary>
    public static ComputeCopy Create(DualHeadStudent master, Func<DualHeadStudent> createSameArchitecture, bool bfloat16, bool channelsLast)
    {
        var compute = createSameArchitecture();
        try
        {
            using (no_grad())
            {
                var source = master.state_dict();
                var target = compute.state_dict();
                foreach (var (name, value) in source)
                {
                    if (!target.TryGetValue(name, out var into) || !into.shape.SequenceEqual(value.shape))
                        throw new InvalidOperationException($"The compute copy of the student differs from it at '{name}'.");
                    into.copy_(value);
                }
            }
            if (bfloat16)
            {
                foreach (var (name, module) in compute.named_modules().ToArray())
                {
                    if (module is TorchSharp.Modules.BatchNorm1d or TorchSharp.Modules.BatchNorm2d or TorchSharp.Modules.BatchNorm3d or InputStandardization) continue;
                    if (!module.named_parameters(recurse: false).Any()) continue;
                    // Module.to(dtype) recurses: a module holding weights of its own must be a leaf (Conv, Linear) for BatchNorm below it to stay float32.
                    if (module.children().Any())
                        throw new NotSupportedException($"Precision = BFloat16: module '{name}' ({module.GetType().Name}) holds parameters and has child modules; only leaf modules can be cast.");
                    module.to(ScalarType.BFloat16);
                }
                compute.ComputeType = ScalarType.BFloat16;
            }
            int converted = 0;
            if (channelsLast)
                foreach (var conv in compute.modules().OfType<TorchSharp.Modules.Conv2d>())
                {
                    var weight = conv.weight!;
                    using var detached = weight.detach();
                    using var nhwc = detached.permute(0, 2, 3, 1);
                    using var dense = nhwc.contiguous();
                    conv.weight = new TorchSharp.Modules.Parameter(dense.permute(0, 3, 1, 2), weight.requires_grad);
                    weight.Dispose();
                    converted++;
                }
            return new ComputeCopy(master, compute, bfloat16, converted);
        }
        catch
        {
            compute.Dispose();
            throw;
        }
    }

    /// <summary>Mirrors requires_grad (frozen backbone epochs) from the master onto the copy.</summary>
    public void MirrorRequiresGrad()
    {
        foreach (var (master, compute) in _parameters) compute.requires_grad = master.requires_grad;
    }

    /// <summary>Clears the copy's gradients (before backward).</summary>
    public void ZeroGrad() => Student.zero_grad();

    /// <summary>Each master parameter's gradient := the copy's, as a contiguous float32 tensor (none where the copy has none).</summary>
    public void GradientsToMaster()
    {
        using var noGrad = no_grad();
        foreach (var (master, compute) in _parameters)
        {
            using var grad = compute.grad;
            if (grad is null)
            {
                master.grad = null;
                continue;
            }
            // Never the copy's storage; in the master's dtype and (contiguous) layout.
            var into = master.grad is { } existing && existing.is_contiguous() ? existing : empty_like(master);
            into.copy_(grad);
            if (!ReferenceEquals(into, master.grad)) master.grad = into;
        }
    }

    /// <summary>The copy's weights := the master's (after an optimizer step), rounded to the copy's dtypes.</summary>
    public void WeightsFromMaster()
    {
        using var noGrad = no_grad();
        foreach (var (master, compute) in _parameters) compute.copy_(master);
    }

    /// <summary>The master's buffers (BatchNorm running statistics) := the copy's.</summary>
    public void BuffersToMaster()
    {
        using var noGrad = no_grad();
        foreach (var (master, compute) in _buffers) master.copy_(compute);
    }

    /// <summary>The copy's buffers := the master's (after Precise BatchNorm recomputed them on the master).</summary>
    public void BuffersFromMaster()
    {
        using var noGrad = no_grad();
        foreach (var (master, compute) in _buffers) compute.copy_(master);
    }

    public void Dispose() => Student.Dispose();
}
