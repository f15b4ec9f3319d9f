using Microsoft.ML.DualHeadDistillation.Runs;
using Microsoft.ML.DualHeadDistillation;
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
        string svg = SvgExporter.ExportToString(model, width, Height, isDocument: true);
        if (model.GetLastPlotException() is { } e) throw new InvalidOperationException($"Plot '{model.Title}' could not be drawn: {e.Message}", e);
        return new Plot(file, model.Title, svg.TrimStart('\uFEFF'));
    }

    public static IEnumerable<Plot> All(DualHeadTrainingReport report, IReadOnlyList<string> classes, IReadOnlyList<ClassifierScores> scores, ClassifierScores? confusionOf)
    {
        var epochs = report.Epochs;
        if (epochs.Count > 0)
        {
            yield return Losses(epochs);
            if (epochs.Any(e => e.ValidationAccuracy is not null)) yield return ValidationAccuracy(epochs);
            if (epochs.Any(e => e.BackboneGradientCosine is not null)) yield return GradientCosine(epochs);
        }
        if (scores.Count > 0) yield return PerClass(classes, scores);
        if (confusionOf is not null) yield return Confusion(classes, confusionOf);
        if (report.AlphaBeta is { Grid.Count: > 1 } search) yield return AlphaBetaGrid(search);
    }

    public static Plot Losses(IReadOnlyList<DualHeadEpochReport> epochs)
    {
        var m = Model("Training loss and learning rate per epoch");
        m.Legends.Add(new Legend { LegendPosition = LegendPosition.BottomCenter, LegendPlacement = LegendPlacement.Outside, LegendOrientation = LegendOrientation.Horizontal });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "epoch", Minimum = 0.5, Maximum = epochs.Count + 0.5, MajorStep = Math.Max(1, epochs.Count / 10) });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "loss", Key = "loss", Minimum = 0 });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Right, Title = "learning rate", Key = "lr", Minimum = 0, StringFormat = "0.####" });
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
        m.Legends.Add(new Legend { LegendPosition = LegendPosition.RightTop, LegendPlacement = LegendPlacement.Outside, LegendOrientation = LegendOrientation.Vertical });
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
        return Export("per-class-accuracy.svg", m, width: 960); // room for the legend beside the bars
    }

    public static Plot Confusion(IReadOnlyList<string> classes, ClassifierScores scores)
    {
        int k = classes.Count;
        var m = Model($"Confusion matrix of {scores.Name} on the validation images (row-normalised)");
        m.Axes.Add(new LinearColorAxis { Position = AxisPosition.Right, Palette = OxyPalettes.Viridis(100), Minimum = 0, Maximum = 1 });
        var predicted = new CategoryAxis { Position = AxisPosition.Bottom, Title = "predicted", Angle = k > 6 ? -30 : 0, GapWidth = 0 };
        var truth = new CategoryAxis { Position = AxisPosition.Left, Title = "true", GapWidth = 0, StartPosition = 1, EndPosition = 0 };
        foreach (var c in classes) { predicted.Labels.Add(c); truth.Labels.Add(c); }
        m.Axes.Add(predicted);
        m.Axes.Add(truth);
        var data = new double[k, k];
        for (int t = 0; t < k; t++)
        {
            int n = scores.Confusion[t].Sum();
            for (int p = 0; p < k; p++) data[p, t] = n == 0 ? 0 : (double)scores.Confusion[t][p] / n;
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
        return Export("confusion.svg", m);
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
