using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Runs;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Files written by earlier versions still read: a model.zip saved on ML.NET 5.0.1, a run.json of the tool before the run API.</summary>
[TestClass]
public sealed class EarlierFormatsTests
{
    private static string Fixture(string name) => Path.Combine(TorchVisionFixtures.RepositoryRoot(), "tests", "fixtures", "mlnet-5.0.1", name);

    private sealed class ImageRow
    {
        [VectorType] public byte[] Image { get; set; } = [];
    }

    [TestMethod]
    public void AModelSavedByMLNet501LoadsAndScoresTheSame()
    {
        var ml = new MLContext(seed: 1);
        var model = DualHeadModel.Load(ml, Fixture("model.zip"), out var schema);
        Assert.AreEqual("Image", schema[0].Name);
        using var expected = JsonDocument.Parse(File.ReadAllText(Fixture("expected.json")));
        var images = expected.RootElement.EnumerateArray().Select(e => Path.GetFileName(e.GetProperty("file").GetString()!)).ToArray();
        Assert.AreEqual(10, images.Length);
        var data = ml.Data.LoadFromEnumerable(images.Select(f => new ImageRow { Image = File.ReadAllBytes(Fixture(f)) }));
        var scored = model.Transform(data);
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        var classes = ScoredColumns.SlotNames(scored.Schema, "Score")!;
        int i = 0;
        foreach (var row in expected.RootElement.EnumerateArray())
        {
            foreach (var top in row.GetProperty("top").EnumerateArray())
            {
                int c = Array.IndexOf(classes, top.GetProperty("class").GetString());
                Assert.IsTrue(c >= 0, top.ToString());
                Assert.AreEqual(top.GetProperty("probability").GetSingle(), scores[i][c], 1e-6f, $"{images[i]} {classes[c]}");
            }
            Assert.AreEqual(row.GetProperty("predicted").GetString(), classes[ClassifierScores.ArgMax(scores[i])]);
            i++;
        }
        (model as IDisposable)?.Dispose();
    }

    [TestMethod]
    public void TheEarlierOptionNamesStillSetTheOptions()
    {
#pragma warning disable CS0618 // the obsolete aliases are what is tested
        var o = new DualHeadDistillOptions { Mode = DualHeadTrainingMode.SingleHeadKd, HiddenSize = 24 };
        Assert.AreEqual(DualHeadTrainingMode.SingleHeadKd, o.Objective);
        Assert.AreEqual(24, o.EmbeddingSize);
        Assert.AreEqual(DualHeadDefaults.EmbeddingSize, DualHeadDefaults.HiddenSize);
        var json = System.Text.Json.JsonSerializer.Deserialize<DualHeadDistillOptions>("""{ "Mode": "SupervisedOnly", "HiddenSize": 16 }""")!;
        Assert.AreEqual(DualHeadTrainingMode.SupervisedOnly, json.Objective);
        Assert.AreEqual(16, json.EmbeddingSize);
#pragma warning restore CS0618
    }

    [TestMethod]
    public void ARunJsonOfTheToolBeforeTheRunApiResumesWithItsSettings()
    {
        using var dir = new TempDir();
        // The layout `dualhead train` wrote before DistillationRunSpec (TrainSettings): Student, StudentSettings,
        // Pretrained, TeacherMode, SoftLabels and PackageSource at the top, Device and Precision as text.
        File.WriteAllText(Path.Combine(dir.Path, RunFolder.Settings), $$"""
        {
          "Settings": {
            "Labeled": {{JsonSerializer.Serialize(CliFixture.Data.Labeled)}},
            "ValidationFraction": 0.25,
            "Output": {{JsonSerializer.Serialize(dir.Path)}},
            "Teacher": { "OnnxPath": {{JsonSerializer.Serialize(CliFixture.Teacher)}}, "Normalize": "none", "BatchSize": 32, "Device": "cpu" },
            "SoftLabelsRoot": "/data",
            "Student": "ResNet18",
            "StudentSettings": { "stem": "small" },
            "Objective": "SingleHeadKd",
            "ImageSize": 32,
            "Channels": 3,
            "Epochs": 4,
            "TeacherMode": "views:3",
            "Seed": 7,
            "Device": "cpu",
            "Precision": "Float32",
            "PreciseBatchNormBatches": 0,
            "Augment": true,
            "PackageSource": "/feed",
            "ResolvedEpochs": 4
          },
          "ListingFingerprint": "abc",
          "ChosenEpochs": 4
        }
        """);
        var run = DistillationRun.Resume(dir.Path);
        var s = run.Spec;
        Assert.AreEqual(DualHeadBackbone.FromName("ResNet18"), s.Backbone);
        Assert.AreEqual("small", s.BackboneSettings["stem"]);
        Assert.AreEqual(DualHeadTrainingMode.SingleHeadKd, s.Objective);
        Assert.AreEqual(new TeacherViewChoice(Specs.DualHeadTeacherView.CachedViews, 3), s.TeacherView);
        Assert.AreEqual(DualHeadDevice.Cpu, s.Device);
        Assert.AreEqual(DualHeadPrecision.Float32, s.Precision);
        Assert.AreEqual("/data", s.Teacher.SoftLabelsRoot);
        Assert.AreEqual(32, s.Teacher.BatchSize);
        Assert.AreEqual("/feed", s.Annotations!["PackageSource"]);
        Assert.AreEqual((7, 4, 32, 0.25), (s.Seed, s.Epochs, s.ImageSize, s.ValidationFraction));
        // It resumes only from a checkpoint, and says so.
        var e = Assert.ThrowsExactly<DistillationRunException>(() => run.Execute());
        Assert.AreEqual(RunErrorKind.Data, e.Kind, e.Message); // the listing differs from the fingerprint "abc"
    }
}
