using Microsoft.ML.DualHeadDistillation.Students;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>
/// Mixed-precision training for <see cref="DualHeadPrecision.BFloat16"/>: the student the optimizer, the
/// report, checkpoints and exports see stays float32 (the master weights, and AdamW's moments over them); a
/// second copy of it computes the forward and backward passes in bfloat16.
/// <list type="bullet">
/// <item>Convolutions and Linear layers of the copy hold bfloat16 weights; BatchNorm layers and the input
/// standardisation stay float32 (libtorch normalises bfloat16 activations with float32 statistics), and the
/// standardised input is cast to bfloat16 before the backbone.</item>
/// <item>The logits come back as bfloat16 and the loss is computed in float32 (the caller casts them).</item>
/// <item>After backward, each master parameter's gradient is the copy's gradient cast to float32; after the
/// optimizer step the copy takes the updated master weights (rounded to bfloat16); BatchNorm running
/// statistics are copied back to the master before it is scored or saved.</item>
/// </list>
/// </summary>
internal sealed class BFloat16Compute : IDisposable
{
    private readonly DualHeadStudent _master;
    private readonly (TorchSharp.Modules.Parameter Master, TorchSharp.Modules.Parameter Compute)[] _parameters;
    private readonly (Tensor Master, Tensor Compute)[] _buffers;

    private BFloat16Compute(DualHeadStudent master, DualHeadStudent compute)
    {
        _master = master;
        Student = compute;
        var computeParameters = compute.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        _parameters = master.named_parameters().Select(p => (p.parameter, computeParameters.TryGetValue(p.name, out var c) ? c
            : throw new InvalidOperationException($"The bfloat16 copy of the student has no parameter '{p.name}'."))).ToArray();
        var computeBuffers = compute.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        _buffers = master.named_buffers().Where(b => computeBuffers.ContainsKey(b.name)).Select(b => (b.buffer, computeBuffers[b.name])).ToArray();
    }

    /// <summary>The bfloat16 copy that runs forward and backward.</summary>
    public DualHeadStudent Student { get; }

    /// <summary>
    /// A bfloat16 copy of <paramref name="master"/>, made by <paramref name="createSameArchitecture"/> (a second
    /// student of the same spec) and given the master's weights and buffers.
    /// </summary>
    public static BFloat16Compute Create(DualHeadStudent master, Func<DualHeadStudent> createSameArchitecture)
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
                        throw new InvalidOperationException($"The bfloat16 copy of the student differs from it at '{name}'.");
                    into.copy_(value);
                }
            }
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
            return new BFloat16Compute(master, compute);
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

    /// <summary>Each master parameter's gradient := the copy's, as float32 (none where the copy has none).</summary>
    public void GradientsToMaster()
    {
        using var noGrad = no_grad();
        foreach (var (master, compute) in _parameters)
        {
            using var grad = compute.grad;
            // A float32 gradient (BatchNorm) is copied, so the master's never shares the copy's storage.
            master.grad = grad is null ? null : grad.dtype == ScalarType.Float32 ? grad.clone() : grad.to(ScalarType.Float32);
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

    public void Dispose() => Student.Dispose();
}
