using System.Diagnostics;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training.Batches;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Training.Loop;

/// <summary>
/// A run's frozen early stages (FrozenStages): no gradient through them, parameters fixed, BatchNorm in eval, and their
/// outputs cached (<see cref="Recipes.FrozenStageCache"/>) when the rows' inputs repeat between epochs.
/// </summary>
internal sealed class FrozenStages : IDisposable
{
    private readonly Device _device;
    private readonly Recipes.FrozenStageCache? _cache;

    private FrozenStages(HashSet<object> parameters, Recipes.FrozenStageCache? cache, Device device)
    {
        Parameters = parameters;
        _cache = cache;
        _device = device;
    }

    /// <summary>The frozen stages' parameters in the student (kept at requires_grad = false).</summary>
    public HashSet<object> Parameters { get; }
    public Recipes.FrozenStageCache? Cache => _cache;
    /// <summary>Seconds spent computing the frozen stages' outputs that were then cached.</summary>
    public double Seconds { get; private set; }

    /// <summary>
    /// Freezes the first <paramref name="stages"/> stages of the student's backbone (and of its compute copy): they run
    /// without gradients from now on.
    /// </summary>
    public static FrozenStages Freeze(DualHeadStudent student, DualHeadStudent compute, int stages, TrainingSpec spec, TrainingSet train, TrainingRows rows,
        bool cacheOutputs, Device device, Action<string> log, Action<string> warn)
    {
        var frozen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        if (stages == 0) return new FrozenStages(frozen, null, device);
        var names = student.Backbone.StageNames;
        if (names.Count == 0)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.FrozenStages), stages, $"FrozenStages = {stages}, but backbone '{spec.Student.Backbone.Name}' has no stages to freeze; use a TorchVision backbone (ResNet, MobileNet), an OnnxCnn graph, or FrozenStages = 0.");
        if (stages > names.Count)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.FrozenStages), stages, $"FrozenStages = {stages}, but backbone '{spec.Student.Backbone.Name}' has {names.Count} stages ({string.Join(", ", names)}).");
        foreach (var model in compute == student ? [student] : new[] { student, compute }) model.Backbone.FrozenStages = stages;
        foreach (var module in student.Backbone.StageModules(stages))
            foreach (var p in module.parameters()) frozen.Add(p);
        if (spec.Tuning.WeightsHash is null && !student.Backbone.StartsPretrained)
            warn($"DualHeadDistill: warning: FrozenStages = {stages} without BackboneWeights: the frozen stages keep their seeded random weights for the whole run.");
        log($"DualHeadDistill: frozen stages {string.Join(", ", names.Take(stages))} ({frozen.Sum(p => ((Tensor)p).numel()):N0} parameters): no backward through them, BatchNorm statistics kept");
        return new FrozenStages(frozen, CreateCache(train, rows, spec, cacheOutputs, log), device);
    }

    /// <summary>The cache of the frozen stages' outputs, or null (with the reason logged) when the rows' inputs change between epochs.</summary>
    private static Recipes.FrozenStageCache? CreateCache(TrainingSet train, TrainingRows rows, TrainingSpec spec, bool cacheOutputs, Action<string> log)
    {
        string? why = !cacheOutputs ? "CacheFrozenStageOutputs is false"
            : Recipes.FrozenStageCache.WhyNot(rows, spec.Images, spec.Resolution is not null);
        if (why is not null)
        {
            log($"DualHeadDistill: the frozen stages' outputs are not cached ({why}): they run at every step");
            return null;
        }
        string folder = train.Store is { } store ? Path.GetDirectoryName(Path.GetFullPath(store.Path))! : Path.GetTempPath();
        int views = Recipes.FrozenStageCache.ViewsOf(spec.Images);
        var cache = new Recipes.FrozenStageCache(train.Rows, views, folder);
        log($"DualHeadDistill: the frozen stages' outputs are cached in {folder} as rows are first trained on ({views} view{(views == 1 ? "" : "s")} per row)");
        return cache;
    }

    /// <summary>The frozen stages' outputs for a batch: from the cache when it holds every row, else computed (and the new rows cached).</summary>
    public Tensor Outputs(DualHeadStudent compute, Tensor x, ReadOnlySpan<int> rows, int epoch)
    {
        var cache = _cache!;
        int view = cache.ViewOf(epoch);
        if (cache.Holds(rows, view)) return cache.Read(rows, view, _device);
        long start = Stopwatch.GetTimestamp();
        var prefix = compute.FrozenPrefix(x);
        cache.Write(rows, view, prefix); // reads the values back to the host: the forward has finished
        Seconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
        return prefix;
    }

    /// <summary>Puts every BatchNorm layer of a module (itself included) in eval mode: it normalises with (and keeps) its running statistics while its affine weights train.</summary>
    public static void FreezeBatchNorm(nn.Module module)
    {
        foreach (var m in module.modules().Prepend(module))
            if (m is TorchSharp.Modules.BatchNorm1d or TorchSharp.Modules.BatchNorm2d or TorchSharp.Modules.BatchNorm3d) m.eval();
    }

    public void Dispose() => _cache?.Dispose();
}
