using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training.Loop;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Fit's one step as a public type (what samples/Quickstart's bare step and bench parity-steps run).</summary>
[TestClass]
public sealed class TrainingStepTests
{
    private static DualHeadStudent Student()
    {
        torch.random.manual_seed(5);
        return new DualHeadStudent(new SmallCnnBackbone(1, 28, 28, 32), 10);
    }

    [TestMethod]
    public void AStepReportsTheObjectivesLossBeforeTheUpdateAndMovesTheWeights()
    {
        using var student = Student();
        student.train();
        using var optimizer = optim.AdamW(student.parameters(), 1e-3);
        var objective = DualHeadRegistry.Objectives.Get("DualHead");
        var spec = objective.Resolve(DualHeadDefaults.Lambda, DualHeadDefaults.Temperature, SpecSettings.Empty);
        var step = new TrainingStep(student, objective, optimizer);
        using var scope = NewDisposeScope();
        torch.random.manual_seed(1);
        var x = rand(16, 784);
        var t = randn(16, 10);
        var y = randint(0, 10, [8]);
        double expected;
        using (no_grad())
        {
            var (ce, kd) = student.ForwardTraining(x, 8);
            var loss = objective.Compute(new ObjectiveInputs(ce, kd, y, t, 8), spec);
            expected = loss.Total.item<float>();
        }
        var before = student.CeHead.parameters().First().detach().clone();
        var figures = step.Run(x, y, t, 8);
        Assert.AreEqual(expected, figures.Loss, 1e-5, "the step minimised the objective's loss on these rows");
        Assert.AreEqual(figures.Loss, DualHeadDefaults.Lambda * figures.Ce + (1 - DualHeadDefaults.Lambda) * figures.Kd, 1e-4, "L = lambda*CE + (1-lambda)*KD");
        Assert.IsTrue((student.CeHead.parameters().First() - before).abs().max().item<float>() > 0, "AdamW moved h_CE");
    }

    [TestMethod]
    public void ADivergingStepIsTheTrainersDivergenceErrorNamingTheLearningRate()
    {
        using var student = Student();
        student.train();
        using var optimizer = optim.AdamW(student.parameters(), 3e38);
        var step = new TrainingStep(student, DualHeadRegistry.Objectives.Get("DualHead"), optimizer);
        using var scope = NewDisposeScope();
        var e = Assert.ThrowsExactly<DualHeadTrainingDivergedException>(() => step.Run(rand(16, 784), randint(0, 10, [8]), randn(16, 10), 8));
        StringAssert.Contains(e.Message, "LearningRate = ");
    }
}
