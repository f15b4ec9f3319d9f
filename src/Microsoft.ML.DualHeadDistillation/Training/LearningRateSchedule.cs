namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>Linear warm-up to the peak rate, then cosine decay to zero over the remaining steps.</summary>
public static class LearningRateSchedule
{
    /// <summary>The rate used at step <paramref name="step"/> (0-based) of <paramref name="totalSteps"/>.</summary>
    public static double At(int step, int totalSteps, int warmupSteps, double peak)
    {
        if (warmupSteps > 0 && step < warmupSteps) return peak * (step + 1) / warmupSteps;
        int decaySteps = Math.Max(1, totalSteps - warmupSteps);
        double progress = Math.Clamp((double)(step - warmupSteps) / decaySteps, 0, 1);
        return 0.5 * peak * (1 + Math.Cos(Math.PI * progress));
    }
}
