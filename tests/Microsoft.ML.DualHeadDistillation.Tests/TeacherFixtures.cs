using System.Text.Json;
using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Temporary files and data for the teacher tests.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "dualhead-tests-" + Guid.NewGuid().ToString("N"));
    public string File(string name, byte[] bytes)
    {
        var p = System.IO.Path.Combine(Path, name);
        System.IO.File.WriteAllBytes(p, bytes);
        return p;
    }
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

internal static class TeacherFixtures
{
    public sealed class VectorRow
    {
        [VectorType] public float[] Pixels { get; set; } = [];
    }

    public static IDataView Vectors(MLContext ml, float[][] rows)
    {
        var definition = SchemaDefinition.Create(typeof(VectorRow));
        definition["Pixels"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, rows[0].Length);
        return ml.Data.LoadFromEnumerable(rows.Select(r => new VectorRow { Pixels = r }), definition);
    }

    public static float[][] RandomRows(int n, int d, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, d).Select(_ => (float)r.NextDouble()).ToArray()).ToArray();
    }

    public static float[,] RandomMatrix(int rows, int cols, int seed)
    {
        var r = new Random(seed);
        var m = new float[rows, cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) m[i, j] = (float)(r.NextDouble() * 2 - 1);
        return m;
    }

    /// <summary>
    /// A tiny CLIP-format vocabulary (vocab.json + merges.txt): byte-level single characters, each also with
    /// the end-of-word suffix, and merges that build each listed word left to right.
    /// </summary>
    public static (string Vocab, string Merges, Dictionary<string, int> Ids) ClipVocabulary(string dir, IEnumerable<string> words)
    {
        var vocab = new Dictionary<string, int>();
        void Add(string token) { if (!vocab.ContainsKey(token)) vocab[token] = vocab.Count; }
        foreach (char c in "abcdefghijklmnopqrstuvwxyz.") { Add(c.ToString()); Add(c + "</w>"); }
        var merges = new List<string>();
        foreach (var word in words)
        {
            if (word.Length < 2) continue;
            string left = word[0].ToString();
            for (int i = 1; i < word.Length; i++)
            {
                string right = i == word.Length - 1 ? word[i] + "</w>" : word[i].ToString();
                string merge = $"{left} {right}";
                if (!merges.Contains(merge)) merges.Add(merge);
                left += right;
                Add(left);
            }
        }
        Add("<|startoftext|>");
        Add("<|endoftext|>");
        string vocabPath = System.IO.Path.Combine(dir, "vocab.json");
        string mergesPath = System.IO.Path.Combine(dir, "merges.txt");
        File.WriteAllText(vocabPath, JsonSerializer.Serialize(vocab));
        File.WriteAllLines(mergesPath, new[] { "#version: 0.2" }.Concat(merges));
        return (vocabPath, mergesPath, vocab);
    }
}
