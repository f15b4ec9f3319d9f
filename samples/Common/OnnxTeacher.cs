using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.Trainers;

namespace DualHeadML.Samples;

/// <summary>
/// A teacher produced without DualHeadML: an ML.NET multinomial logistic regression (L-BFGS maximum
/// entropy) trained on the labeled teacher pool, exported with Microsoft.ML.OnnxConverter. In the student's
/// pipeline it runs as a plain ONNX model (ApplyOnnxModel) that outputs K class probabilities per row.
/// </summary>
public sealed class OnnxTeacher
{
    /// <summary>ONNX input and output names of the exported model.</summary>
    public const string InputName = "Features";
    public const string OutputName = "Score.output";
    /// <summary>ApplyOnnxModel drops the ".output" suffix that ML.NET's exporter adds, so the column is "Score".</summary>
    public const string OutputColumn = "Score";

    private OnnxTeacher(byte[] onnx, long parameters, double trainSeconds)
    {
        Onnx = onnx;
        Parameters = parameters;
        TrainSeconds = trainSeconds;
    }

    public byte[] Onnx { get; }
    public long Parameters { get; }
    public double TrainSeconds { get; }

    /// <summary>Trains on the pool; <paramref name="poolLabels"/>, when given, replaces the pool's labels (index = image index).</summary>
    public static OnnxTeacher Train(MLContext ml, FashionMnistSplit train, IEnumerable<int> pool, IReadOnlyDictionary<int, byte>? poolLabels = null)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var rows = FashionMnistProtocol.Rows(train, pool, labeled: true).Zip(pool, (row, i) =>
        {
            if (poolLabels is not null) row.Label = FashionMnist.ClassNames[poolLabels[i]];
            return row;
        });
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = ml.Transforms.Conversion.MapValueToKey("Label", keyData: ClassKeys(ml))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options { L2Regularization = 1e-2f, MaximumNumberOfIterations = 100 }))
            .Fit(data);
        var maxEnt = model.LastTransformer.Model;
        VBuffer<float>[] weights = [];
        maxEnt.GetWeights(ref weights, out int classes);
        long parameters = weights.Sum(w => (long)w.Length) + classes;

        // Export just what scoring needs: the Features column in, Score out.
        var featuresOnly = ml.Transforms.SelectColumns("Features").Fit(data).Transform(data);
        using var stream = new MemoryStream();
        ml.Model.ConvertToOnnx(model.LastTransformer, featuresOnly, stream);
        return new OnnxTeacher(stream.ToArray(), parameters, watch.Elapsed.TotalSeconds);
    }

    /// <summary>The class names in label order, for MapValueToKey's keyData (so key i+1 is class i).</summary>
    public static IDataView ClassKeys(MLContext ml) =>
        ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));

    /// <summary>
    /// The exported teacher as a transformer that adds <paramref name="outputColumn"/> (K probabilities per row).
    /// ApplyOnnxModel has nothing to learn, so it is fitted here, once. (It cannot sit inside an estimator
    /// chain for a model exported by ML.NET: ML.NET 5's OnnxScoringEstimator announces the output as
    /// "Score.output" while the fitted transformer names it "Score", so the chain's schema check fails.)
    /// </summary>
    public ITransformer Apply(MLContext ml, IDataView schemaSource, string outputColumn)
    {
        var onnx = ml.Transforms.ApplyOnnxModel(new[] { OutputName }, new[] { InputName }, new MemoryStream(Onnx)).Fit(schemaSource);
        var copy = ml.Transforms.CopyColumns(outputColumn, OutputColumn).Fit(onnx.Transform(schemaSource));
        return new TransformerChain<ITransformer>(onnx, copy);
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}
