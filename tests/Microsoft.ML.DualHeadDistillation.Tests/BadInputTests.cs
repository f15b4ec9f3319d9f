using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Every kind of bad input fails before training with a message naming the column or option.</summary>
[TestClass]
public sealed class BadInputTests
{
    private static readonly MLContext s_ml = new(seed: 1);

    private static TException Fails<TException>(IDataView data, DualHeadDistillOptions? options = null) where TException : Exception
        => Assert.ThrowsExactly<TException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(options ?? SyntheticData.MlpOptions(epochs: 1)).Fit(data));

    [TestMethod]
    public void MissingColumnsAreNamed()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(6, 6));
        var options = SyntheticData.MlpOptions();
        options.LabelColumnName = "Target";
        StringAssert.Contains(Fails<ArgumentOutOfRangeException>(data, options).Message, "Label column 'Target' was not found");
        options = SyntheticData.MlpOptions();
        options.FeatureColumnName = "Pixels";
        StringAssert.Contains(Fails<ArgumentOutOfRangeException>(data, options).Message, "Feature column 'Pixels' was not found");
        options = SyntheticData.MlpOptions();
        options.TeacherColumnName = "Logits";
        StringAssert.Contains(Fails<ArgumentOutOfRangeException>(data, options).Message, "Teacher column 'Logits' was not found");
    }

    [TestMethod]
    public void WronglyTypedColumnsAreNamed()
    {
        // Label still a string (MapValueToKey forgotten).
        var raw = s_ml.Data.LoadFromEnumerable(SyntheticData.Rows(6, 6));
        var e = Fails<ArgumentOutOfRangeException>(raw);
        StringAssert.Contains(e.Message, "Label column 'Label'");
        StringAssert.Contains(e.Message, "MapValueToKey");

        // Features as doubles, teacher as a scalar.
        var odd = s_ml.Data.LoadFromEnumerable(new[] { new OddRow { Label = "cat", Features = new double[4], TeacherLogits = 1f }, new OddRow { Label = "dog", Features = new double[4], TeacherLogits = 1f } });
        var keyed = s_ml.Transforms.Conversion.MapValueToKey("Label").Fit(odd).Transform(odd);
        e = Fails<ArgumentOutOfRangeException>(keyed);
        StringAssert.Contains(e.Message, "Feature column 'Features'");
        StringAssert.Contains(e.Message, "vector of Single");
        Assert.AreEqual("FeatureColumnName", e.ParamName);

        var options = SyntheticData.MlpOptions();
        options.FeatureColumnName = "Pixels";
        var odd2 = s_ml.Data.LoadFromEnumerable(new[] { new OddRow { Label = "cat", Features = new double[4], TeacherLogits = 1f, Pixels = new float[4] }, new OddRow { Label = "dog", Pixels = new float[4] } });
        var keyed2 = s_ml.Transforms.Conversion.MapValueToKey("Label").Fit(odd2).Transform(odd2);
        e = Fails<ArgumentOutOfRangeException>(keyed2, options);
        StringAssert.Contains(e.Message, "Teacher column 'TeacherLogits'");
    }

    private sealed class OddRow
    {
        public string Label { get; set; } = "";
        [VectorType(4)] public double[] Features { get; set; } = [];
        [VectorType(4)] public float[] Pixels { get; set; } = [];
        public float TeacherLogits { get; set; }
    }

    [TestMethod]
    public void TeacherSizeMustMatchTheClassCount()
    {
        // Only two of the three classes appear, so the label key has 2 values but the teacher has 3 logits.
        var rows = SyntheticData.Rows(6, 6).Where(r => r.Label != "bird");
        var data = s_ml.Data.LoadFromEnumerable(rows);
        var keyed = s_ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var e = Fails<ArgumentOutOfRangeException>(keyed);
        StringAssert.Contains(e.Message, "Teacher column 'TeacherLogits' has 3 values per row but label column 'Label' has 2 classes");
    }

    [TestMethod]
    public void NoLabeledRowsIsAnError()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(0, 12));
        var e = Fails<ArgumentException>(data);
        StringAssert.Contains(e.Message, "none is labeled");
    }

    [TestMethod]
    public void EmptyDataIsAnError()
    {
        var data = SyntheticData.Load(s_ml, []);
        StringAssert.Contains(Fails<ArgumentException>(data).Message, "has no rows");
    }

    [TestMethod]
    public void NaNAndInfinityInTheTeacherAreErrors()
    {
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var rows = SyntheticData.Rows(6, 6);
            rows[7].TeacherLogits[1] = bad;
            var e = Fails<ArgumentOutOfRangeException>(SyntheticData.Load(s_ml, rows));
            StringAssert.Contains(e.Message, "Row 7, slot 1 of teacher column 'TeacherLogits'");
        }
        var probabilities = SyntheticData.MlpOptions();
        probabilities.TeacherOutput = TeacherOutputKind.Probabilities;
        var logits = SyntheticData.Load(s_ml, SyntheticData.Rows(6, 6)); // logits of 3 are not probabilities
        StringAssert.Contains(Fails<ArgumentOutOfRangeException>(logits, probabilities).Message, "must be in [0, 1]");
    }

    [TestMethod]
    public void NaNFeaturesAreErrors()
    {
        var rows = SyntheticData.Rows(6, 6);
        rows[2].Features[0] = float.NaN;
        StringAssert.Contains(Fails<ArgumentOutOfRangeException>(SyntheticData.Load(s_ml, rows)).Message, "Row 2, slot 0 of feature column 'Features'");
    }

    [TestMethod]
    public void BadOptionsNameTheOption()
    {
        var cases = new (Action<DualHeadDistillOptions> Set, string Name)[]
        {
            (o => o.Lambda = 1.5f, "Lambda"),
            (o => o.Temperature = 0, "Temperature"),
            (o => o.Alpha = -0.1f, "Alpha"),
            (o => o.Beta = float.NaN, "Beta"),
            (o => o.NumberOfEpochs = 0, "NumberOfEpochs"),
            (o => o.LabeledBatchSize = 0, "LabeledBatchSize"),
            (o => o.LearningRate = -1, "LearningRate"),
            (o => o.EmbeddingSize = 0, "EmbeddingSize"),
        };
        foreach (var (set, name) in cases)
        {
            var options = SyntheticData.MlpOptions();
            set(options);
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => s_ml.MulticlassClassification.Trainers.DualHeadDistill(options));
            Assert.AreEqual(name, e.ParamName);
        }
        var shape = SyntheticData.MlpOptions();
        shape.Backbone = DualHeadBackbone.SmallCnn;
        shape.ImageShape = [1, 3, 3]; // 9 values, features have 8
        var error = Fails<ArgumentOutOfRangeException>(SyntheticData.Load(s_ml, SyntheticData.Rows(6, 6)), shape);
        StringAssert.Contains(error.Message, "ImageShape [1, 3, 3] holds 9 values but feature column 'Features' has 8");
    }

    [TestMethod]
    public void ScoringDataWithAnotherFeatureSizeIsRejected()
    {
        var data = SyntheticData.Load(s_ml, SyntheticData.Rows(6, 6));
        using var model = s_ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data);
        var other = s_ml.Data.LoadFromEnumerable(new[] { new OddRow { Label = "x", Features = new double[4], Pixels = new float[4] } });
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(other));
        StringAssert.Contains(e.Message, "Feature column 'Features'");

        // The right type but another size.
        var narrow = s_ml.Data.LoadFromEnumerable(new[] { new NarrowRow { Features = new float[4] } });
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(narrow));
        StringAssert.Contains(e.Message, "has 4 values per row; the model was trained on 8");
    }

    private sealed class NarrowRow
    {
        [Microsoft.ML.Data.VectorType(4)] public float[] Features { get; set; } = [];
    }
}
