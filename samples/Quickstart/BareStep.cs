using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Training.Loop;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// Times the bare TorchSharp work of one training step — Fit's own TrainingStep: forward of both heads, the DHO
/// loss, backward, AdamW, the finiteness check — on tensors already in memory, so it can be compared with Fit's time per step (which also
/// gathers rows and builds tensors).
/// </summary>
static class BareStep
{
    public static double MeasureMilliseconds(Func<DualHeadStudent> create, int batch, int steps)
    {
        using var template = create();
        int d = template.Backbone.InputSize, k = template.ClassCount;
        using var x = rand(batch, d);
        using var t = randn(batch, k);
        using var y = randint(0, k, [batch / 2]);
        using var optimizer = optim.AdamW(template.parameters(), 1e-6);
        var step = new TrainingStep(template, DualHeadRegistry.Objectives.Get("DualHead"), optimizer); // Fit's own step
        template.train();
        double Run(int n)
        {
            var watch = Stopwatch.StartNew();
            for (int s = 0; s < n; s++)
            {
                using var scope = NewDisposeScope();
                step.Run(x, y, t, batch / 2);
            }
            return watch.Elapsed.TotalMilliseconds / n;
        }
        Run(5); // warm-up
        double ms = Run(steps);
        return ms;
    }
}
