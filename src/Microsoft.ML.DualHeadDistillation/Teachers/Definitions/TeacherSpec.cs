using System.Text.Json.Serialization;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Where a run's soft labels come from, as a caller gives it: the kind (a name in <see cref="DualHeadRegistry.Teachers"/>;
/// null: the one whose <see cref="TeacherDefinition.Accepts"/> takes these settings) and the settings of the built-in
/// kinds; a teacher of your own reads <see cref="Settings"/>. Immutable; saved with a run (run.json) so a resumed run
/// has the same teacher.
/// </summary>
public sealed record TeacherSpec
{
    /// <summary>The registered teacher kind (OnnxClassifier, ClipZeroShot, SoftLabelSet, or yours); null: inferred from the settings.</summary>
    public string? Kind { get; init; }
    /// <summary>OnnxClassifier: the ONNX model (one image input, [N, K] logits or probabilities).</summary>
    public string? OnnxPath { get; init; }
    /// <summary>OnnxClassifier: the output to read (default: its only output).</summary>
    public string? OnnxOutput { get; init; }
    /// <summary>OnnxClassifier: the class names, one per line in output order (default: the model's metadata).</summary>
    public string? ClassesFile { get; init; }
    /// <summary>The teacher outputs probabilities, not logits.</summary>
    public bool Probabilities { get; init; }
    /// <summary>Square input side for an ONNX teacher without preprocessing metadata (shorter side resized, center crop).</summary>
    public int? InputSize { get; init; }
    /// <summary>none, imagenet or clip: mean/std for an ONNX teacher without preprocessing metadata.</summary>
    public string Normalize { get; init; } = "none";
    /// <summary>ClipZeroShot: the image encoder ONNX.</summary>
    public string? ClipImage { get; init; }
    /// <summary>ClipZeroShot: the text encoder ONNX.</summary>
    public string? ClipText { get; init; }
    /// <summary>ClipZeroShot: vocab.json.</summary>
    public string? ClipVocab { get; init; }
    /// <summary>ClipZeroShot: merges.txt.</summary>
    public string? ClipMerges { get; init; }
    /// <summary>ClipZeroShot: prompt templates, one per line with {} for the class.</summary>
    public string? ClipTemplatesFile { get; init; }
    /// <summary>ClipZeroShot: folder=text lines naming classes in the prompts.</summary>
    public string? ClassPromptsFile { get; init; }
    /// <summary>SoftLabelSet: a merged soft-label set's folder (a labeling job's output).</summary>
    public string? SoftLabels { get; init; }
    /// <summary>SoftLabelSet: the folder the set's row ids are relative to (null: the common parent of the image folders).</summary>
    public string? SoftLabelsRoot { get; init; }
    /// <summary>Images per teacher call.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>ONNX Runtime intra-op threads of the teacher (null: one per core).</summary>
    public int? Threads { get; init; }
    /// <summary>cpu or cuda (ONNX Runtime's CUDA provider).</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>Settings of a teacher kind of your own.</summary>
    public IReadOnlyDictionary<string, string>? Settings { get; init; }

    /// <summary>True for a CLIP zero-shot teacher.</summary>
    [JsonIgnore] public bool IsClip => ClipImage is not null;
}
