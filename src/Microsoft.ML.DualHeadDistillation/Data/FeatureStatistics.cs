using Microsoft.ML.DualHeadDistillation.Students;

namespace Microsoft.ML.DualHeadDistillation.Data;

/// <summary>
/// Per-slot mean and variance of feature rows, accumulated row by row while the training data is read (the
/// first pass), in double with a per-slot shift (the first row) against cancellation; then combined per channel.
/// </summary>
internal sealed class FeatureStatistics(int featureSize)
{
    private readonly double[] _shift = new double[featureSize];
    private readonly double[] _sum = new double[featureSize];
    private readonly double[] _squares = new double[featureSize];
    private long _rows;

    /// <summary>A std below this is a constant channel: it keeps std 1 (only the mean is removed).</summary>
    public const double ConstantStd = 1e-6;

    public long Rows => _rows;

    public void Add(ReadOnlySpan<float> row)
    {
        if (_rows == 0)
            for (int j = 0; j < row.Length; j++) _shift[j] = row[j];
        for (int j = 0; j < row.Length; j++)
        {
            double v = row[j] - _shift[j];
            _sum[j] += v;
            _squares[j] += v * v;
        }
        _rows++;
    }

    /// <summary>Mean and population std per channel; channel c covers slots [c*D/C, (c+1)*D/C).</summary>
    public InputStatistics ForChannels(int channels)
    {
        if (_rows == 0) throw new InvalidOperationException("No rows were read, so there are no input statistics.");
        int d = _shift.Length, per = d / channels;
        var mean = new float[channels];
        var std = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            double m = 0;
            var slotMean = new double[per];
            for (int s = 0; s < per; s++)
            {
                int j = c * per + s;
                slotMean[s] = _shift[j] + _sum[j] / _rows;
                m += slotMean[s];
            }
            m /= per;
            double variance = 0;
            for (int s = 0; s < per; s++)
            {
                int j = c * per + s;
                double shiftedMean = _sum[j] / _rows;
                double slotVariance = Math.Max(0, _squares[j] / _rows - shiftedMean * shiftedMean);
                double offset = slotMean[s] - m;
                variance += slotVariance + offset * offset;
            }
            double sd = Math.Sqrt(variance / per);
            mean[c] = (float)m;
            std[c] = sd < ConstantStd ? 1f : (float)sd;
        }
        return new InputStatistics(mean, std);
    }
}
