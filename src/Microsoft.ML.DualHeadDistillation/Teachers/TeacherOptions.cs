namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>Options shared by every teacher transform.</summary>
public abstract class TeacherOptionsBase
{
    /// <summary>The output column: a known-size vector of K teacher logits, with the class names as slot names.</summary>
    public string OutputColumnName { get; set; } = DualHeadDefaults.TeacherColumnName;
    /// <summary>The input column: an image (LoadImages) or a known-size float vector.</summary>
    public string InputColumnName { get; set; } = "Image";
    /// <summary>Class names in the teacher's output order. Null: taken from the model's metadata, if any.</summary>
    public IReadOnlyList<string>? ClassNames { get; set; }
    /// <summary>The teacher's own preprocessing. Null: from the model's metadata, else none (the input must already fit the model).</summary>
    public TeacherPreprocessing? Preprocessing { get; set; }
    /// <summary>Rows per ONNX Runtime call.</summary>
    public int BatchSize { get; set; } = 64;
    /// <summary>ONNX Runtime threads and execution provider.</summary>
    public TeacherRuntimeOptions Runtime { get; set; } = new();
    /// <summary>A folder for the on-disk soft-label cache; null disables it.</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>A copy (nested options and lists included), so later changes to the caller's object do not reach a built estimator.</summary>
    internal TeacherOptionsBase Clone()
    {
        var copy = (TeacherOptionsBase)MemberwiseClone();
        copy.ClassNames = ClassNames?.ToArray();
        copy.Preprocessing = Preprocessing?.Clone();
        copy.Runtime = Runtime is null ? null! : new TeacherRuntimeOptions
        {
            IntraOpThreads = Runtime.IntraOpThreads,
            InterOpThreads = Runtime.InterOpThreads,
            UseCuda = Runtime.UseCuda,
            GpuDeviceId = Runtime.GpuDeviceId,
            FallbackToCpu = Runtime.FallbackToCpu,
        };
        CloneMore(copy);
        return copy;
    }

    private protected virtual void CloneMore(TeacherOptionsBase copy) { }

    internal virtual void Validate()
    {
        if (string.IsNullOrWhiteSpace(OutputColumnName)) throw new ArgumentException("OutputColumnName must name a column.", nameof(OutputColumnName));
        if (string.IsNullOrWhiteSpace(InputColumnName)) throw new ArgumentException("InputColumnName must name a column.", nameof(InputColumnName));
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        if (Runtime is null) throw new ArgumentNullException(nameof(Runtime));
        if (Runtime.IntraOpThreads is < 0) throw new ArgumentOutOfRangeException(nameof(Runtime.IntraOpThreads), "IntraOpThreads must be >= 0 (null or 0: ONNX Runtime's default).");
        if (Runtime.InterOpThreads is < 0) throw new ArgumentOutOfRangeException(nameof(Runtime.InterOpThreads), "InterOpThreads must be >= 0 (null or 0: ONNX Runtime's default).");
        if (ClassNames is { } names && (names.Count == 0 || names.Any(string.IsNullOrWhiteSpace)))
            throw new ArgumentException("ClassNames must hold at least one non-empty name.", nameof(ClassNames));
        Preprocessing?.Validate();
    }
}

/// <summary>Options of <c>mlContext.Transforms.TeacherSoftLabels</c>: any ONNX classifier as a teacher.</summary>
public sealed class TeacherSoftLabelsOptions : TeacherOptionsBase
{
    /// <summary>Path of the teacher's ONNX file.</summary>
    public string ModelPath { get; set; } = "";
    /// <summary>The model input to feed; null: the only input.</summary>
    public string? ModelInputName { get; set; }
    /// <summary>The model output holding [batch, K] logits; null: the only output.</summary>
    public string? ModelOutputName { get; set; }
}

/// <summary>
/// Options of <c>mlContext.Transforms.ZeroShotTeacher</c>: a CLIP image encoder plus class text embeddings;
/// logits = <see cref="LogitScale"/> * cos(image embedding, class embedding). Give the class embeddings in
/// exactly one way: <see cref="ClassEmbeddings"/>, <see cref="ClassEmbeddingsPath"/>, or
/// <see cref="TextEncoderPath"/> with <see cref="VocabPath"/> and <see cref="MergesPath"/>.
/// </summary>
public sealed class ZeroShotTeacherOptions : TeacherOptionsBase
{
    private protected override void CloneMore(TeacherOptionsBase copy)
    {
        var c = (ZeroShotTeacherOptions)copy;
        c.ClassEmbeddings = (float[,]?)ClassEmbeddings?.Clone();
        c.PromptTemplates = PromptTemplates.ToArray();
        c.ClassPrompts = ClassPrompts?.ToArray();
    }

