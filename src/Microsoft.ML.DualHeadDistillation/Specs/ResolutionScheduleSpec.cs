using System.Globalization;

namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>
/// A resolution schedule (progressive resizing, as fast.ai's and FixRes's: most steps at a lower size, the last share at
/// the full size): the training steps are split into equal shares, one per entry of <see cref="Heights"/> in order, and
/// during a share the student's images are resized to that height (the width in proportion) before the backbone. The
/// last entry is the full height, so training ends, and the model is evaluated and deployed, at the full size; Precise
/// BatchNorm recomputes the statistics there.
/// </summary>
/// <param name="Heights">The heights, comma-separated, in the order they are visited ("32,48,64").</param>
public sealed record ResolutionScheduleSpec(string Heights)
{
    /// <summary>The schedule of <paramref name="heights"/>, checked against the student's <paramref name="shape"/>.</summary>
    public static ResolutionScheduleSpec Create(int[] heights, InputImageShape shape)
    {
        const string option = nameof(DualHeadDistillOptions.ResolutionSchedule);
        if (heights.Length == 0) throw new ArgumentOutOfRangeException(option, "ResolutionSchedule needs at least one height (the last one the full height), or null for none.");
        if (heights[^1] != shape.Height)
            throw new ArgumentOutOfRangeException(option, $"ResolutionSchedule [{string.Join(", ", heights)}] must end at the full height {shape.Height} of ImageShape {shape}: the student is evaluated and deployed at that size.");
        foreach (int h in heights)
            if (h < 8 || h > shape.Height)
                throw new ArgumentOutOfRangeException(option, $"ResolutionSchedule height {h} is not in [8, {shape.Height}] (ImageShape {shape}).");
        return new(string.Join(",", heights.Select(h => h.ToString(CultureInfo.InvariantCulture))));
    }

    /// <summary>The heights in order.</summary>
    public int[] Values() => Heights.Split(',').Select(h => int.Parse(h, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>The height of step <paramref name="step"/> (0-based) of <paramref name="totalSteps"/>, given <see cref="Values"/> (parsed once per run).</summary>
    public static int HeightAt(int[] heights, int step, int totalSteps)
    {
        int share = (int)Math.Min(heights.Length - 1, (long)step * heights.Length / Math.Max(1, totalSteps));
        return heights[Math.Max(0, share)];
    }

    public override string ToString() => $"resolution schedule {Heights.Replace(",", " -> ", StringComparison.Ordinal)} (equal shares of the steps)";
}
