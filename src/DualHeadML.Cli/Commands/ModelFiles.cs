using Microsoft.ML.DualHeadDistillation.Runs;
using DualHeadML.Cli.Reports;
using DualHeadML.Cli.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;

namespace DualHeadML.Cli.Commands;

/// <summary>A loaded model.zip and how to feed it image files.</summary>
public sealed class LoadedModel : IDisposable
{
    private readonly MLContext _ml;
    private readonly ITransformer _model;
    private readonly string _column;

    private LoadedModel(MLContext ml, ITransformer model, string column, string[] classes, string path)
    {
        _ml = ml;
        _model = model;
        _column = column;
        Classes = classes;
        Path = path;
    }

    public string[] Classes { get; }
    public string Path { get; }

    /// <summary>The model.zip named by --model (the file, or a run folder holding it).</summary>
    public static LoadedModel Open(string modelOption)
    {
        string path = ModelPaths.Resolve(modelOption, RunFolder.Model, "--model");
        var ml = new MLContext(seed: 1);
        ITransformer model;
        DataViewSchema schema;
        try
        {
            model = DualHeadModel.Load(ml, path, out schema);
        }
        catch (Exception e) when (e is InvalidDataException or InvalidOperationException)
        {
            throw new UsageException(ExitCodes.ModelError, e.Message);
        }
        if (schema.Count != 1 || schema[0].Type is not VectorDataViewType { ItemType: var item } || item != NumberDataViewType.Byte)
        {
            (model as IDisposable)?.Dispose();
            throw new UsageException(ExitCodes.ModelError, $"--model '{path}' is a DualHeadDistill model on a feature vector ({string.Join(", ", schema.Select(c => $"{c.Name}: {c.Type}"))}), not on images; `dualhead` scores image models (made by `dualhead train`, or saved with DualHeadModel.Save from an image column).");
        }
        string column = schema[0].Name;
        var empty = Rows(ml, column, []);
        var classes = ScoredColumns.SlotNames(model.GetOutputSchema(empty.Schema), "Score") ?? [];
        return new LoadedModel(ml, model, column, classes, path);
    }

    private sealed class EncodedImage
    {
        public byte[] Bytes { get; set; } = [];
    }

    private static IDataView Rows(MLContext ml, string column, IEnumerable<byte[]> images)
    {
        var definition = SchemaDefinition.Create(typeof(EncodedImage));
        definition[0].ColumnName = column;
        return ml.Data.LoadFromEnumerable(images.Select(b => new EncodedImage { Bytes = b }), definition);
    }

    /// <summary>Score, and both heads' probabilities when the model has two heads, for each file (read lazily, in order).</summary>
    public (float[][] Score, float[][]? Ce, float[][]? Kd) Score(IReadOnlyList<string> files, CancellationToken cancel)
    {
        var scored = _model.Transform(Rows(_ml, _column, files.Select(f => { cancel.ThrowIfCancellationRequested(); return File.ReadAllBytes(f); })));
        bool heads = scored.Schema.GetColumnOrNull("CeHeadProbabilities") is not null;
        var score = new List<float[]>(files.Count);
        var ce = heads ? new List<float[]>(files.Count) : null;
        var kd = heads ? new List<float[]>(files.Count) : null;
        var columns = heads ? new[] { scored.Schema["Score"], scored.Schema["CeHeadProbabilities"], scored.Schema["KdHeadProbabilities"] } : [scored.Schema["Score"]];
        using var cursor = scored.GetRowCursor(columns);
        var getters = columns.Select(c => cursor.GetGetter<VBuffer<float>>(c)).ToArray();
        VBuffer<float> buffer = default;
        long row = 0;
        try
        {
            while (cursor.MoveNext())
            {
                getters[0](ref buffer); score.Add(buffer.DenseValues().ToArray());
                if (heads)
                {
                    getters[1](ref buffer); ce!.Add(buffer.DenseValues().ToArray());
                    getters[2](ref buffer); kd!.Add(buffer.DenseValues().ToArray());
                }
                row++;
            }
        }
        catch (Exception e) when (e is InvalidDataException || e.InnerException is InvalidDataException)
        {
            throw new UsageException(ExitCodes.DataError, $"Image '{files[(int)row]}' cannot be read: {(e as InvalidDataException ?? (InvalidDataException)e.InnerException!).Message}");
        }
        return (score.ToArray(), ce?.ToArray(), kd?.ToArray());
    }

    public void Dispose() => (_model as IDisposable)?.Dispose();
}

/// <summary>The file a --model option names: the file itself, or a file inside a run folder.</summary>
public static class ModelPaths
{
    public static string Resolve(string path, string file, string option)
    {
        if (Directory.Exists(path))
        {
            string inside = System.IO.Path.Combine(path, file);
            if (!File.Exists(inside)) throw new UsageException(ExitCodes.ModelError, $"{option} '{path}' is a folder without {file} (a `dualhead train` output folder holds it).");
            return inside;
        }
        if (!File.Exists(path)) throw new UsageException(ExitCodes.ModelError, $"{option} '{path}' was not found.");
        return path;
    }
}