    /// <summary>The image encoder ONNX (pixel_values [N,3,H,W] -> image_embeds [N,E], or a single input and output).
    /// Preprocessing: the options', else the encoder's metadata, else CLIP's at the encoder's input size (224 if symbolic).</summary>
    public string ImageEncoderPath { get; set; } = "";
    public string? ImageEncoderInputName { get; set; }
    public string? ImageEncoderOutputName { get; set; }
    /// <summary>CLIP's learned temperature exp(t) = 100. Null: the image encoder's metadata, else 100.</summary>
    public float? LogitScale { get; set; }

    /// <summary>K x E class embeddings (row i for class i).</summary>
    public float[,]? ClassEmbeddings { get; set; }
    /// <summary>A text file with one embedding per line, in class order.</summary>
    public string? ClassEmbeddingsPath { get; set; }

    /// <summary>The text encoder ONNX (input_ids [, attention_mask] -> text_embeds).</summary>
    public string? TextEncoderPath { get; set; }
    public string? TextInputIdsName { get; set; }
    public string? TextAttentionMaskName { get; set; }
    public string? TextOutputName { get; set; }
    /// <summary>CLIP's vocab.json and merges.txt.</summary>
    public string? VocabPath { get; set; }
    public string? MergesPath { get; set; }
    /// <summary>Prompt templates with "{}" for the class name; several are ensembled (see <see cref="ClipPromptTemplates"/>).</summary>
    public IReadOnlyList<string> PromptTemplates { get; set; } = ClipPromptTemplates.Default;
    /// <summary>
    /// The text that fills "{}" in the templates, one per class in <see cref="TeacherOptionsBase.ClassNames"/> order (for example
    /// "golden retriever" for a class folder named golden_retriever). Null: the class names themselves. The output's
    /// slot names stay <see cref="TeacherOptionsBase.ClassNames"/>, so they still match the label's classes.
    /// </summary>
    public IReadOnlyList<string>? ClassPrompts { get; set; }
    /// <summary>Token context length (CLIP: 77); a text encoder with a fixed length overrides it.</summary>
    public int ContextLength { get; set; } = 77;
    /// <summary>
    /// A second output column for the L2-normalised image embedding ([E] floats), or null for none. With the embeddings
    /// kept (for example in a soft-label set, <c>dualhead label --embeddings</c>), class names or prompts can change later
    /// without running the image encoder again: logits = LogitScale * embedding · class embedding. The soft-label cache
    /// keeps logits only, so this cannot be combined with <see cref="TeacherOptionsBase.CacheDirectory"/>.
    /// </summary>
    public string? EmbeddingColumnName { get; set; }

    internal override void Validate()
    {
        base.Validate();
        if (ClassNames is null) throw new ArgumentException("ClassNames is required for a zero-shot teacher.", nameof(ClassNames));
        int ways = (ClassEmbeddings is null ? 0 : 1) + (ClassEmbeddingsPath is null ? 0 : 1) + (TextEncoderPath is null ? 0 : 1);
        if (ways != 1)
            throw new ArgumentException("Give the class embeddings in exactly one way: ClassEmbeddings, ClassEmbeddingsPath, or TextEncoderPath (with VocabPath and MergesPath).", nameof(ClassEmbeddings));
        if (TextEncoderPath is not null && (VocabPath is null || MergesPath is null))
            throw new ArgumentException("TextEncoderPath needs VocabPath and MergesPath (CLIP's vocab.json and merges.txt).", nameof(VocabPath));
        if (ClassEmbeddings is { } m && m.GetLength(0) != ClassNames.Count)
            throw new ArgumentOutOfRangeException(nameof(ClassEmbeddings), $"ClassEmbeddings has {m.GetLength(0)} rows but {ClassNames.Count} class names were given.");
        if (ClassPrompts is { } prompts && (prompts.Count != ClassNames.Count || prompts.Any(string.IsNullOrWhiteSpace)))
            throw new ArgumentException($"ClassPrompts must hold one non-empty text per class: {ClassNames.Count} class names, {prompts.Count} prompts.", nameof(ClassPrompts));
        if (LogitScale is { } s && !(s > 0 && float.IsFinite(s))) throw new ArgumentOutOfRangeException(nameof(LogitScale), s, "LogitScale must be a finite number > 0.");
        if (EmbeddingColumnName is { } embedding)
        {
            if (string.IsNullOrWhiteSpace(embedding) || embedding == OutputColumnName)
                throw new ArgumentException($"EmbeddingColumnName '{embedding}' must name a column other than OutputColumnName '{OutputColumnName}'.", nameof(EmbeddingColumnName));
            if (CacheDirectory is not null)
                throw new ArgumentException("EmbeddingColumnName cannot be combined with CacheDirectory: the soft-label cache keeps logits only. Leave one of them null.", nameof(EmbeddingColumnName));
        }
    }
}
