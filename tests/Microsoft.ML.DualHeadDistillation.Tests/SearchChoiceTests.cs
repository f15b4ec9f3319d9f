using Microsoft.ML.DualHeadDistillation.Search;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>The search keeps its best only when it beats the configuration without a search by more than the noise.</summary>
[TestClass]
public sealed class SearchChoiceTests
{
    private static readonly SearchConfiguration Default = new(DualHeadTrainingMode.DualHead, DualHeadBackbone.SmallCnn, 1e-3f, 2f);
    private static readonly SearchConfiguration Other = new(DualHeadTrainingMode.SingleHeadKd, DualHeadBackbone.SmallCnn, 3e-3f, 4f);

    /// <summary>A trial whose rows are right where <paramref name="right"/> says (rows 0..n-1).</summary>
    private static SearchTrial<SearchConfiguration> Trial(SearchConfiguration arm, int rows, Func<int, bool> right, int budget = 3)
    {
        var outcomes = new string(Enumerable.Range(0, rows).Select(i => right(i) ? '1' : '0').ToArray());
        return new SearchTrial<SearchConfiguration>(arm, 1, budget, outcomes.Count(c => c == '1') / (double)rows, 1) { Outcomes = outcomes };
    }

    [TestMethod]
    public void ALeadWithinTheNoiseKeepsTheConfigurationWithoutASearch()
    {
        // 40 rows: the reference gets the first 28 right, the best those and 3 more (7.5 points ahead, b = 3, c = 0).
        var reference = Trial(Default, 40, i => i < 28);
        var best = Trial(Other, 40, i => i < 31);
        var choice = SearchChoice.Decide(best, reference, Default, 2, fewestRowsPerClass: 4);
        double se = Math.Sqrt(3 - 9 / 40.0) / 40; // 0.0417: the lead 0.075 is below 2 SE = 0.083
        Assert.AreEqual(se, choice.StandardError, 1e-12);
        Assert.AreEqual(2 * se, choice.RequiredLead, 1e-12);
        Assert.AreEqual(Default, choice.Chosen);
        Assert.AreEqual(Other, choice.Best);
        Assert.AreEqual(0.775, choice.BestScore, 1e-12);
        Assert.AreEqual(0.7, choice.ReferenceScore, 1e-12);
        Assert.AreEqual(40, choice.ValidationRows);
        StringAssert.Contains(choice.Reason, "within the noise");
        StringAssert.Contains(choice.Reason, "only 4 images in its smallest class");

        // The same 7.5-point lead on 400 rows (b = 30) is beyond the noise: the best is kept.
        var big = SearchChoice.Decide(Trial(Other, 400, i => i < 310), Trial(Default, 400, i => i < 280), Default, 2, fewestRowsPerClass: 40);
        Assert.AreEqual(Other, big.Chosen);
        Assert.AreEqual(2 * Math.Sqrt(30 - 900 / 400.0) / 400, big.RequiredLead, 1e-12);
        StringAssert.Contains(big.Reason, "more than 2 standard errors");
        Assert.IsFalse(big.Reason.Contains("smallest class", StringComparison.Ordinal));
        // Margin 0 is the plain best.
        Assert.AreEqual(Other, SearchChoice.Decide(best, reference, Default, 0, 4).Chosen);
    }

    [TestMethod]
    public void TheSameRowsDifferentlyRightCountAsNoise()
    {
        // Equal accuracy with different rows right (b = c = 5): no lead, the reference stays; a swapped pair the other way too.
        var reference = Trial(Default, 100, i => i < 60);
        var best = Trial(Other, 100, i => i is >= 5 and < 65);
        var choice = SearchChoice.Decide(best, reference, Default, 2, 10);
        Assert.AreEqual(Default, choice.Chosen);
        Assert.AreEqual(Math.Sqrt(10) / 100, choice.StandardError, 1e-12);
        StringAssert.Contains(choice.Reason, "does not beat it at 3 epochs (60.0 % on the same 100 validation images)");
        // Halving's best is the reference itself: kept, nothing to compare.
        var same = SearchChoice.Decide(reference, null, Default, 2, 10);
        Assert.AreEqual(Default, same.Chosen);
        StringAssert.Contains(same.Reason, "is the configuration without a search");
        // The reference was not trained for that budget (the time budget ran out): the best is kept, and says so.
        var unchecked_ = SearchChoice.Decide(best, null, Default, 2, 10);
        Assert.AreEqual(Other, unchecked_.Chosen);
        StringAssert.Contains(unchecked_.Reason, "not tried at this budget");
    }

