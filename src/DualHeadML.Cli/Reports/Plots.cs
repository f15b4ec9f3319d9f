using Microsoft.ML.DualHeadDistillation.Runs;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Diagnosis;
using Microsoft.ML.DualHeadDistillation.Search;
using OxyPlot;
using OxyPlot.Axes;
using OxyPlot.Legends;
using OxyPlot.Series;

namespace DualHeadML.Cli.Reports;

/// <summary>One plot of the report: a file name, a title and its SVG.</summary>
public sealed record Plot(string FileName, string Title, string Svg);

/// <summary>
/// The report's plots, drawn with OxyPlot.Core and exported as SVG by its SvgExporter (no SkiaSharp of its own, so it
/// lives beside ML.NET's ImageAnalytics in one process). Every plot is checked for OxyPlot's swallowed errors.
/// </summary>
public static class Plots
{
    private const int Width = 760, Height = 380;

    private static PlotModel Model(string title) => new() { Title = title, Background = OxyColors.White, DefaultFont = "Arial", TitleFontSize = 15 };

    private static Plot Export(string file, PlotModel model, int width = Width)
    {
        string svg = SvgExporter.ExportToString(model, width, Height, isDocument: true, new WideTextMeasurer(width, Height, model.Background));
        if (model.GetLastPlotException() is { } e) throw new InvalidOperationException($"Plot '{model.Title}' could not be drawn: {e.Message}", e);
        return new Plot(file, model.Title, svg.TrimStart('\uFEFF'));
    }

    public static IEnumerable<Plot> All(DualHeadTrainingReport report, IReadOnlyList<string> classes, IReadOnlyList<ClassifierScores> scores, ClassifierScores? confusionOf, TeacherDiagnosis? diagnosis = null)
    {
        if (diagnosis is not null) yield return TeacherConfusion(diagnosis);
        var epochs = report.Epochs;
        if (report.Steps.Count > 1) yield return Losses(report.Steps, epochs);
        else if (epochs.Count > 0) yield return Losses(epochs);
        if (epochs.Count > 0)
        {
            if (epochs.Any(e => e.ValidationAccuracy is not null)) yield return ValidationAccuracy(epochs);
            if (epochs.Any(e => e.BackboneGradientCosine is not null)) yield return GradientCosine(epochs);
        }
        if (scores.Count > 0) yield return PerClass(classes, scores);
        if (confusionOf is not null) yield return Confusion(classes, confusionOf);
        if (report.AlphaBeta is { Grid.Count: > 1 } search) yield return AlphaBetaGrid(search);
    }

