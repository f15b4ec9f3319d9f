using Microsoft.ML.DualHeadDistillation.Diagnosis;
using Microsoft.ML.DualHeadDistillation.Inference;

namespace Microsoft.ML.DualHeadDistillation.Search;

/// <summary>
/// The configuration a search keeps, chosen with the noise in view as alpha/beta are (<see cref="AlphaBetaSearch"/>):
/// successive halving's best is kept only when its validation accuracy leads the reference (the configuration the
/// run would use without a search, trained for the same budget on the same rows) by more than
/// <c>margin</c> paired standard errors of the difference, sqrt(b + c - (b - c)^2 / n) / n, where b and c count
/// the rows only one of the two gets right. Otherwise the reference is kept: on 40 validation images one image is
/// 2.5 points, and the best of 10 configurations beats the default by chance more often than not.
/// </summary>
public sealed record SearchChoice
{
    /// <summary>The configuration kept (the final run's).</summary>
    public required SearchConfiguration Chosen { get; init; }
    /// <summary>Successive halving's best (the top score of the highest rung).</summary>
    public required SearchConfiguration Best { get; init; }
    /// <summary>The configuration without a search: the spec's own objective, backbone, learning rate and temperature.</summary>
    public required SearchConfiguration Reference { get; init; }
    public double BestScore { get; init; }
    /// <summary>The reference's validation accuracy at the best's budget (NaN when it was not trained for it).</summary>
    public double ReferenceScore { get; init; }
    /// <summary>Epochs of the two trials compared.</summary>
    public int Budget { get; init; }
    public int ValidationRows { get; init; }
    /// <summary>Paired standard error of the accuracy difference (NaN when the rows' outcomes were not recorded).</summary>
    public double StandardError { get; init; }
    /// <summary>The lead the best needed: margin x <see cref="StandardError"/>.</summary>
    public double RequiredLead { get; init; }
    /// <summary>Validation images of the smallest class (0 when not known).</summary>
    public int FewestRowsPerClass { get; init; }
    public string Reason { get; init; } = "";

    /// <summary>"kept DualHead, ... (default): ..." for the log and the report.</summary>
    public override string ToString() => $"kept {Chosen}{(Chosen == Reference ? " (the configuration without a search)" : "")}: {Reason}";

    /// <summary>
    /// Compares <paramref name="best"/> with <paramref name="reference"/> (trials of the same budget whose
    /// <see cref="SearchTrial{TArm}.Outcomes"/> cover the same rows); <paramref name="reference"/> null: the default was not tried.
    /// </summary>
    public static SearchChoice Decide(SearchTrial<SearchConfiguration> best, SearchTrial<SearchConfiguration>? reference, SearchConfiguration referenceConfiguration, double margin, int fewestRowsPerClass)
    {
        ArgumentNullException.ThrowIfNull(best);
        if (!(margin >= 0)) throw new ArgumentOutOfRangeException(nameof(margin), margin, "The noise margin is a number of standard errors, at least 0.");
        var choice = new SearchChoice { Chosen = best.Arm, Best = best.Arm, Reference = referenceConfiguration, BestScore = best.Score, ReferenceScore = double.NaN, Budget = best.Budget, FewestRowsPerClass = fewestRowsPerClass, StandardError = double.NaN, RequiredLead = double.NaN };
        string small = fewestRowsPerClass is > 0 and < AlphaBetaSearch.SmallValidationPerClass
            ? $"; validation has only {fewestRowsPerClass} images in its smallest class (fewer than {AlphaBetaSearch.SmallValidationPerClass}): the trials' scores differ mostly by chance"
            : "";
        if (best.Arm == referenceConfiguration) return choice with { ReferenceScore = best.Score, Reason = "successive halving's best is the configuration without a search" + small };
        if (reference is null) return choice with { Reason = "the configuration without a search was not tried at this budget (the time budget ran out), so the best is kept unchecked" + small };
        if (reference.Budget != best.Budget) throw new ArgumentException($"The reference trained {reference.Budget} epochs and the best {best.Budget}: compare trials of one budget.", nameof(reference));
        choice = choice with { ReferenceScore = reference.Score };
        double lead = best.Score - reference.Score;
        if (best.Outcomes is not { } a || reference.Outcomes is not { } b || a.Length != b.Length || a.Length == 0)
        {
            // Without the rows' outcomes (a search.json written before they were kept) the lead cannot be weighed: keep the reference unless it is beaten.
            return lead > 0
                ? choice with { Reason = $"the best leads by {lead:P1}; the rows' outcomes were not recorded, so the lead is not checked against the noise" + small }
                : choice with { Chosen = referenceConfiguration, Reason = "the configuration without a search scores as well as the best" + small };
        }
        int onlyBest = 0, onlyReference = 0;
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i] == '1' && b[i] != '1') onlyBest++;
            else if (b[i] == '1' && a[i] != '1') onlyReference++;
        }
        double se = Proportion.PairedStandardError(onlyBest, onlyReference, a.Length), required = margin * se;
        choice = choice with { ValidationRows = a.Length, StandardError = se, RequiredLead = required };
        if (lead <= 0)
            return choice with { Chosen = referenceConfiguration, Reason = $"successive halving's best ({best.Arm}, {best.Score:P1}) does not beat it at {best.Budget} epochs ({reference.Score:P1} on the same {a.Length} validation images)" + small };
        return lead > required
            ? choice with { Reason = $"it leads the configuration without a search by {lead:P1} ({onlyBest} rows right only for it, {onlyReference} only for the other, of {a.Length}), more than {margin:0.##} standard errors ({required:P1})" + small }
            : choice with { Chosen = referenceConfiguration, Reason = $"the best ({best.Arm}, {best.Score:P1}) leads it by {lead:P1}, within the noise ({margin:0.##} standard errors = {required:P1} on {a.Length} validation images)" + small };
    }
}
