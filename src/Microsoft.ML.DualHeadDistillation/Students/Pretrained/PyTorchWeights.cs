using System.Collections;
using System.Text;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students.Pretrained;

/// <summary>What <see cref="PyTorchWeights.Load"/> loaded.</summary>
/// <param name="Path">The weights file.</param>
/// <param name="Format">"torch.save" (a zip pickle) or "safetensors".</param>
/// <param name="LoadedTensors">Parameters and buffers copied into the module.</param>
/// <param name="LoadedValues">Their number of values.</param>
/// <param name="IgnoredKeys">Keys of the file left out on purpose (the classifier the heads replace, counters).</param>
public sealed record PretrainedLoadReport(string Path, string Format, int LoadedTensors, long LoadedValues, IReadOnlyList<string> IgnoredKeys)
{
    public override string ToString() => $"{LoadedTensors} tensors ({LoadedValues:N0} values) from {Format} file '{Path}'{(IgnoredKeys.Count > 0 ? $"; ignored {string.Join(", ", IgnoredKeys)}" : "")}";
}

/// <summary>
/// Reads a PyTorch <c>state_dict</c> (a <c>torch.save</c> file, .pt / .pth, or a .safetensors file) with
/// TorchSharp.PyBridge and copies it into a module whose parameter names follow the same convention (TorchVision.NET's
/// models follow torchvision's). All or nothing: every key of the module must be in the file with the same shape and
/// finite values, and every key of the file must be used (bar the prefixes the caller ignores, such as the
/// classifier DHO's heads replace), else an <see cref="InvalidDataException"/> names the file and lists the missing
/// keys, the unexpected keys and the shape mismatches, and the module is left untouched. A file holding
/// <c>{"state_dict": ...}</c> or <c>{"model": ...}</c>, or keys prefixed <c>module.</c> (DataParallel), is read
/// as its inner state dict. BatchNorm's <c>num_batches_tracked</c> counters are optional on both sides.
/// </summary>
public static class PyTorchWeights
{
    private const int ListedKeys = 12;

    /// <summary>Loads <paramref name="path"/> into <paramref name="module"/>; keys under <paramref name="ignoredPrefixes"/> in the file are skipped.</summary>
    public static PretrainedLoadReport Load(nn.Module module, string path, IReadOnlyList<string>? ignoredPrefixes = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Pretrained weights file '{path}' does not exist.", path);
        ignoredPrefixes ??= [];
        using var scope = NewDisposeScope(); // every tensor read from the file
        using var noGrad = no_grad();
        var (format, source) = Read(path);
        var target = module.state_dict();

        static bool Counter(string key) => key.EndsWith("num_batches_tracked", StringComparison.Ordinal);
        var ignored = source.Keys.Where(k => ignoredPrefixes.Any(p => k.StartsWith(p, StringComparison.Ordinal)) || Counter(k) && !target.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var missing = target.Keys.Where(k => !source.ContainsKey(k) && !Counter(k)).ToList();
        var unexpected = source.Keys.Where(k => !target.ContainsKey(k)).Except(ignored).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var mismatched = target.Where(t => source.TryGetValue(t.Key, out var s) && !s.shape.SequenceEqual(t.Value.shape))
            .Select(t => $"{t.Key}: file [{string.Join(", ", source[t.Key].shape)}], model [{string.Join(", ", t.Value.shape)}]").ToList();
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
        {
            var message = new StringBuilder($"Pretrained weights file '{path}' ({format}) does not fit {Describe(module)}:");
            void List(string what, List<string> keys)
            {
                if (keys.Count == 0) return;
                message.Append($" {keys.Count} {what}: {string.Join("; ", keys.Take(ListedKeys))}{(keys.Count > ListedKeys ? $"; ... ({keys.Count - ListedKeys} more)" : "")}.");
            }
            List("missing keys (in the model, not in the file)", missing);
            List("unexpected keys (in the file, not in the model)", unexpected);
            List("shape mismatches", mismatched);
            if (ignoredPrefixes.Count > 0) message.Append($" Keys under {string.Join(", ", ignoredPrefixes)} are ignored (the classifier the heads replace).");
            throw new InvalidDataException(message.ToString());
        }
        var used = target.Where(t => source.ContainsKey(t.Key)).ToList();
        foreach (var (key, tensor) in used)
        {
            var value = source[key];
            if (value.is_floating_point() && !value.isfinite().all().item<bool>())
                throw new InvalidDataException($"Pretrained weights file '{path}': tensor '{key}' holds NaN or infinite values.");
        }
        long values = 0;
        foreach (var (key, tensor) in used)
        {
            tensor.copy_(source[key]);
            values += tensor.numel();
        }
        return new PretrainedLoadReport(path, format, used.Count, values, ignored);
    }

    /// <summary>The state dict of a torch.save or safetensors file (format told by its first bytes, not its name).</summary>
    private static (string Format, Dictionary<string, Tensor> StateDict) Read(string path)
    {
        var head = new byte[8];
        using (var f = File.OpenRead(path))
            if (f.Read(head, 0, 8) < 8) throw new InvalidDataException($"Pretrained weights file '{path}' is {f.Length} bytes: neither a torch.save zip nor a safetensors file.");
        try
        {
            if (head[0] == 0x50 && head[1] == 0x4B) // "PK": torch.save's zip
                return ("torch.save", Unwrap(PyTorchUnpickler.UnpickleStateDict(path), path));
            long headerLength = BitConverter.ToInt64(head, 0);
            if (headerLength > 1 && headerLength < 100_000_000 && headerLength + 8 <= new FileInfo(path).Length)
                return ("safetensors", Strip(Safetensors.LoadStateDict(path)));
        }
        catch (Exception e) when (e is not OutOfMemoryException && !e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"Pretrained weights file '{path}' could not be read as a PyTorch state_dict: {e.Message}", e);
        }
        throw new InvalidDataException($"Pretrained weights file '{path}' is neither a torch.save zip (a state_dict saved by PyTorch 1.6 or later) nor a safetensors file.");
    }

    private static Dictionary<string, Tensor> Unwrap(Hashtable table, string path)
    {
        foreach (var inner in new[] { "state_dict", "model" })
            if (table[inner] is Hashtable nested) return Unwrap(nested, path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in table)
        {
            if (entry.Key is not string key || entry.Value is not Tensor tensor)
                throw new InvalidDataException($"Pretrained weights file '{path}' holds '{entry.Key}' of type {entry.Value?.GetType().Name ?? "null"}; a state_dict maps names to tensors.");
            result[key] = tensor;
        }
        return Strip(result);
    }

    private static Dictionary<string, Tensor> Strip(Dictionary<string, Tensor> dict) =>
        dict.Count > 0 && dict.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal))
            ? dict.ToDictionary(p => p.Key["module.".Length..], p => p.Value, StringComparer.Ordinal)
            : new Dictionary<string, Tensor>(dict, StringComparer.Ordinal);

    private static string Describe(nn.Module module) => module is StudentBackbone b ? $"backbone {b.Description}" : module.GetType().Name;
}
