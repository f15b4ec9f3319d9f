using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>ONNX Runtime settings shared by every teacher model.</summary>
public sealed class TeacherRuntimeOptions
{
    /// <summary>Threads inside one operator; null lets ONNX Runtime decide (all cores).</summary>
    public int? IntraOpThreads { get; set; }
    /// <summary>Threads across operators; null lets ONNX Runtime decide.</summary>
    public int? InterOpThreads { get; set; }
    /// <summary>Run on the CUDA execution provider (needs the Microsoft.ML.OnnxRuntime.Gpu package and a GPU).</summary>
    public bool UseCuda { get; set; }
    /// <summary>CUDA device index.</summary>
    public int GpuDeviceId { get; set; }
    /// <summary>With <see cref="UseCuda"/>: use the CPU when the CUDA provider cannot be created, instead of failing.</summary>
    public bool FallbackToCpu { get; set; } = true;
}

/// <summary>
/// One ONNX model opened with ONNX Runtime: resolves the input and output names, checks their types, and
/// runs whole batches through <see cref="OrtValue"/>s that wrap our buffers (no per-row calls, no copies in).
/// </summary>
internal sealed class OnnxTeacherSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();

    private OnnxTeacherSession(InferenceSession session, byte[] fingerprint, string path, string provider)
    {
        _session = session;
        ModelFingerprint = fingerprint;
        Path = path;
        Provider = provider;
    }

    public string Path { get; }
    /// <summary>SHA-256 of the model file and of its external-data files (same folder, names starting with the model's file name).</summary>
    public byte[] ModelFingerprint { get; }
    public string Provider { get; }
    public IReadOnlyDictionary<string, NodeMetadata> Inputs => _session.InputMetadata;
    public IReadOnlyDictionary<string, NodeMetadata> Outputs => _session.OutputMetadata;
    public IReadOnlyDictionary<string, string> CustomMetadata => _session.ModelMetadata.CustomMetadataMap;

    /// <summary>Opens the model from its file, so models with external data files (model.onnx.data) load too.</summary>
    public static OnnxTeacherSession Open(string path, TeacherRuntimeOptions runtime, string option)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException($"{option} must name an ONNX file.", option);
        if (!File.Exists(path)) throw new FileNotFoundException($"Teacher model '{path}' ({option}) was not found.", path);
        var full = System.IO.Path.GetFullPath(path);
        var name = System.IO.Path.GetFileName(full);
        var files = Directory.GetFiles(System.IO.Path.GetDirectoryName(full)!)
            .Where(f => System.IO.Path.GetFileName(f) is var n && n.StartsWith(name, StringComparison.Ordinal))
            .OrderBy(f => f == full ? "" : f, StringComparer.Ordinal);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var file in files)
        {
            using var stream = File.OpenRead(file);
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(System.IO.Path.GetFileName(file)));
            hash.AppendData(System.Security.Cryptography.SHA256.HashData(stream));
        }
        return Create(options => new InferenceSession(full, options), hash.GetHashAndReset(), path, runtime, option);
    }

    private static OnnxTeacherSession Create(Func<SessionOptions, InferenceSession> open, byte[] fingerprint, string path, TeacherRuntimeOptions runtime, string option)
    {
        string provider = "CPU";
        SessionOptions options;
        if (runtime.UseCuda)
        {
            try
            {
                options = SessionOptions.MakeSessionOptionWithCudaProvider(runtime.GpuDeviceId);
                provider = "CUDA";
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
            {
                if (!runtime.FallbackToCpu)
                    throw new InvalidOperationException($"UseCuda is set but ONNX Runtime's CUDA provider could not be created ({e.Message}). Reference Microsoft.ML.OnnxRuntime.Gpu on a machine with CUDA, or set FallbackToCpu = true.", e);
                options = new SessionOptions();
            }
        }
        else
        {
            options = new SessionOptions();
        }
        if (runtime.IntraOpThreads is int intra) options.IntraOpNumThreads = intra;
        if (runtime.InterOpThreads is int inter) options.InterOpNumThreads = inter;
        options.GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL;
        try
        {
            var session = open(options);
            // The provider can change the numbers slightly, so it is part of the teacher's identity.
            return new OnnxTeacherSession(session, [.. fingerprint, .. System.Text.Encoding.UTF8.GetBytes(provider)], path, provider);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"Teacher model '{path}' ({option}) is not a valid ONNX model: {e.Message}", e);
        }
        finally
        {
            options.Dispose();
        }
    }

    /// <summary>The configured name, else the first of <paramref name="conventional"/> present, else the only one.</summary>
    public static string ResolveName(IReadOnlyDictionary<string, NodeMetadata> nodes, string? configured, IEnumerable<string> conventional, string kind, string option, string path)
    {
        if (configured is not null)
        {
            if (nodes.ContainsKey(configured)) return configured;
            throw new ArgumentOutOfRangeException(option, $"Teacher model '{path}' has no {kind} named '{configured}'; its {kind}s are [{string.Join(", ", nodes.Keys)}].");
        }
        foreach (var name in conventional) if (nodes.ContainsKey(name)) return name;
        if (nodes.Count == 1) return nodes.Keys.Single();
        throw new ArgumentOutOfRangeException(option, $"Teacher model '{path}' has {nodes.Count} {kind}s [{string.Join(", ", nodes.Keys)}]; set {option} to choose one.");
    }

    public static void RequireElementType(NodeMetadata node, TensorElementType expected, string name, string path, string option)
    {
        if (!node.IsTensor || node.ElementDataType != expected)
            throw new ArgumentOutOfRangeException(option, $"Teacher model '{path}': '{name}' holds {(node.IsTensor ? node.ElementDataType.ToString() : node.OnnxValueType.ToString())}; expected a tensor of {expected}.");
    }

    /// <summary>Runs one batch of float input and copies the output (row-major) into <paramref name="output"/>; returns the output's shape.</summary>
    public long[] Run(string inputName, Memory<float> input, long[] shape, string outputName, Span<float> output)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, input, shape);
        return Run([inputName], [value], outputName, output);
    }

    /// <summary>Runs one batch with several inputs, copying the output into <paramref name="output"/>.</summary>
    public long[] Run(string[] inputNames, OrtValue[] inputs, string outputName, Span<float> output)
    {
        using var results = RunSession(inputNames, inputs, outputName);
        var result = results[0];
        var data = result.GetTensorDataAsSpan<float>();
        if (data.Length > output.Length)
            throw new InvalidOperationException($"Teacher model '{Path}' output '{outputName}' returned {data.Length} values; {output.Length} were expected for this batch.");
        data.CopyTo(output);
        return result.GetTensorTypeAndShape().Shape;
    }

    /// <summary>Runs one batch with several inputs and returns the whole output, whatever its size.</summary>
    public (float[] Data, long[] Shape) Run(string[] inputNames, OrtValue[] inputs, string outputName)
    {
        using var results = RunSession(inputNames, inputs, outputName);
        return (results[0].GetTensorDataAsSpan<float>().ToArray(), results[0].GetTensorTypeAndShape().Shape);
    }

    /// <summary>One ONNX Runtime call; a graph that fails when run (weights that do not fit the declared input, ...) is an error naming the file.</summary>
    private IDisposableReadOnlyCollection<OrtValue> RunSession(string[] inputNames, OrtValue[] inputs, string outputName)
    {
        try
        {
            return _session.Run(_run, inputNames, inputs, [outputName]);
        }
        catch (OnnxRuntimeException e)
        {
            string shapes = string.Join(", ", inputNames.Zip(inputs, (n, v) => $"'{n}' [{string.Join(", ", v.GetTensorTypeAndShape().Shape)}]"));
            throw new InvalidOperationException($"Teacher model '{Path}' failed when run on a batch ({shapes}) for output '{outputName}': {e.Message}", e);
        }
    }

    /// <summary>True once the InferenceSession is released.</summary>
    public bool IsDisposed { get; private set; }

    public void Dispose()
    {
        if (IsDisposed) return;
        try
        {
            _run.Dispose();
        }
        finally
        {
            _session.Dispose();
            IsDisposed = true;
        }
    }
}
