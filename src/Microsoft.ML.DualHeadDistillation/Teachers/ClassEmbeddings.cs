using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>CLIP prompt templates for zero-shot classification.</summary>
public static class ClipPromptTemplates
{
    /// <summary>The single default prompt.</summary>
    public static readonly IReadOnlyList<string> Default = ["a photo of a {}."];

    /// <summary>
    /// The 7-template ensemble that OpenAI selected from their 80 ImageNet templates (CLIP repository,
    /// notebooks/Prompt_Engineering_for_ImageNet.ipynb).
    /// </summary>
    public static readonly IReadOnlyList<string> ImageNetEnsemble7 =
    [
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ];
}

/// <summary>Class text embeddings for the zero-shot teacher: from a matrix, a file, or a text encoder.</summary>
public static class ClassEmbeddings
{
    /// <summary>Rows scaled to unit L2 norm (a zero row stays zero), flattened [K * E].</summary>
    public static float[] NormalizeRows(float[,] matrix)
    {
        int k = matrix.GetLength(0), e = matrix.GetLength(1);
        var result = new float[k * e];
        for (int i = 0; i < k; i++)
        {
            double norm = 0;
            for (int j = 0; j < e; j++) norm += (double)matrix[i, j] * matrix[i, j];
            double inv = norm > 0 ? 1 / Math.Sqrt(norm) : 0;
            for (int j = 0; j < e; j++) result[i * e + j] = (float)(matrix[i, j] * inv);
        }
        return result;
    }

    /// <summary>Reads a K x E matrix from a text file: one class per line, numbers separated by commas, tabs or spaces.</summary>
    public static float[,] Load(string path, int expectedClasses)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Class embedding file '{path}' (ClassEmbeddingsPath) was not found.", path);
        var rows = File.ReadAllLines(path).Where(l => l.Trim().Length > 0).Select((line, i) =>
        {
            try
            {
                return line.Split([',', '\t', ' '], StringSplitOptions.RemoveEmptyEntries).Select(v => float.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"Class embedding file '{path}' line {i + 1} is not a list of numbers.", e);
            }
        }).ToList();
        if (rows.Count != expectedClasses)
            throw new InvalidDataException($"Class embedding file '{path}' has {rows.Count} rows but {expectedClasses} class names were given.");
        int e = rows[0].Length;
        if (e == 0 || rows.Any(r => r.Length != e))
            throw new InvalidDataException($"Class embedding file '{path}' must have the same, non-zero number of values on every line.");
        var matrix = new float[rows.Count, e];
        for (int i = 0; i < rows.Count; i++) for (int j = 0; j < e; j++) matrix[i, j] = rows[i][j];
        return matrix;
    }

    /// <summary>
    /// CLIP's prompt ensembling: for each class, each template's text (with "{}" replaced by the class name)
    /// is encoded; every prompt embedding is L2-normalised, the template embeddings are averaged, and the
    /// mean is L2-normalised again. Returns the K x E matrix.
    /// </summary>
    internal static float[,] FromTextEncoder(TextEncoder encoder, IReadOnlyList<string> classNames, IReadOnlyList<string> templates)
    {
        if (templates.Count == 0) throw new ArgumentException("At least one prompt template is needed.", nameof(templates));
        foreach (var t in templates)
            if (!t.Contains("{}", StringComparison.Ordinal)) throw new ArgumentException($"Prompt template '{t}' has no '{{}}' for the class name.", nameof(templates));
        float[,]? result = null;
        for (int c = 0; c < classNames.Count; c++)
        {
            var prompts = templates.Select(t => t.Replace("{}", classNames[c], StringComparison.Ordinal)).ToArray();
            var embeddings = encoder.Encode(prompts); // [T, E]
            int e = embeddings.GetLength(1);
            result ??= new float[classNames.Count, e];
            var unit = NormalizeRows(embeddings);
            var mean = new double[e];
            for (int t = 0; t < prompts.Length; t++) for (int j = 0; j < e; j++) mean[j] += unit[t * e + j] / prompts.Length;
            double norm = Math.Sqrt(mean.Sum(v => v * v));
            for (int j = 0; j < e; j++) result[c, j] = (float)(norm > 0 ? mean[j] / norm : 0);
        }
        return result!;
    }
}

