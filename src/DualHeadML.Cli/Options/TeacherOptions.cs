using Microsoft.ML.DualHeadDistillation.Teachers;
using static DualHeadML.Cli.Options.ValueParsers;

namespace DualHeadML.Cli.Options;

/// <summary>The teacher options, shared by train and label: one entry each (flag, setting, help, default from TeacherSpec).</summary>
public static class TeacherOptions
{
    private static readonly TeacherSpec Default = new();

    private static SpecOption<TeacherSpec, T> O<T>(string flag, string path, string help, Func<TeacherSpec, T, TeacherSpec> set, Func<T>? defaultValue = null,
        string? helpName = null, Func<System.CommandLine.Parsing.ArgumentResult, T?>? parse = null, string[]? only = null) =>
        new(flag, path is "" ? null : $"Teacher.{path}", help, set, defaultValue, helpName, parse, only: only);

    public static SpecOptionTable<TeacherSpec> Create() =>
    [
        O<string?>("--teacher", nameof(TeacherSpec.OnnxPath), "The teacher: an ONNX classifier (one image input, [N, K] logits).", (t, v) => t with { OnnxPath = Full(v) }, helpName: "MODEL.onnx"),
        O<string?>("--teacher-classes", nameof(TeacherSpec.ClassesFile), "The teacher's class names, one per line in output order (default: its metadata).", (t, v) => t with { ClassesFile = Full(v) }, helpName: "FILE"),
        O<string?>("--teacher-output", nameof(TeacherSpec.OnnxOutput), "The teacher output to read (default: its only output).", (t, v) => t with { OnnxOutput = v }, helpName: "NAME"),
        O<bool>("--teacher-probabilities", nameof(TeacherSpec.Probabilities), "The teacher outputs probabilities (e.g. a softmax), not logits.", (t, v) => t with { Probabilities = v }),
        O<int?>("--teacher-size", nameof(TeacherSpec.InputSize), "For a teacher without preprocessing metadata: resize the shorter side to N and center-crop N x N.", (t, v) => t with { InputSize = v }, helpName: "N"),
        O("--teacher-normalize", nameof(TeacherSpec.Normalize), "Mean/std of a teacher without preprocessing metadata: none, imagenet, clip.", (t, v) => t with { Normalize = v }, () => Default.Normalize, only: ["none", "imagenet", "clip"]),
        O<string?>("--clip-image", nameof(TeacherSpec.ClipImage), "CLIP zero-shot teacher: the image encoder ONNX.", (t, v) => t with { ClipImage = Full(v) }, helpName: "FILE"),
        O<string?>("--clip-text", nameof(TeacherSpec.ClipText), "CLIP: the text encoder ONNX.", (t, v) => t with { ClipText = Full(v) }, helpName: "FILE"),
        O<string?>("--clip-vocab", nameof(TeacherSpec.ClipVocab), "CLIP: vocab.json.", (t, v) => t with { ClipVocab = Full(v) }, helpName: "FILE"),
        O<string?>("--clip-merges", nameof(TeacherSpec.ClipMerges), "CLIP: merges.txt.", (t, v) => t with { ClipMerges = Full(v) }, helpName: "FILE"),
        O<string?>("--clip-templates", nameof(TeacherSpec.ClipTemplatesFile), "CLIP: prompt templates, one per line with {} for the class (default: \"a photo of a {}.\").", (t, v) => t with { ClipTemplatesFile = Full(v) }, helpName: "FILE"),
        O<string?>("--class-prompts", nameof(TeacherSpec.ClassPromptsFile), "CLIP: folder=text lines naming classes in the prompts (default: folder names with _ and - as spaces).", (t, v) => t with { ClassPromptsFile = Full(v) }, helpName: "FILE"),
        O("--teacher-batch", nameof(TeacherSpec.BatchSize), "Images per teacher call.", (t, v) => t with { BatchSize = v }, () => Default.BatchSize),
        O<int?>("--teacher-threads", nameof(TeacherSpec.Threads), "ONNX Runtime threads for the teacher (default: one per core; 1 per process when several label shards share a machine).", (t, v) => t with { Threads = v }, helpName: "N"),
        O("--teacher-device", nameof(TeacherSpec.Device), "cpu, or cuda (ONNX Runtime's CUDA provider; the GPU image of the tool).", (t, v) => t with { Device = v }, () => Default.Device, only: ["cpu", "cuda"]),
    ];
}
