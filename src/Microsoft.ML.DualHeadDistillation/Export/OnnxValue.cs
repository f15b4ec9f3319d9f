namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>A value in an ONNX graph being written: its name and its shape without the batch dimension.</summary>
public readonly record struct OnnxValue(string Name, long[] Shape)
{
    /// <summary>Product of the shape (values per row).</summary>
    public long Size => Shape.Aggregate(1L, (a, b) => a * b);
    public override string ToString() => $"{Name} [N, {string.Join(", ", Shape)}]";
}

/// <summary>A module that writes itself as ONNX nodes (a block exporter); found when no exporter is registered for its type.</summary>
public interface IOnnxExportable
{
    /// <summary>Writes the module's nodes reading <paramref name="input"/> and returns its output; <paramref name="path"/> prefixes node and weight names.</summary>
    OnnxValue ExportOnnx(OnnxExportContext context, string path, OnnxValue input);
}

/// <summary>Writes one module of type <typeparamref name="TModule"/> as ONNX nodes.</summary>
public delegate OnnxValue OnnxLayerExporter<in TModule>(OnnxExportContext context, TModule module, string path, OnnxValue input);
