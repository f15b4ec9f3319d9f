using System.Collections.Concurrent;
using Microsoft.ML.DualHeadDistillation.Export.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>
/// Layer exporters by module type. A module is exported by the exporter registered for its type (or the
/// nearest base type), else by its own <see cref="IOnnxExportable.ExportOnnx"/>; anything else is a
/// <see cref="NotSupportedException"/> naming the layer. Built in: Sequential, Linear, Conv2d, BatchNorm1d,
/// BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d, Flatten, Dropout, Identity, and TorchVision's ReLU6, Hardswish,
/// Hardsigmoid, SqueezeExcitation and ResNet / MobileNet blocks
/// (<see cref="Students.Residual"/> exports itself with an Add). Register more with <see cref="Register{TModule}"/>.
/// </summary>
public static class OnnxLayerExporters
{
    private static readonly ConcurrentDictionary<Type, OnnxLayerExporter<nn.Module>> s_exporters = new();

    static OnnxLayerExporters() => CoreLayerExporters.RegisterAll();

    /// <summary>Registers (or replaces) the exporter of modules of type <typeparamref name="TModule"/> and its subclasses.</summary>
    public static void Register<TModule>(OnnxLayerExporter<TModule> exporter) where TModule : nn.Module
    {
        ArgumentNullException.ThrowIfNull(exporter);
        s_exporters[typeof(TModule)] = (context, module, path, input) => exporter(context, (TModule)module, path, input);
    }

    /// <summary>Registers the exporter of a module type known only at run time (a library's private block class).</summary>
    internal static void Register(Type moduleType, OnnxLayerExporter<nn.Module> exporter)
    {
        if (!typeof(nn.Module).IsAssignableFrom(moduleType)) throw new ArgumentException($"{moduleType.FullName} is not a TorchSharp module.", nameof(moduleType));
        s_exporters[moduleType] = exporter;
    }

    /// <summary>The module types with a registered exporter.</summary>
    public static IReadOnlyList<Type> ModuleTypes => s_exporters.Keys.OrderBy(t => t.Name, StringComparer.Ordinal).ToArray();

    internal static OnnxLayerExporter<nn.Module>? Find(Type type)
    {
        for (var t = type; t is not null && t != typeof(object); t = t.BaseType)
            if (s_exporters.TryGetValue(t, out var exporter)) return exporter;
        return null;
    }
}
