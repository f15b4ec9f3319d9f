using Microsoft.ML.DualHeadDistillation.Students;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training.Recipes;

/// <summary>
/// Early stopping on the validation accuracy: after every epoch the accuracy is compared with the best so far; an epoch
/// that beats it (strictly) becomes the best and the student's whole state (weights and BatchNorm statistics) is kept
/// in memory; when <see cref="Patience"/> epochs in a row have not beaten it, training stops. At the end the best
/// epoch's state is put back, so the student is exactly the one that existed after that epoch.
/// </summary>
internal sealed class EarlyStopping : IDisposable
{
    private Dictionary<string, Tensor>? _best;

    public EarlyStopping(int patience)
    {
        if (patience < 1) throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.EarlyStoppingPatience), patience, "EarlyStoppingPatience must be >= 1 (0 turns early stopping off).");
        Patience = patience;
    }

    public int Patience { get; }
    /// <summary>The best epoch so far (0 before the first).</summary>
    public int BestEpoch { get; private set; }
    public double BestAccuracy { get; private set; } = double.NegativeInfinity;

    /// <summary>Records epoch <paramref name="epoch"/>'s accuracy; true when training should stop after it.</summary>
    public bool Observe(DualHeadStudent student, int epoch, double accuracy)
    {
        if (accuracy > BestAccuracy || BestEpoch == 0)
        {
            BestAccuracy = accuracy;
            BestEpoch = epoch;
            Release();
            using var noGrad = no_grad();
            _best = student.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone().DetachFromDisposeScope());
            return false;
        }
        return epoch - BestEpoch >= Patience;
    }

    /// <summary>Puts the best epoch's state back into the student; false when there is none kept.</summary>
    public bool RestoreBest(DualHeadStudent student)
    {
        if (_best is null) return false;
        using var noGrad = no_grad();
        foreach (var (name, value) in student.state_dict())
            value.copy_(_best[name]);
        return true;
    }

    private void Release()
    {
        if (_best is null) return;
        foreach (var t in _best.Values) t.Dispose();
        _best = null;
    }

    public void Dispose() => Release();
}