    [TestMethod]
    public void TrialsOfDifferentBudgetsOrABadMarginAreRefused()
    {
        var reference = Trial(Default, 40, i => i < 20, budget: 1);
        var best = Trial(Other, 40, i => i < 30, budget: 3);
        var e = Assert.ThrowsExactly<ArgumentException>(() => SearchChoice.Decide(best, reference, Default, 2, 4));
        StringAssert.Contains(e.Message, "The reference trained 1 epochs and the best 3");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SearchChoice.Decide(best, best, Default, -1, 4));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SearchChoice.Decide(best, best, Default, double.NaN, 4));
    }

    [TestMethod]
    public void TheReferenceIsTheSpecsOwnConfigurationOrTheFirst()
    {
        var spec = new Runs.DistillationRunSpec { LearningRate = 1e-3f, Temperature = 2f };
        var space = new DistillationSearchSpace();
        Assert.AreEqual(Default, space.Reference(spec));
        Assert.AreEqual(DualHeadTrainingMode.SupervisedOnly, space.Reference(spec with { Objective = DualHeadTrainingMode.SupervisedOnly }).Objective);
        var narrow = new DistillationSearchSpace { Objectives = [DualHeadTrainingMode.SingleHeadKd], LearningRates = [5e-3f] };
        Assert.AreEqual(narrow.Configurations(spec)[0], narrow.Reference(spec));
    }

    [TestMethod]
    public void ImagesOf64PixelsAddThePretrainedResNet18AtATenthOfTheLearningRates()
    {
        // The tests restore Microsoft.ML.DnnImageFeaturizer.ResNet18, so it is in the NuGet cache.
        var spec = new Runs.DistillationRunSpec { LearningRate = 1e-3f, Temperature = 2f, ImageSize = 64 };
        var space = new DistillationSearchSpace();
        Assert.IsNull(space.PretrainedStudent(spec));
        var all = space.Configurations(spec);
        Assert.AreEqual(20, all.Count, string.Join("\n", all));
        var pretrained = all.Where(c => c.Pretrained == SearchConfiguration.ImageNetResNet18).ToArray();
        Assert.AreEqual(10, pretrained.Length);
        CollectionAssert.AreEquivalent(new[] { 1e-4f, 3e-4f }, pretrained.Select(c => c.LearningRate).Distinct().Select(r => MathF.Round(r, 6)).ToArray());
        Assert.AreEqual("DualHead, ImageNet ResNet-18, lr 0.0001, T 2", pretrained[0].ToString());
        var applied = pretrained[0].Apply(spec with { BackboneWeights = "mine.pth" });
        Assert.AreEqual("OnnxCnn", applied.Backbone.Name);
        Assert.IsNull(applied.BackboneWeights);
        StringAssert.EndsWith(applied.BackboneSettings["model"], Path.Combine("ResNet18Onnx", "ResNet18.onnx"));
        Assert.AreEqual(Default, space.Reference(spec), "the reference stays the spec's own student");

        // Not below 64 px, not on grey images, not when backbones are given or it is turned off.
        StringAssert.Contains(space.PretrainedStudent(spec with { ImageSize = 32 }), "at least 64 px (the run uses 32 px");
        Assert.AreEqual(10, space.Configurations(spec with { ImageSize = 32 }).Count);
        Assert.IsNotNull(space.PretrainedStudent(spec with { Channels = 1 }));
        Assert.AreEqual(10, (space with { Backbones = [DualHeadBackbone.SmallCnn] }).Configurations(spec).Count);
        Assert.AreEqual(10, (space with { PretrainedResNet18 = false }).Configurations(spec).Count);
        var unknown = new SearchConfiguration(DualHeadTrainingMode.DualHead, DualHeadBackbone.SmallCnn, 1e-3f, 2f, "AlexNet");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => unknown.Apply(spec)).Message, "Unknown pretrained student 'AlexNet'");
    }
}
