using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.DualHeadDistillation;
using Spectre.Console;

namespace DualHeadML.Cli.Console;

/// <summary>What long-running work reports while it runs: teacher rows, training steps and epochs, log lines.</summary>
public interface IProgressSink
{
    void Teacher(long done, long total, double seconds);
    void Step(DualHeadStepReport step);
    void Epoch(DualHeadEpochReport epoch);
    void Line(string text);
}

/// <summary>
/// The tool's output: live Spectre.Console progress (teacher rows/s and ETA; training epoch, step, CE, KD, lr,
/// validation accuracy, ETA) on an interactive terminal; plain, timestamp-free log lines when the output is
/// redirected (CI, a file, a pipe) or with --plain. Messages go to stdout, warnings and errors to stderr.
/// </summary>
public sealed class RunDisplay
{
    private readonly object _lock = new();

    public RunDisplay(bool plain)
    {
        Fancy = !plain && AnsiConsole.Profile.Capabilities.Interactive && AnsiConsole.Profile.Capabilities.Ansi && !System.Console.IsOutputRedirected;
    }

    /// <summary>True for live progress, false for plain lines.</summary>
    public bool Fancy { get; }

    public void Phase(string title)
    {
        if (Fancy) AnsiConsole.Write(new Rule($"[bold]{Markup.Escape(title)}[/]").LeftJustified());
        else Write($"== {title}");
    }

    public void Info(string text)
    {
        if (Fancy) AnsiConsole.MarkupLine(Markup.Escape(text));
        else Write(text);
    }

    public void Warn(string text)
    {
        lock (_lock) System.Console.Error.WriteLine($"warning: {text}");
    }

    public void Error(string text)
    {
        lock (_lock) System.Console.Error.WriteLine($"error: {text}");
    }

    public void Table(string title, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        if (Fancy)
        {
            var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(title));
            foreach (var h in headers) table.AddColumn(new TableColumn(Markup.Escape(h)));
            foreach (var r in rows) table.AddRow(r.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(table);
            return;
        }
        var all = rows.ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, all.Count == 0 ? 0 : all.Max(r => r[i].Length))).ToArray();
        Write(title);
        Write("  " + string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var r in all) Write("  " + string.Join("  ", r.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
    }

    private void Write(string line)
    {
        lock (_lock) System.Console.Out.WriteLine(line);
    }

    /// <summary>Runs <paramref name="work"/> with a progress sink: a live display, or plain lines at most every few seconds.</summary>
    public T Run<T>(Func<IProgressSink, T> work)
    {
        if (!Fancy) return work(new PlainSink(this));
        T result = default!;
        AnsiConsole.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx => result = work(new LiveSink(ctx)));
        return result;
    }

    internal static string Figures(DualHeadStepReport s) => string.Create(CultureInfo.InvariantCulture,
        $"epoch {s.Epoch}/{s.NumberOfEpochs} step {s.Step}/{s.StepsPerEpoch}: CE {s.CeLoss:0.0000}, KD {(double.IsNaN(s.KdLoss) ? "-" : s.KdLoss.ToString("0.0000", CultureInfo.InvariantCulture))}, lr {s.LearningRate:0.######}");

    internal static string Eta(double seconds) =>
        !double.IsFinite(seconds) || seconds < 0 ? "--:--" : TimeSpan.FromSeconds(Math.Round(seconds)).ToString(seconds >= 3600 ? @"h\:mm\:ss" : @"mm\:ss", CultureInfo.InvariantCulture);

    /// <summary>Plain lines; Teacher (a timer thread) and Step (the training thread) may overlap, hence the lock.</summary>
    private sealed class PlainSink(RunDisplay display) : IProgressSink
    {
        private readonly Stopwatch _sinceLine = Stopwatch.StartNew();
        private readonly Stopwatch _training = new();
        private readonly object _gate = new();
        private int _firstStep = -1;

        public void Teacher(long done, long total, double seconds)
        {
            lock (_gate) TeacherLine(done, total, seconds);
        }

        public void Step(DualHeadStepReport s)
        {
            lock (_gate) StepLine(s);
        }

        private void TeacherLine(long done, long total, double seconds)
        {
            if (done < total && _sinceLine.Elapsed.TotalSeconds < 5) return;
            _sinceLine.Restart();
            double rate = seconds > 0 ? done / seconds : 0;
            display.Write(string.Create(CultureInfo.InvariantCulture, $"teacher: {done}/{total} images, {rate:0.0} images/s, ETA {Eta(rate > 0 ? (total - done) / rate : double.NaN)}"));
        }

        private void StepLine(DualHeadStepReport s)
        {
            if (_firstStep < 0) { _firstStep = s.GlobalStep - 1; _training.Start(); }
            if (s.Step != 1 && s.Step != s.StepsPerEpoch && _sinceLine.Elapsed.TotalSeconds < 10) return;
            _sinceLine.Restart();
            double perStep = _training.Elapsed.TotalSeconds / Math.Max(1, s.GlobalStep - _firstStep);
            display.Write($"{Figures(s)}, ETA {Eta(perStep * (s.TotalSteps - s.GlobalStep))}");
        }

        public void Epoch(DualHeadEpochReport e) => display.Write(e.ToString());

        public void Line(string text) => display.Write(text);
    }

    private sealed class LiveSink(ProgressContext ctx) : IProgressSink
    {
        private ProgressTask? _teacher, _training;
        private string _validation = "";

        public void Teacher(long done, long total, double seconds)
        {
            _teacher ??= ctx.AddTask("teacher", maxValue: Math.Max(1, total));
            _teacher.MaxValue = Math.Max(1, total);
            _teacher.Value = done;
            double rate = seconds > 0 ? done / seconds : 0;
            _teacher.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"teacher {done}/{total} images, {rate:0.0}/s"));
        }

        public void Step(DualHeadStepReport s)
        {
            _training ??= ctx.AddTask("training", maxValue: s.TotalSteps);
            _training.MaxValue = s.TotalSteps;
            _training.Value = s.GlobalStep;
            _training.Description = Markup.Escape(Figures(s) + _validation);
        }

        public void Epoch(DualHeadEpochReport e)
        {
            if (e.ValidationAccuracy is double a) _validation = string.Create(CultureInfo.InvariantCulture, $", validation {a:P1}");
            AnsiConsole.MarkupLine(Markup.Escape(e.ToString()));
        }

        public void Line(string text) => AnsiConsole.MarkupLine(Markup.Escape(text));
    }
}
