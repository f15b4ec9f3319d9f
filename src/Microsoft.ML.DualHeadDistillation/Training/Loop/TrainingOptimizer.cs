using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training.Loop;

/// <summary>
/// The run's AdamW: one parameter group, or (a backbone learning-rate scale) the backbone's parameters and then
/// everything else (the heads); the schedule's learning rate set per step; its state saved in and loaded from checkpoints.
/// </summary>
internal sealed class TrainingOptimizer : IDisposable
{
    private readonly float[] _scales;

    private TrainingOptimizer(TorchSharp.Modules.AdamW adamW, float[] scales, TorchSharp.Modules.Parameter[] backbone)
    {
        AdamW = adamW;
        _scales = scales;
        BackboneParameters = backbone;
    }

    public TorchSharp.Modules.AdamW AdamW { get; }
    /// <summary>The backbone's parameters (frozen for FreezeBackboneEpochs and FrozenStages).</summary>
    public TorchSharp.Modules.Parameter[] BackboneParameters { get; }

    public static TrainingOptimizer Create(DualHeadStudent student, OptimizerSpec spec, FineTuningSpec tuning)
    {
        var backbone = student.Backbone.parameters().ToArray();
        float[] scales = tuning.BackboneLearningRateScale == 1f ? [1f] : [tuning.BackboneLearningRateScale, 1f];
        var adamW = scales.Length == 1
            ? optim.AdamW(student.parameters(), spec.LearningRate, weight_decay: spec.WeightDecay)
            : optim.AdamW(new[]
            {
                new TorchSharp.Modules.AdamW.ParamGroup(backbone, lr: spec.LearningRate * scales[0], weight_decay: spec.WeightDecay),
                // Materialised, by reference: TorchSharp keeps the enumerable, and Tensor.Equals compares values.
                new TorchSharp.Modules.AdamW.ParamGroup(student.parameters().Except(backbone, ReferenceEqualityComparer.Instance).Cast<TorchSharp.Modules.Parameter>().ToArray(), lr: spec.LearningRate, weight_decay: spec.WeightDecay),
            }, spec.LearningRate, weight_decay: spec.WeightDecay);
        return new TrainingOptimizer(adamW, scales, backbone);
    }

    /// <summary>Sets the schedule's learning rate (scaled per group).</summary>
    public void SetLearningRate(double lr)
    {
        int g = 0;
        foreach (var group in AdamW.ParamGroups) group.LearningRate = lr * _scales[g++];
    }

    /// <summary>AdamW's state as bytes (a checkpoint's optimizer entry).</summary>
    public byte[] State()
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
            AdamW.save_state_dict(writer);
        return buffer.ToArray();
    }

    public void Load(byte[] state)
    {
        using var reader = new BinaryReader(new MemoryStream(state, writable: false));
        AdamW.load_state_dict(reader);
    }

    public void Dispose() => AdamW.Dispose();
}