    /// <summary>Losses and learning rate per step (each point the mean of a bucket of steps; the losses also smoothed), epochs marked.</summary>
    public static Plot Losses(IReadOnlyList<DualHeadStepPoint> steps, IReadOnlyList<DualHeadEpochReport> epochs)
    {
        var m = Model("Training loss and learning rate per step");
        m.Legends.Add(new Legend { LegendPosition = LegendPosition.TopRight, LegendPlacement = LegendPlacement.Inside, LegendOrientation = LegendOrientation.Vertical, LegendBackground = OxyColor.FromAColor(220, OxyColors.White), LegendBorder = OxyColors.LightGray });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "step", Minimum = 0, Maximum = steps[^1].Step });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "loss", Key = "loss", Minimum = 0 });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Right, Title = "learning rate", Key = "lr", Minimum = 0, LabelFormatter = LearningRateLabel, AxisTitleDistance = 18 });
        int span = Math.Max(1, steps.Count / 25);
        void Line(string title, Func<DualHeadStepPoint, double> value, OxyColor color, string axis, bool smooth, LineStyle style = LineStyle.Solid)
        {
            var raw = new LineSeries { Color = OxyColor.FromAColor(smooth ? (byte)60 : (byte)255, color), StrokeThickness = smooth ? 1 : 2, YAxisKey = axis, LineStyle = style, Title = smooth ? null : title };
            var mean = new LineSeries { Title = $"{title} (smoothed)", Color = color, StrokeThickness = 2, YAxisKey = axis };
            double ema = double.NaN, weight = 2.0 / (span + 1);
            foreach (var p in steps)
            {
                double v = value(p);
                if (!double.IsFinite(v)) continue;
                raw.Points.Add(new DataPoint(p.Step, v));
                ema = double.IsNaN(ema) ? v : ema + weight * (v - ema);
                mean.Points.Add(new DataPoint(p.Step, ema));
            }
            if (raw.Points.Count == 0) return;
            m.Series.Add(raw);
            if (smooth) m.Series.Add(mean);
        }
        Line("CE", p => p.CeLoss, OxyColors.SteelBlue, "loss", smooth: true);
        Line("KD", p => p.KdLoss, OxyColors.DarkOrange, "loss", smooth: true);
        Line("total", p => p.TotalLoss, OxyColors.Gray, "loss", smooth: true);
        Line("learning rate", p => p.LearningRate, OxyColors.SeaGreen, "lr", smooth: false, LineStyle.Dash);
        int stepsPerEpoch = epochs.Count > 0 ? epochs[0].Steps : 0;
        if (stepsPerEpoch > 0 && epochs.Count > 1)
            for (int e = 1; e < epochs.Count; e++)
                m.Annotations.Add(new OxyPlot.Annotations.LineAnnotation { Type = OxyPlot.Annotations.LineAnnotationType.Vertical, X = e * stepsPerEpoch, Color = OxyColors.LightGray, LineStyle = LineStyle.Dot, Text = $"epoch {e + 1}", TextColor = OxyColors.Gray });
        return Export("loss.svg", m);
    }

    /// <summary>1e-3, 2.5e-4, 0: a learning rate as it is written in settings.</summary>
    private static string LearningRateLabel(double v) => v == 0 ? "0" : v.ToString("0.##e0", System.Globalization.CultureInfo.InvariantCulture);

    public static Plot Losses(IReadOnlyList<DualHeadEpochReport> epochs)
    {
        var m = Model("Training loss and learning rate per epoch");
        m.Legends.Add(new Legend { LegendPosition = LegendPosition.BottomCenter, LegendPlacement = LegendPlacement.Outside, LegendOrientation = LegendOrientation.Horizontal });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "epoch", Minimum = 0.5, Maximum = epochs.Count + 0.5, MajorStep = Math.Max(1, epochs.Count / 10) });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "loss", Key = "loss", Minimum = 0 });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Right, Title = "learning rate", Key = "lr", Minimum = 0, LabelFormatter = LearningRateLabel, AxisTitleDistance = 18 });
        void Line(string title, Func<DualHeadEpochReport, double> value, OxyColor color, string axis, LineStyle style = LineStyle.Solid)
        {
            var s = new LineSeries { Title = title, Color = color, StrokeThickness = 2, MarkerType = MarkerType.Circle, MarkerSize = 3, YAxisKey = axis, LineStyle = style };
            foreach (var e in epochs)
                if (double.IsFinite(value(e))) s.Points.Add(new DataPoint(e.Epoch, value(e)));
            if (s.Points.Count > 0) m.Series.Add(s);
        }
        Line("CE", e => e.CeLoss, OxyColors.SteelBlue, "loss");
        Line("KD", e => e.KdLoss, OxyColors.DarkOrange, "loss");
        Line("total", e => e.TotalLoss, OxyColors.Gray, "loss");
        Line("learning rate (end of epoch)", e => e.LearningRate, OxyColors.SeaGreen, "lr", LineStyle.Dash);
        return Export("loss.svg", m);
    }

    public static Plot ValidationAccuracy(IReadOnlyList<DualHeadEpochReport> epochs)
    {
        var m = Model("Validation accuracy per epoch (alpha = beta = 0.5 during training)");
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "epoch", Minimum = 0.5, Maximum = epochs.Count + 0.5, MajorStep = Math.Max(1, epochs.Count / 10) });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "accuracy", Minimum = 0, Maximum = 1, StringFormat = "P0" });
        var s = new LineSeries { Title = "validation", Color = OxyColors.SteelBlue, StrokeThickness = 2, MarkerType = MarkerType.Circle, MarkerSize = 3 };
        foreach (var e in epochs) if (e.ValidationAccuracy is double a) s.Points.Add(new DataPoint(e.Epoch, a));
        m.Series.Add(s);
        return Export("validation-accuracy.svg", m);
    }

    public static Plot GradientCosine(IReadOnlyList<DualHeadEpochReport> epochs)
    {
        var m = Model("cos(grad CE, grad KD) on the shared backbone, per epoch");
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "epoch", Minimum = 0.5, Maximum = epochs.Count + 0.5, MajorStep = Math.Max(1, epochs.Count / 10) });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "cosine", Minimum = -1, Maximum = 1 });
        var s = new LineSeries { Title = "backbone", Color = OxyColors.Purple, StrokeThickness = 2, MarkerType = MarkerType.Circle, MarkerSize = 3 };
        foreach (var e in epochs) if (e.BackboneGradientCosine is double c) s.Points.Add(new DataPoint(e.Epoch, c));
        m.Series.Add(s);
        return Export("gradient-cosine.svg", m);
    }

    public static Plot PerClass(IReadOnlyList<string> classes, IReadOnlyList<ClassifierScores> scores)
    {
        var m = Model("Validation accuracy per class");
        m.Legends.Add(new Legend { LegendPosition = LegendPosition.TopCenter, LegendPlacement = LegendPlacement.Outside, LegendOrientation = LegendOrientation.Horizontal });
        var category = new CategoryAxis { Position = AxisPosition.Bottom, Key = "class", Angle = classes.Count > 6 ? -30 : 0 };
        foreach (var c in classes) category.Labels.Add(c);
        m.Axes.Add(category);
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Key = "value", Minimum = 0, Maximum = 1, Title = "accuracy", StringFormat = "P0" });
        OxyColor[] colors = [OxyColors.Gray, OxyColors.SteelBlue, OxyColors.SeaGreen, OxyColors.DarkOrange, OxyColors.Purple];
        int i = 0;
        foreach (var s in scores)
        {
            var bars = new BarSeries { Title = $"{s.Name} ({s.Accuracy:P1})", XAxisKey = "value", YAxisKey = "class", FillColor = colors[i++ % colors.Length] };
            foreach (var a in s.PerClassAccuracy) bars.Items.Add(new BarItem(double.IsNaN(a) ? 0 : a));
            m.Series.Add(bars);
        }
        return Export("per-class-accuracy.svg", m, width: 960);
    }

    /// <summary>The search: each trial's validation accuracy against its seconds, one series per objective.</summary>
    public static Plot Leaderboard(DistillationSearchResult search)
    {
        var m = Model($"Search: validation accuracy vs seconds per trial (kept: {search.Best})");
        m.Legends.Add(new Legend { LegendPosition = LegendPosition.BottomRight, LegendPlacement = LegendPlacement.Inside, LegendBackground = OxyColor.FromAColor(220, OxyColors.White), LegendBorder = OxyColors.LightGray });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "seconds of the trial", Minimum = 0 });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "validation accuracy", StringFormat = "P0" });
        OxyColor[] colors = [OxyColors.SteelBlue, OxyColors.DarkOrange, OxyColors.Gray, OxyColors.SeaGreen, OxyColors.Purple];
        MarkerType[] markers = [MarkerType.Circle, MarkerType.Square, MarkerType.Diamond, MarkerType.Triangle];
        int i = 0;
        foreach (var group in search.Trials.GroupBy(t => t.Arm.Objective.Name))
        {
            var s = new ScatterSeries { Title = group.Key, MarkerType = markers[i % markers.Length], MarkerFill = colors[i % colors.Length], MarkerSize = 5 };
            foreach (var t in group) s.Points.Add(new ScatterPoint(t.Seconds, t.Score, 3 + 2 * t.Rung));
            m.Series.Add(s);
            i++;
        }
        return Export("search.svg", m);
    }

    /// <summary>The teacher's confusion matrix on the labeled images (the diagnosis).</summary>
    public static Plot TeacherConfusion(TeacherDiagnosis d) =>
        Confusion(d.Classes, d.Confusion, $"Teacher on the labeled images, before training (row-normalised; accuracy {d.Accuracy.Value:P1})", "teacher-confusion.svg");

    public static Plot Confusion(IReadOnlyList<string> classes, ClassifierScores scores) =>
        Confusion(classes, scores.Confusion, $"Confusion matrix of {scores.Name} on the validation images (row-normalised)", "confusion.svg");

    private static Plot Confusion(IReadOnlyList<string> classes, IReadOnlyList<int[]> confusion, string title, string file)
    {
        int k = classes.Count;
        var m = Model(title);
        m.Axes.Add(new LinearColorAxis { Position = AxisPosition.Right, Palette = OxyPalettes.Viridis(100), Minimum = 0, Maximum = 1 });
        var predicted = new CategoryAxis { Position = AxisPosition.Bottom, Title = "predicted", Angle = k > 6 ? -30 : 0, GapWidth = 0 };
        var truth = new CategoryAxis { Position = AxisPosition.Left, Title = "true", GapWidth = 0, StartPosition = 1, EndPosition = 0 };
        foreach (var c in classes) { predicted.Labels.Add(c); truth.Labels.Add(c); }
        m.Axes.Add(predicted);
        m.Axes.Add(truth);
        var data = new double[k, k];
        for (int t = 0; t < k; t++)
        {
            int n = confusion[t].Sum();
            for (int p = 0; p < k; p++) data[p, t] = n == 0 ? 0 : (double)confusion[t][p] / n;
        }
        m.Series.Add(new HeatMapSeries
        {
            X0 = 0,
            X1 = k - 1,
            Y0 = 0,
            Y1 = k - 1,
            Data = data,
            Interpolate = false,
            RenderMethod = HeatMapRenderMethod.Rectangles,
            LabelFormatString = "0.00",
            LabelFontSize = k <= 12 ? 0.25 : 0,
        });
        return Export(file, m);
    }

    public static Plot AlphaBetaGrid(AlphaBetaSearchResult search)
    {
        var alphas = search.Grid.Select(p => p.Alpha).Distinct().Order().ToArray();
        var betas = search.Grid.Select(p => p.Beta).Distinct().Order().ToArray();
        var m = Model(FormattableString.Invariant($"Validation accuracy over the alpha/beta grid (kept: alpha {search.Alpha:0.##}, beta {search.Beta:0.##})"));
        double min = search.Grid.Min(p => p.Accuracy), max = search.Grid.Max(p => p.Accuracy);
        m.Axes.Add(new LinearColorAxis { Position = AxisPosition.Right, Palette = OxyPalettes.Viridis(100), Minimum = min, Maximum = max > min ? max : min + 1e-6, StringFormat = "P1" });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "alpha (weight of the CE head)", Minimum = -0.05, Maximum = 1.05 });
        var beta = new CategoryAxis { Position = AxisPosition.Left, Title = "beta (KD head temperature)", GapWidth = 0 };
        foreach (var b in betas) beta.Labels.Add(b.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture));
        m.Axes.Add(beta);
        var data = new double[alphas.Length, betas.Length];
        foreach (var p in search.Grid) data[Array.IndexOf(alphas, p.Alpha), Array.IndexOf(betas, p.Beta)] = p.Accuracy;
        m.Series.Add(new HeatMapSeries
        {
            X0 = alphas[0],
            X1 = alphas[^1],
            Y0 = 0,
            Y1 = betas.Length - 1,
            Data = data,
            Interpolate = false,
            RenderMethod = HeatMapRenderMethod.Rectangles,
        });
        return Export("alpha-beta.svg", m);
    }
}

/// <summary>
/// OxyPlot's SVG text measurer (PDF Helvetica metrics) with widths 20 % larger: browsers draw the SVG with the fonts
/// they have (Arial, Liberation Sans or the wider DejaVu Sans), so legends and axis titles get the room they take there
/// instead of being clipped.
/// </summary>
internal sealed class WideTextMeasurer(double width, double height, OxyColor background) : PdfRenderContext(width, height, background)
{
    public override OxySize MeasureText(string text, string fontFamily, double fontSize, double fontWeight)
    {
        var size = base.MeasureText(text, fontFamily, fontSize, fontWeight);
        return new OxySize(size.Width * 1.2, size.Height);
    }
}
