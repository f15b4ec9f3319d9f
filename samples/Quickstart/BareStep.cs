using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Objectives;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// Times the bare TorchSharp work of one training step — forward of both heads, the DHO loss, backward,
/// AdamW — on tensors already in memory, so it can be compared with Fit's time per step (which also
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
        template.train();
        double Run(int n)
        {
            var watch = Stopwatch.StartNew();
            for (int s = 0; s < n; s++)
            {
                using var scope = NewDisposeScope();
                var (ce, kd) = template.ForwardTraining(x, batch / 2);
                var (loss, _, _) = DhoLoss.Compute(ce, y, kd.narrow(0, 0, batch / 2), t.narrow(0, 0, batch / 2),
                    kd.narrow(0, batch / 2, batch / 2), t.narrow(0, batch / 2, batch / 2), 0.5f, 2f);
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
            }
            return watch.Elapsed.TotalMilliseconds / n;
        }
        Run(5); // warm-up
        double ms = Run(steps);
        return ms;
    }
}
