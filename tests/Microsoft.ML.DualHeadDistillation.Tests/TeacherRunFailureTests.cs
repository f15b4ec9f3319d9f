using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>A teacher graph that loads but fails when run, and a vocabulary that is not JSON, are errors naming the file.</summary>
[TestClass]
public sealed class TeacherRunFailureTests
{
    [TestMethod]
    public void TeacherGraphThatFailsWhenRunIsAnErrorNamingTheFile()
    {
        using var dir = new TempDir();
        // A teacher [N, 6] -> [N, 5] whose graph reshapes its input to [-1, 5]: it loads (shape inference cannot
        // know N), then fails at run time for a batch of 4 rows (24 values are not a multiple of 5).
        var model = Onnx.ModelProto.Parser.ParseFrom(DualHeadML.Samples.Onnx.TinyOnnxModels.Linear(TeacherFixtures.RandomMatrix(5, 6, 1), [0, 0, 0, 0, 0]));
        var node = model.Graph.Node[0];
        node.OpType = "Reshape";
        node.Attribute.Clear();
        node.Input.Clear();
        node.Input.Add(model.Graph.Input[0].Name);
        node.Input.Add("S");
        var shape = new Onnx.TensorProto { Name = "S", DataType = (int)Onnx.TensorProto.Types.DataType.Int64 };
        shape.Dims.Add(2);
        shape.Int64Data.Add(-1);
        shape.Int64Data.Add(5);
        model.Graph.Initializer.Add(shape);
        var path = dir.File("reshaping.onnx", Google.Protobuf.MessageExtensions.ToByteArray(model));
        var ml = new MLContext(seed: 1);
        var data = TeacherFixtures.Vectors(ml, TeacherFixtures.RandomRows(10, 6, 2));
        using var teacher = ml.Transforms.TeacherSoftLabels("T", "Pixels", path, batchSize: 4).Fit(data);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => teacher.Transform(data).GetColumn<float[]>("T").ToArray());
        Console.WriteLine(e.Message);
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "failed when run");
    }

    [TestMethod]
    public void VocabularyThatIsNotJsonIsAnErrorNamingTheFile()
    {
        using var dir = new TempDir();
        var (_, merges, _) = TeacherFixtures.ClipVocabulary(dir.Path, ["cat", "dog"]);
        string vocab = dir.File("vocab.json", "{ not json"u8.ToArray());
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Teachers.ClipTokenizer.FromFiles(vocab, merges));
        StringAssert.Contains(e.Message, vocab);
        StringAssert.Contains(e.Message, "VocabPath");
    }
}
