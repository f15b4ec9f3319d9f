using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Inference;

/// <summary>
/// The fitted TorchSharp student, shared by every model made from one Fit (<c>WithAlphaBeta</c> gives a new
/// model on the same handle). Weights never change after training, so sharing is safe. <see cref="Release"/>
/// frees the native memory and keeps the weights in managed memory; the next use rebuilds the student.
/// Uses are leases (<see cref="With{T}"/>): a release waits for the running ones to finish.
/// </summary>
internal sealed class StudentHandle
{
    private readonly object _lock = new();
    private DualHeadStudent? _student;      // null while released
    private byte[]? _releasedWeights;       // the weights while released
    private StudentScorer? _scorer;
    private int _users;
    private bool _releasePending;

    public StudentHandle(DualHeadStudent student, StudentSpec spec, Device device)
    {
        _student = student;
        Spec = spec;
        Device = device;
        HasTwoHeads = student.HasTwoHeads;
        ParameterCount = student.ParameterCount;
        InputSize = student.Backbone.InputSize;
        ImageShape = student.Backbone.ImageShape;
        InputStatistics = student.InputStandardization?.Statistics;
    }

    public StudentSpec Spec { get; }
    public Device Device { get; }
    public bool HasTwoHeads { get; }
    public long ParameterCount { get; }
    public int InputSize { get; }
    public InputImageShape? ImageShape { get; }
    public InputStatistics? InputStatistics { get; }

    public bool IsReleased
    {
        get
        {
            lock (_lock) return _student is null;
        }
    }

    /// <summary>The live student (rebuilt if released). Not a lease: a later release disposes it.</summary>
    public DualHeadStudent Live()
    {
        lock (_lock) return LiveLocked();
    }

    /// <summary>Runs <paramref name="use"/> with the live student; a concurrent <see cref="Release"/> waits for it to finish.</summary>
    public T With<T>(Func<DualHeadStudent, StudentScorer, T> use)
    {
        DualHeadStudent student;
        StudentScorer scorer;
        lock (_lock)
        {
            student = LiveLocked();
            scorer = _scorer ??= new StudentScorer(student, Device);
            _users++;
        }
        try
        {
            return use(student, scorer);
        }
        finally
        {
            lock (_lock)
            {
                if (--_users == 0 && _releasePending) ReleaseLocked();
            }
        }
    }

    /// <summary>Frees the native memory now, or when the last running use ends. Never throws.</summary>
    public void Release()
    {
        lock (_lock)
        {
            if (_users > 0) _releasePending = true;
            else ReleaseLocked();
        }
    }

    /// <summary>Frees everything without keeping the weights (a model Fit never returns).</summary>
    public void Discard()
    {
        lock (_lock)
        {
            _student?.Dispose();
            _student = null;
            _scorer = null;
            _releasedWeights = null;
        }
    }

    private DualHeadStudent LiveLocked()
    {
        if (_student is { } live) return live;
        if (_releasedWeights is null) throw new ObjectDisposedException(nameof(DualHeadDistillTransformer), "This model was discarded (its Fit failed or was cancelled).");
        var student = StudentFactory.Create(Spec, seed: null, Device);
        using (var weights = new MemoryStream(_releasedWeights, writable: false))
            student.load(weights);
        student.eval();
        _student = student;
        _releasedWeights = null;
        return student;
    }

    private void ReleaseLocked()
    {
        _releasePending = false;
        if (_student is not { } student) return;
        try
        {
            using var weights = new MemoryStream();
            student.save(weights);
            _releasedWeights = weights.ToArray();
        }
        catch (Exception)
        {
            return; // the weights could not be copied out: keep the student (and its memory) rather than lose them
        }
        student.Dispose();
        _student = null;
        _scorer = null;
    }
}
