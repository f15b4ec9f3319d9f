using System.Text;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>A teacher that maps a batch of preprocessed inputs to K logits per row.</summary>
internal abstract class TeacherRunner : IDisposable
{
    protected TeacherRunner(OnnxTeacherSession session, string inputName, string outputName, string option)
    {
        Session = session;
        InputName = inputName;
        OutputName = outputName;
        OnnxTeacherSession.RequireElementType(session.Inputs[inputName], TensorElementType.Float, inputName, session.Path, option);
        OnnxTeacherSession.RequireElementType(session.Outputs[outputName], TensorElementType.Float, outputName, session.Path, option);
        var dims = session.Inputs[inputName].Dimensions;
        if (dims.Length < 2)
            throw new ArgumentOutOfRangeException(option, $"Teacher model '{session.Path}' input '{inputName}' has shape [{string.Join(", ", dims)}]; expected a batch dimension followed by the row's shape.");
        ModelRowDims = dims[1..];
    }

    public OnnxTeacherSession Session { get; }
    public string InputName { get; }
    public string OutputName { get; }
    /// <summary>The model's input dims after the batch dimension (-1 where symbolic).</summary>
    public int[] ModelRowDims { get; }
    public abstract int ClassCount { get; }
    /// <summary>E, the size of the image embedding a zero-shot teacher computes on the way (0: none).</summary>
    public virtual int EmbeddingSize => 0;

    /// <summary>The L2-normalised image embeddings of the last <see cref="Run"/> ([rows, E]); only when <see cref="EmbeddingSize"/> &gt; 0.</summary>
    public virtual void CopyEmbeddings(int rows, Span<float> destination) =>
        throw new InvalidOperationException($"Teacher model '{Session.Path}' computes no image embedding.");

    /// <summary>Runs <paramref name="rows"/> rows of shape <paramref name="rowShape"/> and writes [rows, K] logits.</summary>
    public abstract void Run(Memory<float> inputs, int rows, int[] rowShape, Span<float> logits);

    /// <summary>Everything that determines the outputs besides the input row, for the cache key.</summary>
    public virtual byte[][] FingerprintParts() => [Session.ModelFingerprint, Encoding.UTF8.GetBytes($"{InputName}->{OutputName}")];

    protected static long[] Shape(int rows, int[] rowShape) => [rows, .. rowShape.Select(d => (long)d)];

    public void Dispose() => Session.Dispose();
}

/// <summary>Any ONNX classifier: its output row is the K logits.</summary>
internal sealed class OnnxClassifierRunner : TeacherRunner
{
    public OnnxClassifierRunner(OnnxTeacherSession session, string inputName, string outputName, int? expectedClasses)
        : base(session, inputName, outputName, "ModelOutputName")
    {
        // [batch, K], or [batch, K, 1, ...]: K is the product of the dims after the batch.
        var dims = session.Outputs[outputName].Dimensions;
        int last = dims.Length >= 2 && dims[1..].All(d => d > 0) ? dims[1..].Aggregate(1, (a, b) => a * b) : -1;
        if (dims.Length < 2 || dims[1..].Count(d => d != 1) > 1)
            throw new ArgumentOutOfRangeException("ModelOutputName", $"Teacher model '{session.Path}' output '{outputName}' has shape [{string.Join(", ", dims)}]; expected [batch, K] logits.");
        if (last < 0 && expectedClasses is null)
            throw new ArgumentOutOfRangeException("ClassNames", $"Teacher model '{session.Path}' output '{outputName}' has a symbolic class dimension; set ClassNames so K is known.");
        if (last > 0 && expectedClasses is int k && k != last)
            throw new ArgumentOutOfRangeException("ClassNames", $"Teacher model '{session.Path}' output '{outputName}' gives {last} values per row but {k} class names were given.");
        ClassCount = last > 0 ? last : expectedClasses!.Value;
    }

    public override int ClassCount { get; }

