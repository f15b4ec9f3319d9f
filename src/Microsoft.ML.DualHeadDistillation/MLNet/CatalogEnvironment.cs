using Microsoft.ML.Runtime;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>
/// ML.NET keeps a catalog's environment behind the internal IInternalCatalog interface. Third-party
/// trainers need it to log through MLContext.Log and to draw the MLContext's seed, so it is read once
/// through reflection, with a clear error if a future ML.NET changes the shape.
/// </summary>
internal static class CatalogEnvironment
{
    public static IHostEnvironment Get(object catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var iface = catalog.GetType().GetInterfaces().FirstOrDefault(i => i.FullName == "Microsoft.ML.Data.IInternalCatalog");
        var property = iface?.GetProperty("Environment");
        if (property?.GetValue(catalog) is IHostEnvironment env) return env;
        throw new InvalidOperationException(
            $"Could not read the MLContext from {catalog.GetType().FullName}: this ML.NET version is not supported by DualHeadDistill's catalog extension. Construct the trainer with new DualHeadDistillTrainer(mlContext, options) instead.");
    }

    /// <summary>The catalog's environment, or null if this ML.NET version hides it (for logging only: callers work without it).</summary>
    public static IHostEnvironment? TryGet(object catalog)
    {
        try { return Get(catalog); }
        catch (InvalidOperationException) { return null; }
    }

    public static (int? GpuDeviceId, bool FallbackToCpu) GpuSettings(IHostEnvironment env)
    {
        // MLContext carries the GPU settings; a bare IHostEnvironment does not.
        var ml = env as MLContext;
        return (ml?.GpuDeviceId, ml?.FallbackToCpu ?? true);
    }
}
