using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace DualHeadML.Cli.Console;

/// <summary>A run's progress on the tool's display: phases and lines, and live (or plain) teacher and training progress.</summary>
public sealed class DisplayProgress(RunDisplay ui) : IDistillationRunProgress
{
    private IProgressSink? _live;

    public void Phase(string title) => ui.Phase(title);
    public void Info(string text)
    {
        if (_live is { } live) live.Line(text);
        else ui.Info(text);
    }
    public void Warning(string text) => ui.Warn(text);
    public void Teacher(long done, long total, double seconds) => _live?.Teacher(done, total, seconds);
    public void Step(DualHeadStepReport step) => _live?.Step(step);
    public void Epoch(DualHeadEpochReport epoch) => _live?.Epoch(epoch);

    public T Training<T>(Func<T> train) => ui.Run(sink =>
    {
        _live = sink;
        try
        {
            return train();
        }
        finally
        {
            _live = null;
        }
    });
}