    public override void Run(Memory<float> inputs, int rows, int[] rowShape, Span<float> logits)
    {
        var shape = Session.Run(InputName, inputs[..(rows * rowShape.Aggregate(1, (a, b) => a * b))], Shape(rows, rowShape), OutputName, logits);
        long perRow = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        if (perRow != ClassCount)
            throw new InvalidOperationException($"Teacher model '{Session.Path}' output '{OutputName}' gave {perRow} values per row; expected {ClassCount} (one per class name).");
    }
}

/// <summary>
/// CLIP-style zero-shot teacher: logits = logit_scale * cos(image embedding, class text embedding).
/// The class embeddings are L2-normalised once; each batch's image embeddings are normalised per row.
/// </summary>
internal sealed class ZeroShotRunner : TeacherRunner
{
    private readonly float[] _classEmbeddings; // [K, E], unit rows
    private readonly int _embeddingSize;
    private readonly float _logitScale;
    private float[] _imageEmbeddings = [];

    public ZeroShotRunner(OnnxTeacherSession session, string inputName, string outputName, float[,] classEmbeddings, float logitScale)
        : base(session, inputName, outputName, "ImageEncoderOutputName")
    {
        int k = classEmbeddings.GetLength(0), e = classEmbeddings.GetLength(1);
        var dims = session.Outputs[outputName].Dimensions;
        if (dims.Length != 2 || (dims[1] > 0 && dims[1] != e))
            throw new ArgumentOutOfRangeException("ImageEncoderOutputName", $"Image encoder '{session.Path}' output '{outputName}' has shape [{string.Join(", ", dims)}]; expected [batch, {e}] to match the class text embeddings.");
        _classEmbeddings = ClassEmbeddings.NormalizeRows(classEmbeddings);
        _embeddingSize = e;
        _logitScale = logitScale;
        ClassCount = k;
    }

    public override int ClassCount { get; }
    public float LogitScale => _logitScale;
    public override int EmbeddingSize => _embeddingSize;

    public override void CopyEmbeddings(int rows, Span<float> destination)
    {
        int e = _embeddingSize;
        for (int r = 0; r < rows; r++)
        {
            var image = _imageEmbeddings.AsSpan(r * e, e);
            double norm = 0;
            foreach (float v in image) norm += (double)v * v;
            float inv = norm > 0 ? (float)(1 / Math.Sqrt(norm)) : 0f;
            var target = destination.Slice(r * e, e);
            for (int j = 0; j < e; j++) target[j] = image[j] * inv;
        }
    }

    public override void Run(Memory<float> inputs, int rows, int[] rowShape, Span<float> logits)
    {
        int e = _embeddingSize, k = ClassCount;
        if (_imageEmbeddings.Length < rows * e) _imageEmbeddings = new float[rows * e];
        var shape = Session.Run(InputName, inputs[..(rows * rowShape.Aggregate(1, (a, b) => a * b))], Shape(rows, rowShape), OutputName, _imageEmbeddings);
        if (shape.Length != 2 || shape[1] != e)
            throw new InvalidOperationException($"Image encoder '{Session.Path}' returned [{string.Join(", ", shape)}]; expected [{rows}, {e}].");
        for (int r = 0; r < rows; r++)
        {
            var image = _imageEmbeddings.AsSpan(r * e, e);
            double norm = 0;
            foreach (float v in image) norm += (double)v * v;
            float inv = norm > 0 ? (float)(1 / Math.Sqrt(norm)) : 0f;
            for (int c = 0; c < k; c++)
            {
                var text = _classEmbeddings.AsSpan(c * e, e);
                double dot = 0;
                for (int j = 0; j < e; j++) dot += image[j] * text[j];
                logits[r * k + c] = (float)(_logitScale * dot * inv);
            }
        }
    }

    public override byte[][] FingerprintParts()
    {
        var embeddings = new byte[_classEmbeddings.Length * 4];
        Buffer.BlockCopy(_classEmbeddings, 0, embeddings, 0, embeddings.Length);
        return [.. base.FingerprintParts(), embeddings, BitConverter.GetBytes(_logitScale)];
    }
}