/// <summary>
/// A CLIP text encoder in ONNX: token ids (int64 [N, L]) and, when the model takes one, an attention mask
/// (int64 [N, L]) in; text embeddings [N, E] out. Hugging Face names (<c>input_ids</c>, <c>attention_mask</c>,
/// <c>text_embeds</c>) are found automatically, as is an open_clip-style single input and output.
/// </summary>
internal sealed class TextEncoder : IDisposable
{
    private readonly OnnxTeacherSession _session;
    private readonly ClipTokenizer _tokenizer;
    private readonly string _ids;
    private readonly string? _mask;
    private readonly string _output;
    private readonly int _contextLength;

    public TextEncoder(string modelPath, ClipTokenizer tokenizer, int contextLength = 77, string? idsName = null, string? maskName = null, string? outputName = null, TeacherRuntimeOptions? runtime = null)
    {
        if (contextLength < 3) throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "The context length must leave room for the start and end tokens.");
        _session = OnnxTeacherSession.Open(modelPath, runtime ?? new TeacherRuntimeOptions(), "TextEncoderPath");
        try
        {
            _tokenizer = tokenizer;
            _contextLength = contextLength;
            _ids = OnnxTeacherSession.ResolveName(_session.Inputs, idsName, ["input_ids", "text", "input"], "input", "TextInputIdsName", modelPath);
            OnnxTeacherSession.RequireElementType(_session.Inputs[_ids], TensorElementType.Int64, _ids, modelPath, "TextInputIdsName");
            if (maskName is not null || _session.Inputs.Count > 1)
            {
                _mask = OnnxTeacherSession.ResolveName(_session.Inputs.Where(p => p.Key != _ids).ToDictionary(), maskName, ["attention_mask"], "input", "TextAttentionMaskName", modelPath);
                OnnxTeacherSession.RequireElementType(_session.Inputs[_mask], TensorElementType.Int64, _mask, modelPath, "TextAttentionMaskName");
            }
            _output = OnnxTeacherSession.ResolveName(_session.Outputs, outputName, ["text_embeds", "text_features", "output"], "output", "TextOutputName", modelPath);
            OnnxTeacherSession.RequireElementType(_session.Outputs[_output], TensorElementType.Float, _output, modelPath, "TextOutputName");
            var fixedLength = _session.Inputs[_ids].Dimensions is { Length: 2 } d && d[1] > 0 ? d[1] : 0;
            if (fixedLength > 0) _contextLength = fixedLength; // a model exported with a fixed context wants exactly that
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    public ClipTokenizer Tokenizer => _tokenizer;
    public int ContextLength => _contextLength;
    public byte[] ModelFingerprint => _session.ModelFingerprint;

    /// <summary>Token ids [N, L] (zero-padded) and the matching attention mask for the given texts.</summary>
    public (long[] Ids, long[] Mask) Tokenize(IReadOnlyList<string> texts)
    {
        int l = _contextLength;
        var ids = new long[texts.Count * l];
        var mask = new long[texts.Count * l];
        for (int i = 0; i < texts.Count; i++)
        {
            var tokens = _tokenizer.Encode(texts[i], l);
            for (int j = 0; j < tokens.Length; j++)
            {
                ids[i * l + j] = tokens[j];
                mask[i * l + j] = 1;
            }
        }
        return (ids, mask);
    }

    /// <summary>Raw (un-normalised) embeddings [texts, E].</summary>
    public float[,] Encode(IReadOnlyList<string> texts)
    {
        var (ids, mask) = Tokenize(texts);
        long[] shape = [texts.Count, _contextLength];
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, shape);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, shape);
        string[] names = _mask is null ? [_ids] : [_ids, _mask];
        OrtValue[] values = _mask is null ? [idsValue] : [idsValue, maskValue];
        var (buffer, outShape) = _session.Run(names, values, _output);
        if (outShape.Length != 2 || outShape[0] != texts.Count)
            throw new InvalidOperationException($"Text encoder output '{_output}' has shape [{string.Join(", ", outShape)}]; expected [{texts.Count}, E].");
        int e = (int)outShape[1];
        var result = new float[texts.Count, e];
        for (int i = 0; i < texts.Count; i++) for (int j = 0; j < e; j++) result[i, j] = buffer[i * e + j];
        return result;
    }

    public void Dispose() => _session.Dispose();
}
