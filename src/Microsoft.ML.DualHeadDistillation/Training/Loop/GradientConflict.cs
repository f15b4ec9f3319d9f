using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training.Loop;

/// <summary>
/// The gradient-conflict diagnostic (DHO paper, Fig. 3): on one batch, the cosine between the gradient of the
/// objective's weighted CE term and that of its weighted KD term, over the shared backbone's parameters and, with one
/// head, over the head's. Leaves no gradient behind. Objectives without both terms report NaN.
/// </summary>
internal static class GradientConflict
{
    public static (double Backbone, double? Head) Cosine(DualHeadStudent student, TrainingObjective objective, ObjectiveSpec spec, optim.Optimizer optimizer, Tensor x, Tensor y, Tensor? t, int nl)
    {
        Tensor[]? Grads(Func<ObjectiveLoss, Tensor?> term, IEnumerable<TorchSharp.Modules.Parameter> parameters)
        {
            optimizer.zero_grad();
            using var scope = NewDisposeScope();
            var (ceLabeled, kdAll) = student.ForwardTraining(x, nl);
            if (term(objective.Compute(new ObjectiveInputs(ceLabeled, kdAll, y, t, nl), spec)) is not { } value) return null;
            value.backward();
            return parameters.Select(p => p.grad is { } g ? g.detach().clone().MoveToOuterDisposeScope() : zeros_like(p).MoveToOuterDisposeScope()).ToArray();
        }
        var backbone = student.Backbone.parameters().ToArray();
        var head = student.HasTwoHeads ? [] : student.CeHead.parameters().ToArray();
        var tracked = backbone.Concat(head).ToArray();
        var ceGrads = Grads(l => l.WeightedCe, tracked);
        var kdGrads = Grads(l => l.WeightedKd, tracked);
        optimizer.zero_grad();
        if (ceGrads is null || kdGrads is null) return (double.NaN, head.Length > 0 ? double.NaN : null);
        double Cos(int from, int count)
        {
            double dot = 0, a = 0, b = 0;
            for (int i = from; i < from + count; i++)
            {
                dot += (ceGrads[i] * kdGrads[i]).sum().item<float>();
                a += (ceGrads[i] * ceGrads[i]).sum().item<float>();
                b += (kdGrads[i] * kdGrads[i]).sum().item<float>();
            }
            return a > 0 && b > 0 ? dot / Math.Sqrt(a * b) : double.NaN;
        }
        double backboneCos = Cos(0, backbone.Length);
        double? headCos = head.Length > 0 ? Cos(backbone.Length, head.Length) : null;
        return (backboneCos, headCos);
    }
}
