namespace Microsoft.ML.DualHeadDistillation.Diagnosis;

/// <summary>A share of rows (accuracy, agreement) with its 95 % Wilson score interval and standard error.</summary>
/// <param name="Count">Rows that count (correct, agreeing).</param>
/// <param name="Rows">Rows measured.</param>
public readonly record struct Proportion(int Count, int Rows)
{
    private const double Z = 1.959963984540054;

    /// <summary>Count / Rows (NaN for no rows).</summary>
    public double Value => Rows == 0 ? double.NaN : (double)Count / Rows;
    /// <summary>sqrt(p (1 - p) / n): one standard error of <see cref="Value"/>.</summary>
    public double StandardError => Rows == 0 ? double.NaN : Math.Sqrt(Value * (1 - Value) / Rows);
    /// <summary>The 95 % Wilson score interval's lower end.</summary>
    public double Lower => Wilson(-1);
    /// <summary>The 95 % Wilson score interval's upper end.</summary>
    public double Upper => Wilson(+1);

    private double Wilson(int sign)
    {
        if (Rows == 0) return double.NaN;
        double n = Rows, p = Value, z2 = Z * Z;
        double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
        double half = Z * Math.Sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n);
        return Math.Clamp(centre + sign * half, 0, 1);
    }

    /// <summary>"62.0 % (95 % CI 55.1-68.5 %, 200 rows)".</summary>
    public override string ToString() => FormattableString.Invariant($"{Value * 100:0.0} % (95 % CI {Lower * 100:0.0}-{Upper * 100:0.0} %, {Rows} rows)");

    /// <summary>
    /// The standard error of the difference between two classifiers' accuracies measured on the same rows (paired):
    /// sqrt(b + c - (b - c)^2 / n) / n, where b rows only the first gets right and c rows only the second does.
    /// </summary>
    public static double PairedStandardError(int onlyFirst, int onlySecond, int rows) =>
        rows == 0 ? double.NaN : Math.Sqrt(Math.Max(0, onlyFirst + onlySecond - (double)(onlyFirst - onlySecond) * (onlyFirst - onlySecond) / rows)) / rows;
}
