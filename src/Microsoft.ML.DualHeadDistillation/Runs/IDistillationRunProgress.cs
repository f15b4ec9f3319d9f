using Microsoft.ML.DualHeadDistillation.Specs;
namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// What a <see cref="DistillationRun"/> reports while it runs. Every member has a default that does nothing, so an
/// observer implements what it shows. Teacher (a timer thread) and Step (the training thread) may overlap.
/// </summary>
public interface IDistillationRunProgress
{
    /// <summary>A phase starts: Images, Teacher, Training, Report.</summary>
    void Phase(string title) { }
    /// <summary>A line for the log.</summary>
    void Info(string text) { }
    /// <summary>Something the user should know (a skipped file, a suspicious result).</summary>
    void Warning(string text) { }
    /// <summary>The teacher's rows so far, while the sample store is built.</summary>
    void Teacher(long done, long total, double seconds) { }
    void Step(DualHeadStepReport step) { }
    void Epoch(DualHeadEpochReport epoch) { }
    /// <summary>Runs the training phase; an observer with a live display wraps it (the default just runs it).</summary>
    T Training<T>(Func<T> train) => train();
}
