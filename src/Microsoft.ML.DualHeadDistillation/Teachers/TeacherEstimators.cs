using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.MLNet;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>Shared schema logic of the teacher estimators.</summary>
public abstract class TeacherEstimatorBase : IEstimator<TeacherSoftLabelsTransformer>
{
    private protected TeacherEstimatorBase(TeacherOptionsBase options, IHostEnvironment? env)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options.Clone();
        Env = env;
    }

    private protected TeacherOptionsBase Options { get; }
    /// <summary>The MLContext the transform logs to (set when created from a catalog).</summary>
    private protected IHostEnvironment? Env { get; }

    public abstract TeacherSoftLabelsTransformer Fit(IDataView input);

    /// <summary>Fits and checks the transformer against the input schema, disposing it if the schema does not fit.</summary>
    private protected static TeacherSoftLabelsTransformer Checked(TeacherSoftLabelsTransformer teacher, DataViewSchema schema)
    {
        try
        {
            teacher.GetOutputSchema(schema);
            return teacher;
        }
        catch
        {
            teacher.Dispose();
            throw;
        }
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        if (!SchemaShapes.TryFind(inputSchema, Options.InputColumnName, out var input))
            throw new ArgumentOutOfRangeException(nameof(Options.InputColumnName), $"Teacher input column '{Options.InputColumnName}' was not found in the input schema.");
        bool image = input.ItemType.RawType == typeof(MLImage) && input.Kind == SchemaShape.Column.VectorKind.Scalar;
        bool vector = input.ItemType == NumberDataViewType.Single && input.Kind == SchemaShape.Column.VectorKind.Vector;
        if (!image && !vector)
            throw new ArgumentOutOfRangeException(nameof(Options.InputColumnName), $"Teacher input column '{Options.InputColumnName}' is {input.Kind} of {input.ItemType}; expected an image or a known-size vector of Single.");
        var builder = new DataViewSchema.Builder();
        var annotations = new DataViewSchema.Annotations.Builder();
        annotations.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, 2), (ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(2, new ReadOnlyMemory<char>[2]));
        // A SchemaShape records kinds, not sizes: 2 is a placeholder for K.
        builder.AddColumn(Options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, 2), annotations.ToAnnotations());
        return new SchemaShape(inputSchema.Where(c => c.Name != Options.OutputColumnName).Concat(SchemaShapes.FromSchema(builder.ToSchema())));
    }

    private protected static (IReadOnlyList<string>? Names, TeacherPreprocessing? Preprocessing, TeacherMetadata Metadata) Resolve(TeacherOptionsBase options, OnnxTeacherSession session)
    {
        var metadata = TeacherMetadata.Read(session.CustomMetadata, session.Path);
        return (options.ClassNames ?? metadata.ClassNames, options.Preprocessing ?? metadata.Preprocessing, metadata);
    }
}

/// <summary>Runs any ONNX classifier as a teacher; created by <c>mlContext.Transforms.TeacherSoftLabels</c>.</summary>
public sealed class TeacherSoftLabelsEstimator : TeacherEstimatorBase
{
    private readonly TeacherSoftLabelsOptions _options;

    /// <summary>Without an MLContext: cache warnings are kept in <see cref="TeacherSoftLabelsTransformer.CacheWarnings"/> only.</summary>
    public TeacherSoftLabelsEstimator(TeacherSoftLabelsOptions options) : this(options, null) { }

    internal TeacherSoftLabelsEstimator(TeacherSoftLabelsOptions options, IHostEnvironment? env) : base(options, env) => _options = (TeacherSoftLabelsOptions)Options;

    public override TeacherSoftLabelsTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var session = OnnxTeacherSession.Open(_options.ModelPath, _options.Runtime, nameof(_options.ModelPath));
        try
        {
            var (names, preprocessing, _) = Resolve(_options, session);
            string inputName = OnnxTeacherSession.ResolveName(session.Inputs, _options.ModelInputName, [], "input", nameof(_options.ModelInputName), session.Path);
            string outputName = OnnxTeacherSession.ResolveName(session.Outputs, _options.ModelOutputName, [], "output", nameof(_options.ModelOutputName), session.Path);
            var runner = new OnnxClassifierRunner(session, inputName, outputName, names?.Count);
            return Checked(new TeacherSoftLabelsTransformer(runner, _options, names, preprocessing, Env), input.Schema);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }
}

/// <summary>A CLIP-style zero-shot teacher; created by <c>mlContext.Transforms.ZeroShotTeacher</c>.</summary>
public sealed class ZeroShotTeacherEstimator : TeacherEstimatorBase
{
    private readonly ZeroShotTeacherOptions _options;

    /// <summary>Without an MLContext: cache warnings are kept in <see cref="TeacherSoftLabelsTransformer.CacheWarnings"/> only.</summary>
    public ZeroShotTeacherEstimator(ZeroShotTeacherOptions options) : this(options, null) { }

    internal ZeroShotTeacherEstimator(ZeroShotTeacherOptions options, IHostEnvironment? env) : base(options, env) => _options = (ZeroShotTeacherOptions)Options;

    public override TeacherSoftLabelsTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        var embeddings = o.ClassEmbeddings
            ?? (o.ClassEmbeddingsPath is { } file ? ClassEmbeddings.Load(file, o.ClassNames!.Count) : EncodeClasses(o));
        var session = OnnxTeacherSession.Open(o.ImageEncoderPath, o.Runtime, nameof(o.ImageEncoderPath));
        try
        {
            var (names, preprocessing, metadata) = Resolve(o, session);
            string inputName = OnnxTeacherSession.ResolveName(session.Inputs, o.ImageEncoderInputName, ["pixel_values", "image", "input"], "input", nameof(o.ImageEncoderInputName), session.Path);
            var dims = session.Inputs[inputName].Dimensions;
            preprocessing ??= TeacherPreprocessing.Clip(dims.Length == 4 && dims[^1] > 0 ? dims[^1] : 224);
            string outputName = OnnxTeacherSession.ResolveName(session.Outputs, o.ImageEncoderOutputName, ["image_embeds", "image_features", "output"], "output", nameof(o.ImageEncoderOutputName), session.Path);
            var runner = new ZeroShotRunner(session, inputName, outputName, embeddings, o.LogitScale ?? metadata.LogitScale ?? 100f);
            return Checked(new TeacherSoftLabelsTransformer(runner, o, names, preprocessing, Env), input.Schema);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static float[,] EncodeClasses(ZeroShotTeacherOptions o)
    {
        var tokenizer = ClipTokenizer.FromFiles(o.VocabPath!, o.MergesPath!);
        using var encoder = new TextEncoder(o.TextEncoderPath!, tokenizer, o.ContextLength, o.TextInputIdsName, o.TextAttentionMaskName, o.TextOutputName, o.Runtime);
        return ClassEmbeddings.FromTextEncoder(encoder, o.ClassPrompts ?? o.ClassNames!, o.PromptTemplates);
    }
}
