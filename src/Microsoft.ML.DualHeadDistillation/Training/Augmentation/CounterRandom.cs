namespace Microsoft.ML.DualHeadDistillation.Training.Augmentation;

/// <summary>
/// A counter-based generator: every draw is a pure function of (seed, epoch, row, draw index), mixed with
/// SplitMix64's finaliser. No state is carried from row to row, so samples can be made in any order, on any
/// number of workers, and a resumed run draws what an uninterrupted one would.
/// </summary>
internal readonly struct CounterRandom
{
    private readonly ulong _key;

    private CounterRandom(ulong key) => _key = key;

    public static CounterRandom For(int seed, int epoch, long row, int stream = 0) =>
        new(Mix(Mix(Mix(Mix((ulong)(uint)seed) ^ (ulong)(uint)epoch) ^ (ulong)row) ^ (ulong)(uint)stream));

    /// <summary>Draw <paramref name="index"/>: uniform in [0, 1), 53 bits.</summary>
    public double Uniform(int index) => (Mix(_key + 0x9E3779B97F4A7C15UL * (ulong)(index + 1)) >> 11) * (1.0 / (1UL << 53));

    /// <summary>Draw <paramref name="index"/>: uniform in [low, high).</summary>
    public double Uniform(int index, double low, double high) => low + (high - low) * Uniform(index);

    /// <summary>Draw <paramref name="index"/>: an integer in [0, count).</summary>
    public int Below(int index, int count) => Math.Min(count - 1, (int)(Uniform(index) * count));

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
