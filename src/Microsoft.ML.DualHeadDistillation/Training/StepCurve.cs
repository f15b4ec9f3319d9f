namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>
/// The losses and learning rate of every step, kept in at most <see cref="MaxPoints"/> points: each point is the mean of
/// a bucket of steps, and when the points would exceed the limit, neighbours merge and buckets double. A run of any
/// length plots as a curve (a one-epoch run too), in bounded memory, and a resumed run continues its checkpoint's curve.
/// </summary>
internal sealed class StepCurve
{
    public const int MaxPoints = 512;
    private readonly List<DualHeadStepPoint> _points;
    private int _bucket;
    private (int Step, double Ce, double Kd, double Total, double Lr, int Steps) _pending;

    public StepCurve(IReadOnlyList<DualHeadStepPoint>? earlier = null)
    {
        _points = [.. earlier ?? []];
        _bucket = _points.Count == 0 ? 1 : _points.Max(p => p.Steps);
    }

    public void Add(int step, double ce, double kd, double total, double learningRate)
    {
        _pending = (step, _pending.Ce + ce, _pending.Kd + kd, _pending.Total + total, _pending.Lr + learningRate, _pending.Steps + 1);
        if (_pending.Steps < _bucket) return;
        _points.Add(Mean(_pending));
        _pending = default;
        if (_points.Count <= MaxPoints) return;
        var merged = new List<DualHeadStepPoint>(_points.Count / 2 + 1);
        for (int i = 0; i + 1 < _points.Count; i += 2) merged.Add(Merge(_points[i], _points[i + 1]));
        if (_points.Count % 2 == 1) merged.Add(_points[^1]);
        _points.Clear();
        _points.AddRange(merged);
        _bucket *= 2;
    }

    /// <summary>The points so far, the unfinished bucket last.</summary>
    public IReadOnlyList<DualHeadStepPoint> Points => _pending.Steps == 0 ? [.. _points] : [.. _points, Mean(_pending)];

    private static DualHeadStepPoint Mean((int Step, double Ce, double Kd, double Total, double Lr, int Steps) p) =>
        new(p.Step, p.Ce / p.Steps, p.Kd / p.Steps, p.Total / p.Steps, p.Lr / p.Steps, p.Steps);

    private static DualHeadStepPoint Merge(DualHeadStepPoint a, DualHeadStepPoint b)
    {
        int n = a.Steps + b.Steps;
        double W(double x, double y) => (x * a.Steps + y * b.Steps) / n;
        return new(b.Step, W(a.CeLoss, b.CeLoss), W(a.KdLoss, b.KdLoss), W(a.TotalLoss, b.TotalLoss), W(a.LearningRate, b.LearningRate), n);
    }
}
