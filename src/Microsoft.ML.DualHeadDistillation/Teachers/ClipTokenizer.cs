using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// CLIP's byte-level BPE tokenizer (OpenAI CLIP <c>simple_tokenizer.py</c>) on Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/>: text is whitespace-cleaned and lower-cased, split with CLIP's regex, each word
/// is BPE-merged with the end-of-word suffix "&lt;/w&gt;", and the ids are framed by
/// <c>&lt;|startoftext|&gt;</c> ... <c>&lt;|endoftext|&gt;</c> and padded to the context length.
/// Takes the same vocab.json + merges.txt that Hugging Face's CLIP tokenizer uses.
/// </summary>
internal sealed class ClipTokenizer
{
    public const string StartOfText = "<|startoftext|>";
    public const string EndOfText = "<|endoftext|>";
    private static readonly Regex s_split = new(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase | RegexOptions.Compiled);
    private static readonly Regex s_spaces = new(@"\s+", RegexOptions.Compiled);
    private readonly BpeTokenizer _bpe;

    private ClipTokenizer(BpeTokenizer bpe, int start, int end)
    {
        _bpe = bpe;
        StartId = start;
        EndId = end;
    }

    public int StartId { get; }
    public int EndId { get; }

    /// <summary>Loads CLIP's vocab.json and merges.txt.</summary>
    public static ClipTokenizer FromFiles(string vocabPath, string mergesPath)
    {
        foreach (var (path, option) in new[] { (vocabPath, "VocabPath"), (mergesPath, "MergesPath") })
            if (!File.Exists(path)) throw new FileNotFoundException($"Tokenizer file '{path}' ({option}) was not found.", path);
        Dictionary<string, int>? vocab;
        try
        {
            vocab = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabPath));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"'{vocabPath}' (VocabPath) is not a JSON object of token -> id ({e.Message}).", e);
        }
        if (vocab is null) throw new InvalidDataException($"'{vocabPath}' (VocabPath) is not a JSON object of token -> id.");
        foreach (var special in new[] { StartOfText, EndOfText })
            if (!vocab.ContainsKey(special)) throw new InvalidDataException($"'{vocabPath}' (VocabPath) has no '{special}' token; it is not a CLIP vocabulary.");
        var specials = new Dictionary<string, int> { [StartOfText] = vocab[StartOfText], [EndOfText] = vocab[EndOfText] };
        var merges = File.ReadAllLines(mergesPath).Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal));
        var bpe = BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges,
            EndOfWordSuffix = "</w>",
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(s_split, specials),
            SpecialTokens = specials,
        });
        return new ClipTokenizer(bpe, vocab[StartOfText], vocab[EndOfText]);
    }

    /// <summary>The ids of one text, without start/end tokens.</summary>
    public IReadOnlyList<int> EncodeWords(string text)
        => _bpe.EncodeToIds(s_spaces.Replace(text.Trim(), " ").ToLowerInvariant());

    /// <summary>[start, ids..., end], truncated so that it fits in <paramref name="contextLength"/> (the end token is kept).</summary>
    public int[] Encode(string text, int contextLength)
    {
        var words = EncodeWords(text);
        int room = Math.Max(0, contextLength - 2);
        return [StartId, .. words.Take(room), EndId];
    }
}
