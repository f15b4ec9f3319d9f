using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training.Loop;

/// <summary>The figures of one training step, read from the device once.</summary>
/// <param name="Ce">The objective's CE term (NaN when it has none).</param>
/// <param name="Kd">The objective's KD term (NaN when it has none).</param>
/// <param name="Loss">The total loss the step minimised.</param>
public readonly record struct StepFigures(double Ce, double Kd, double Loss);

/// <summary>
/// One optimisation step, as Fit takes it: the student's forward over the batch (h_CE on the labeled rows, h_KD on
/// all), the objective's loss, backward, the optimizer's step, and one host read of the figures that also checks that
/// the loss and every weight are still finite (a non-finite one is <see cref="DualHeadTrainingDivergedException"/>).
/// The learning rate is the caller's (set it on the optimizer before <c>Run</c>). Samples and benchmarks that
/// time or compare a bare step use this one, so they measure what Fit does.
/// </summary>
public sealed class TrainingStep
{
    private readonly DualHeadStudent _master;
    private readonly TrainingObjective _objective;
    private readonly ObjectiveSpec _objectiveSpec;
    private readonly OptimizerSpec _optimizerSpec;
    private readonly optim.Optimizer _optimizer;
    private readonly ComputeCopy? _copy;

    /// <summary>
    /// A step of <paramref name="student"/> under <paramref name="objective"/> (lambda and T from <see cref="DualHeadDefaults"/>
    /// unless <paramref name="objectiveSpec"/>). A divergence error names the optimizer's learning rate.
    /// </summary>
    public TrainingStep(DualHeadStudent student, TrainingObjective objective, optim.Optimizer optimizer, ObjectiveSpec? objectiveSpec = null)
        : this(student, objective, objectiveSpec ?? objective.Resolve(DualHeadDefaults.Lambda, DualHeadDefaults.Temperature, SpecSettings.Empty),
            new OptimizerSpec((float)(optimizer.ParamGroups.FirstOrDefault()?.LearningRate ?? DualHeadDefaults.LearningRate), DualHeadDefaults.WeightDecay, DualHeadDefaults.WarmupSteps), optimizer, null)
    {
    }

    internal TrainingStep(DualHeadStudent master, TrainingObjective objective, ObjectiveSpec objectiveSpec, OptimizerSpec optimizerSpec, optim.Optimizer optimizer, ComputeCopy? copy)
    {
        _master = master;
        _objective = objective;
        _objectiveSpec = objectiveSpec;
        _optimizerSpec = optimizerSpec;
        _optimizer = optimizer;
        _copy = copy;
    }

    /// <summary>
    /// One step on <paramref name="x"/> ([N, D]; the first <paramref name="labeledRows"/> rows labeled by <paramref name="y"/>),
    /// with the teacher's logits <paramref name="teacher"/> ([N, K]) when the objective uses them. Call it inside a dispose scope.
    /// </summary>
    public StepFigures Run(Tensor x, Tensor y, Tensor? teacher, int labeledRows) => Run(x, y, teacher, labeledRows, null, 0, 0);

    internal StepFigures Run(Tensor x, Tensor y, Tensor? t, int nl, Func<(Tensor CeLabeled, Tensor KdAll)>? forward, int stepNumber, int epoch)
    {
        var compute = _copy?.Student ?? _master;
        var (ceLabeled, kdAll) = forward?.Invoke() ?? compute.ForwardTraining(x, nl);
        if (_copy is { IsBFloat16: true }) (ceLabeled, kdAll) = (ceLabeled.to(ScalarType.Float32), kdAll.to(ScalarType.Float32)); // the loss in float32
        var loss = _objective.Compute(new ObjectiveInputs(ceLabeled, kdAll, y, t, nl), _objectiveSpec);
        _optimizer.zero_grad();
        _copy?.ZeroGrad();
        loss.Total.backward();
        _copy?.GradientsToMaster();
        // One host read per step: the loss, its terms and whether every weight is still finite (below).
        Tensor Figure(Tensor? term) => term is null ? full(Array.Empty<long>(), float.NaN, device: loss.Total.device) : term.detach().reshape([]);
        var figures = new[] { Figure(loss.Total), Figure(loss.Ce), Figure(loss.Kd) };
        bool lossFinite = true;
        double lossValue = 0, ceValue = 0;
        double? kdTerm = null;
        void ReadFigures(Tensor? weightsFinite)
        {
            using var values = stack(weightsFinite is null ? figures : [.. figures, weightsFinite.to(ScalarType.Float32).reshape([]).to(loss.Total.device)]).cpu();
            var v = values.data<float>().ToArray();
            (lossValue, ceValue, kdTerm) = (v[0], loss.Ce is null ? double.NaN : v[1], loss.Kd is null ? null : v[2]);
            lossFinite = double.IsFinite(lossValue);
            if (weightsFinite is not null && lossFinite && v[3] == 0)
                throw NonFiniteGuard.Diverged($"parameter '{NonFiniteGuard.FirstNonFiniteParameter(_master)}' is not finite after the update", stepNumber, epoch, ceValue, kdTerm, lossValue, _objectiveSpec, _optimizerSpec);
        }
        try
        {
            _optimizer.step();
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            ReadFigures(null);
            if (!lossFinite) throw NonFiniteGuard.Diverged("the loss is not finite", stepNumber, epoch, ceValue, kdTerm, lossValue, _objectiveSpec, _optimizerSpec);
            // libtorch refuses values that overflow float (e.g. LearningRate 3e38): report it as divergence.
            throw NonFiniteGuard.Diverged($"the optimizer step failed ({e.Message.Split('\n')[0].Trim()})", stepNumber, epoch, ceValue, kdTerm, lossValue, _objectiveSpec, _optimizerSpec, e);
        }
        // A non-finite loss is reported as such (it is why the weights are no longer finite).
        ReadFigures(NonFiniteGuard.AllFinite(_master));
        if (!lossFinite) throw NonFiniteGuard.Diverged("the loss is not finite", stepNumber, epoch, ceValue, kdTerm, lossValue, _objectiveSpec, _optimizerSpec);
        _copy?.WeightsFromMaster();
        return new StepFigures(ceValue, kdTerm ?? double.NaN, lossValue);
    }
}
