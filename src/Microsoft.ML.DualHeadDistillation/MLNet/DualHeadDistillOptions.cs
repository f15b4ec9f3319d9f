using System.Text.Json.Serialization;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Teachers;
namespace Microsoft.ML.DualHeadDistillation;

/// <summary>Where the student trains and runs.</summary>
public enum DualHeadDevice
{
    /// <summary>CUDA when <see cref="MLContext.GpuDeviceId"/> is set and CUDA is available, otherwise the CPU.</summary>
    Auto,
    /// <summary>Always the CPU.</summary>
    Cpu,
    /// <summary>CUDA; when it is unavailable, the CPU if <see cref="DualHeadDistillOptions.FallbackToCpu"/> allows it, otherwise an error.</summary>
    Cuda,
}

/// <summary>The arithmetic of the student's training steps.</summary>
public enum DualHeadPrecision
{
    /// <summary>float32 throughout.</summary>
    Float32,
    /// <summary>
    /// Mixed precision: convolutions and Linear layers compute in bfloat16 while the weights the optimizer
    /// updates (and AdamW's moments), BatchNorm, the input standardisation and the loss stay float32; the
    /// trained, saved and exported student is float32. Faster only on CPUs with native bfloat16 arithmetic
    /// (AVX512-BF16 or AMX); elsewhere libtorch emulates it and training is slower (Fit warns).
    /// </summary>
    BFloat16,
    /// <summary>
    /// The default: <see cref="BFloat16"/> on CUDA and on a CPU with native bfloat16 arithmetic (avx512_bf16 or amx_bf16,
    /// oneDNN not capped below it by ONEDNN_MAX_CPU_ISA), <see cref="Float32"/> elsewhere. Fit logs the choice and its
    /// reason; the training report (<see cref="DualHeadTrainingReport.Precision"/>, <see cref="DualHeadTrainingReport.PrecisionReason"/>)
    /// and the checkpoint keep them, and a resumed run keeps its checkpoint's precision.
    /// </summary>
    Auto,
}

/// <summary>What the teacher column holds.</summary>
public enum TeacherOutputKind
{
    /// <summary>Unnormalised logits (any real numbers).</summary>
    Logits,
    /// <summary>Class probabilities in [0, 1] (for example the Score of an ML.NET model exported to ONNX); their logarithm is used as logits.</summary>
    Probabilities,
}

/// <summary>Options of the Dual-Head Optimization trainer. Every default comes from <see cref="DualHeadDefaults"/>.</summary>
public sealed class DualHeadDistillOptions
{
    /// <summary>Key-typed label column; key 0 (missing) marks an unlabeled row.</summary>
    public string LabelColumnName { get; set; } = DualHeadDefaults.LabelColumnName;
    /// <summary>Known-size float vector: a feature vector (MLP) or flattened pixels (CNN).</summary>
    public string FeatureColumnName { get; set; } = DualHeadDefaults.FeatureColumnName;
    /// <summary>Known-size float vector of K teacher outputs per row. Slot names, when present, are matched to the label's key values.</summary>
    public string TeacherColumnName { get; set; } = DualHeadDefaults.TeacherColumnName;
    /// <summary>Whether the teacher column holds logits or probabilities.</summary>
    public TeacherOutputKind TeacherOutput { get; set; } = TeacherOutputKind.Logits;

    /// <summary>The training objective: DHO (default), one of the single-head baselines, or any objective registered in <see cref="DualHeadRegistry.Objectives"/>.</summary>
    public DualHeadTrainingMode Objective { get; set; } = DualHeadTrainingMode.DualHead;
    /// <summary>The earlier name of <see cref="Objective"/>.</summary>
    [Obsolete("Use Objective (the training objective, as in DualHeadRegistry.Objectives and the CLI's --objective).")]
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public DualHeadTrainingMode Mode { get => Objective; set => Objective = value; }
    /// <summary>Settings of the objective, for registered objectives that read any.</summary>
    public Dictionary<string, string>? ObjectiveSettings { get; set; }

    /// <summary>The student backbone: <see cref="DualHeadBackbone.SmallCnn"/> (default), <see cref="DualHeadBackbone.Mlp"/>, or any backbone registered in <see cref="DualHeadRegistry.Backbones"/>.</summary>
    public DualHeadBackbone Backbone { get; set; } = DualHeadBackbone.SmallCnn;
    /// <summary>Settings of the backbone (keyword arguments), for registered backbones that read any.</summary>
    public Dictionary<string, string>? BackboneSettings { get; set; }
    /// <summary>
    /// Pretrained weights for the backbone: a PyTorch state dict (a <c>torch.save</c> .pt / .pth file or a .safetensors
    /// file) whose keys are the backbone's parameter names (torchvision's for the TorchVision backbones; their classifier
    /// keys are ignored). Loaded all or nothing after the seeded initialisation (the heads stay seeded); a file that does
    /// not fit fails the Fit naming its missing, unexpected and mis-shaped keys. With <see cref="InputNormalization"/>
    /// Standardize the student then standardises with the weights' own mean/std (ImageNet's for torchvision weights).
    /// Null (default): the backbone starts from the seed.
    /// </summary>
    public string? BackboneWeights { get; set; }
    /// <summary>The backbone's learning rate as a multiple of <see cref="LearningRate"/>, in (0, 1e3] (default 1); below 1 keeps pretrained features closer to where they started. The heads always use LearningRate.</summary>
    public float BackboneLearningRateScale { get; set; } = 1f;
    /// <summary>Epochs at the start during which the backbone's parameters are frozen and only the heads learn (default 0); the backbone then trains for the rest.</summary>
    public int FreezeBackboneEpochs { get; set; }
    /// <summary>True: BatchNorm layers keep their running statistics during training (as in inference), as is usual when fine-tuning pretrained weights on small batches; their scale and shift still learn. Default false.</summary>
    public bool FreezeBatchNormStatistics { get; set; }
    /// <summary>
    /// The backbone's first stages that stay as loaded for the whole run (for pretrained students): "stem" and "layer1" ..
    /// "layer4" for ResNet (2 freezes the stem and layer1), the children of <c>features</c> for MobileNet. No backward runs
    /// through them, their parameters do not change and their BatchNorm layers keep their running statistics (Precise
    /// BatchNorm leaves them alone). When a row's input is the same every epoch (no augmentation, or TeacherView
    /// CachedViews) their outputs are computed once and cached (<see cref="CacheFrozenStageOutputs"/>). Default 0: none.
    /// TorchVision backbones only; part of the run's spec.
    /// </summary>
    public int FrozenStages { get; set; }
    /// <summary>
    /// True (default): with <see cref="FrozenStages"/> and rows whose input repeats from epoch to epoch, the frozen stages'
    /// outputs (float32) are written once to a memory-mapped file in the temporary folder (the image store's folder for
    /// stored images) and read back in later epochs instead of running those stages again; the file is deleted after Fit.
    /// False: the frozen stages run at every step.
    /// </summary>
    public bool CacheFrozenStageOutputs { get; set; } = true;
    /// <summary>
    /// Input standardisation inside the student (and its ONNX graph): <see cref="DualHeadInputNormalization.Standardize"/>
    /// (default: the backbone's pretrained mean/std, else per-channel statistics of the training rows) or
    /// <see cref="DualHeadInputNormalization.None"/>.
    /// </summary>
    public DualHeadInputNormalization InputNormalization { get; set; } = DualHeadInputNormalization.Standardize;
    /// <summary>[C, H, W] of the flattened pixels in the feature column (CNN only). When null, a square single-channel image is assumed if the vector length is a perfect square.</summary>
    public int[]? ImageShape { get; set; }
    /// <summary>Width of the shared representation z (the heads' input).</summary>
    public int EmbeddingSize { get; set; } = DualHeadDefaults.EmbeddingSize;
    /// <summary>The earlier name of <see cref="EmbeddingSize"/>.</summary>
    [Obsolete("Use EmbeddingSize (z's width, BackboneSpec.EmbeddingSize).")]
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public int HiddenSize { get => EmbeddingSize; set => EmbeddingSize = value; }
    /// <summary>Hidden layer widths before z, MLP only. Null means one layer of 2*EmbeddingSize.</summary>
    public int[]? MlpHiddenLayers { get; set; }

    /// <summary>lambda in L = lambda*CE + (1-lambda)*KD, in [0, 1]. 1 trains from the labels only.</summary>
    public float Lambda { get; set; } = DualHeadDefaults.Lambda;
    /// <summary>Distillation temperature T &gt; 0.</summary>
    public float Temperature { get; set; } = DualHeadDefaults.Temperature;
    /// <summary>Inference weight of the CE head, in [0, 1]; can be changed on the fitted model.</summary>
    public float Alpha { get; set; } = DualHeadDefaults.Alpha;
    /// <summary>Inference temperature of the KD head, &gt; 0; can be changed on the fitted model.</summary>
    public float Beta { get; set; } = DualHeadDefaults.Beta;

    /// <summary>Passes over the unlabeled rows (over the labeled rows when there are none).</summary>
    public int NumberOfEpochs { get; set; } = DualHeadDefaults.Epochs;
    /// <summary>Labeled rows per step (cycled).</summary>
    public int LabeledBatchSize { get; set; } = DualHeadDefaults.LabeledBatchSize;
    /// <summary>Unlabeled rows per step.</summary>
    public int UnlabeledBatchSize { get; set; } = DualHeadDefaults.UnlabeledBatchSize;
    /// <summary>Where each step's rows come from: "Paired" (default) or a source registered in <see cref="DualHeadRegistry.BatchSources"/>.</summary>
    public string BatchSource { get; set; } = DualHeadDefaults.BatchSource;
    /// <summary>Settings of the batch source, for registered sources that read any.</summary>
    public Dictionary<string, string>? BatchSourceSettings { get; set; }
    /// <summary>AdamW peak learning rate.</summary>
    public float LearningRate { get; set; } = DualHeadDefaults.LearningRate;
    /// <summary>AdamW decoupled weight decay.</summary>
    public float WeightDecay { get; set; } = DualHeadDefaults.WeightDecay;
    /// <summary>Linear warm-up steps before the cosine decay.</summary>
    public int WarmupSteps { get; set; } = DualHeadDefaults.WarmupSteps;
    /// <summary>
    /// The training steps' arithmetic: <see cref="DualHeadPrecision.Auto"/> (default: bfloat16 where the hardware does it
    /// natively, float32 elsewhere), <see cref="DualHeadPrecision.Float32"/> (bit-for-bit repeatable) or
    /// <see cref="DualHeadPrecision.BFloat16"/> (bfloat16 compute over float32 master weights). The resolved precision is
    /// part of the run's spec: a checkpoint resumes only with the same precision (Auto adopts the checkpoint's).
    /// </summary>
    public DualHeadPrecision Precision { get; set; } = DualHeadDefaults.Precision;

    /// <summary>
    /// Precise BatchNorm: after every epoch (and so after training) the running statistics of the student's BatchNorm layers
    /// are recomputed as the average over this many batches (of LabeledBatchSize + UnlabeledBatchSize un-augmented training
    /// rows), weights unchanged, so eval mode normalises as the trained weights need (default 32; 0 keeps the momentum
    /// statistics). Skipped for backbones without BatchNorm, under FreezeBatchNormStatistics and while the backbone is frozen.
    /// </summary>
    public int PreciseBatchNormBatches { get; set; } = DualHeadDefaults.PreciseBatchNormBatches;

    /// <summary>
    /// A resolution schedule (progressive resizing): image heights visited in order, each for an equal share of the
    /// training steps, the last the full height of ImageShape; during a share the images are resized (bilinear,
    /// antialiased) to that height before the backbone, so early steps cost less. <c>[48, 48, 48, 64]</c>: three quarters of
    /// the steps at 48x48, the rest at 64x64. For backbones that pool globally (TorchVision, OnnxCnn with
    /// GlobalAveragePool). Null (default): every step at the full size. Part of the run's spec.
    /// </summary>
    public int[]? ResolutionSchedule { get; set; }

    /// <summary>
    /// Early stopping (needs validation data): training stops when this many epochs in a row have not raised the validation
    /// accuracy, and the student ends as it was after its best epoch (weights and BatchNorm statistics). Default 0: off,
    /// every epoch trains and the last one is kept. The learning-rate schedule still spans NumberOfEpochs.
    /// </summary>
    public int EarlyStoppingPatience { get; set; }

    /// <summary>
    /// True (default): for students with convolutions, the training steps run on a copy of the student whose convolution
    /// weights are laid out channels-last (NHWC), which libtorch's oneDNN kernels run faster (measured 0.86x the step of
    /// ResNet-18, 0.51x MobileNetV3 small; docs/performance.md); the student that is saved, scored and exported is the
    /// usual one. False: the steps run on the student itself. The numbers differ only by floating-point rounding.
    /// </summary>
    public bool ChannelsLast { get; set; } = true;

    /// <summary>
    /// A wall-clock budget for Fit (from its start: reading rows, building the image store and the teacher pass count):
    /// Fit times a few steps of this run's recipe on a throwaway student (precision, channels-last, frozen stages and their
    /// cache, resolution schedule, data workers) and sets the number of epochs to what fits, in place of NumberOfEpochs; the
    /// run is then the run with that many epochs (the learning-rate and resolution schedules span it). An epoch that would
    /// end after the budget at the pace measured so far is not started. With EarlyStoppingPatience a plateau ends it sooner.
    /// The plan is logged and in <see cref="DualHeadTrainingReport.TimeBudgetPlan"/>; a resumed run keeps the checkpoint's
    /// epochs. Null (default): NumberOfEpochs.
    /// </summary>
    public TimeSpan? TimeBudget { get; set; }

    /// <summary>Seed of weights and shuffling. Null takes one from the MLContext's seed.</summary>
    public int? Seed { get; set; }
    /// <summary>Device choice.</summary>
    public DualHeadDevice Device { get; set; } = DualHeadDevice.Auto;
    /// <summary>With <see cref="DualHeadDevice.Cuda"/>: use the CPU when CUDA is unavailable. Null follows <see cref="MLContext.FallbackToCpu"/>.</summary>
    public bool? FallbackToCpu { get; set; }

    /// <summary>Optional validation data (feature and label columns, label of the same key type); its accuracy is reported every epoch.</summary>
    [JsonIgnore]
    public IDataView? ValidationData { get; set; }
    /// <summary>With validation data and two heads: pick alpha and beta on the validation rows after training.</summary>
    public bool AutoAlphaBeta { get; set; } = true;
    /// <summary>
    /// Paired standard errors by which the alpha/beta grid's best point must beat the reference pair on the validation
    /// rows to be kept (default 2): the reference is alpha and beta as configured; with fewer than 20 validation rows a
    /// class, a single head (the CE head when the teacher scores below it). 0 keeps the grid's best whenever it is better at all (the search of earlier versions).
    /// </summary>
    public float AlphaBetaNoiseMargin { get; set; } = DualHeadDefaults.AlphaBetaNoiseMargin;
    /// <summary>Alpha values searched (default 0, 0.05, ..., 1).</summary>
    public float[] AlphaGrid { get; set; } = DualHeadDefaults.AlphaGrid;
    /// <summary>Beta values searched (default 0.5, 0.75, 1, 1.25, 1.5, 2, 4).</summary>
    public float[] BetaGrid { get; set; } = DualHeadDefaults.BetaGrid;
    /// <summary>Measure, once per epoch, the cosine between the CE and KD gradients on the shared backbone (and, with one head, on the head).</summary>
    public bool GradientConflictDiagnostic { get; set; }

    /// <summary>Receives one report per epoch.</summary>
    [JsonIgnore]
    public IProgress<DualHeadEpochReport>? Progress { get; set; }
    /// <summary>Receives one report per training step (losses, learning rate, position in the schedule), for live progress displays. Null (default): none.</summary>
    [JsonIgnore]
    public IProgress<DualHeadStepReport>? StepProgress { get; set; }
    /// <summary>Stops training within one batch; Fit then throws <see cref="OperationCanceledException"/>.</summary>
    [JsonIgnore]
    public CancellationToken CancellationToken { get; set; }
    /// <summary>Rows per ONNX Runtime call when the fitted model scores data.</summary>
    public int ScoringBatchSize { get; set; } = DualHeadDefaults.ScoringBatchSize;

    /// <summary>
    /// How images became the feature column (resize, crop, pixel scale, mean/std, channel order); not applied by
    /// the trainer, but recorded in the exported ONNX model's metadata so deployment code can reproduce it.
    /// </summary>
    public TeacherPreprocessing? InputPreprocessing { get; set; }

    /// <summary>
    /// Image feature columns only: the side S of the square each image is stored as (shorter side resized to S,
    /// center-cropped). Null: 8/7 of ImageShape's larger side (224 gives 256). Training crops come from this square;
    /// inference uses its center crop.
    /// </summary>
    public int? ImageStorageSize { get; set; }

    /// <summary>
    /// Image feature columns only: the per-sample training augmentation. Default: the DHO reference's
    /// RandomResizedCrop(0.5-1, ratio 3/4-4/3) + horizontal flip; <see cref="ImageAugmentation.None"/> trains on center crops.
    /// </summary>
    public ImageAugmentation Augmentation { get; set; } = ImageAugmentation.Default;

    /// <summary>
    /// Image feature columns only: a folder for the disk-backed sample store. Null: a temporary folder, deleted
    /// when Fit ends. Set, the store is kept there and reused by later Fits on the same rows and settings
    /// (matched by a fingerprint); a damaged or stale one is rebuilt with a warning.
    /// </summary>
    public string? ImageStoreFolder { get; set; }

    /// <summary>
    /// Image feature columns only: what the teacher sees (<see cref="DualHeadTeacherView"/>). <c>Cached</c> works with an
    /// upstream teacher column or with <see cref="Teacher"/>; <c>SameCropOnline</c> and <c>CachedViews</c> need <see cref="Teacher"/>.
    /// </summary>
    public DualHeadTeacherView TeacherView { get; set; } = DualHeadTeacherView.Cached;

    /// <summary>V for <see cref="DualHeadTeacherView.CachedViews"/>: augmented views per image labelled by the teacher (default 4).</summary>
    public int TeacherViews { get; set; } = 4;

    /// <summary>
    /// A teacher for the trainer to run itself (from <c>mlContext.Transforms.TeacherSoftLabels(...)</c> or <c>ZeroShotTeacher(...)</c>,
    /// fitted; its input column must be the image feature column). Null: the teacher logits come from
    /// <see cref="TeacherColumnName"/>. The trainer does not dispose it.
    /// </summary>
    public TeacherSoftLabelsTransformer? Teacher { get; set; }

    /// <summary>Background workers that assemble each batch of stored images (read, augment); null: one per processor. Results do not depend on it.</summary>
    public int? DataWorkers { get; set; }

    /// <summary>
    /// When set, a training checkpoint (weights, optimizer state, options, class names, report) is written to this
    /// file after every epoch, replacing the previous one atomically. Resume with
    /// <see cref="DualHeadDistillTrainer.Fit(IDataView, DualHeadCheckpoint)"/>.
    /// </summary>
    public string? CheckpointPath { get; set; }

    internal DualHeadDistillOptions Clone()
    {
        var copy = (DualHeadDistillOptions)MemberwiseClone();
        copy.AlphaGrid = (float[])AlphaGrid.Clone();
        copy.BetaGrid = (float[])BetaGrid.Clone();
        copy.ImageShape = (int[]?)ImageShape?.Clone();
        copy.MlpHiddenLayers = (int[]?)MlpHiddenLayers?.Clone();
        copy.ResolutionSchedule = (int[]?)ResolutionSchedule?.Clone();
        copy.BackboneSettings = BackboneSettings is null ? null : new(BackboneSettings);
        copy.ObjectiveSettings = ObjectiveSettings is null ? null : new(ObjectiveSettings);
        copy.BatchSourceSettings = BatchSourceSettings is null ? null : new(BatchSourceSettings);
        return copy;
    }

    /// <summary>Checks every value and throws a standard exception that names the option.</summary>
    internal void Validate()
    {
        static void NonEmpty(string? v, string name)
        {
            if (string.IsNullOrWhiteSpace(v)) throw new ArgumentException($"{name} must name a column.", name);
        }
        NonEmpty(LabelColumnName, nameof(LabelColumnName));
        NonEmpty(FeatureColumnName, nameof(FeatureColumnName));
        NonEmpty(TeacherColumnName, nameof(TeacherColumnName));
        if (!(Lambda >= 0 && Lambda <= 1)) throw new ArgumentOutOfRangeException(nameof(Lambda), Lambda, "Lambda must be in [0, 1].");
        if (!(Temperature > 0) || !float.IsFinite(Temperature * Temperature)) throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be a number > 0 whose square (the KD term's T^2 factor) is finite.");
        if (!(Alpha >= 0 && Alpha <= 1)) throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "Alpha must be in [0, 1].");
        if (!(Beta > 0) || float.IsInfinity(Beta)) throw new ArgumentOutOfRangeException(nameof(Beta), Beta, "Beta must be a finite number > 0.");
        if (NumberOfEpochs < 1) throw new ArgumentOutOfRangeException(nameof(NumberOfEpochs), NumberOfEpochs, "NumberOfEpochs must be at least 1.");
        if (LabeledBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(LabeledBatchSize), LabeledBatchSize, "LabeledBatchSize must be at least 1.");
        if (UnlabeledBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(UnlabeledBatchSize), UnlabeledBatchSize, "UnlabeledBatchSize must be at least 1.");
        if (!(LearningRate > 0) || float.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be a finite number > 0.");
        if (!(WeightDecay >= 0) || float.IsInfinity(WeightDecay)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must be a finite number >= 0.");
        if (WarmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, "WarmupSteps must be >= 0.");
        if (EarlyStoppingPatience < 0) throw new ArgumentOutOfRangeException(nameof(EarlyStoppingPatience), EarlyStoppingPatience, "EarlyStoppingPatience must be 0 (off) or a number of epochs >= 1.");
        if (TimeBudget is { } budget && !(budget > TimeSpan.Zero)) throw new ArgumentOutOfRangeException(nameof(TimeBudget), budget, "TimeBudget must be a positive duration (or null for NumberOfEpochs).");
        if (PreciseBatchNormBatches < 0) throw new ArgumentOutOfRangeException(nameof(PreciseBatchNormBatches), PreciseBatchNormBatches, "PreciseBatchNormBatches must be 0 (off) or a number of batches >= 1.");
        if (!Enum.IsDefined(Precision)) throw new ArgumentOutOfRangeException(nameof(Precision), Precision, "Unknown precision; expected Auto, Float32 or BFloat16.");
        if (BackboneWeights is not null && string.IsNullOrWhiteSpace(BackboneWeights))
            throw new ArgumentException("BackboneWeights must be null or the path of a .pt, .pth or .safetensors file.", nameof(BackboneWeights));
        if (!(BackboneLearningRateScale > 0 && BackboneLearningRateScale <= 1e3f))
            throw new ArgumentOutOfRangeException(nameof(BackboneLearningRateScale), BackboneLearningRateScale, "BackboneLearningRateScale must be in (0, 1000].");
        if (FrozenStages < 0) throw new ArgumentOutOfRangeException(nameof(FrozenStages), FrozenStages, "FrozenStages must be 0 (none) or the number of the backbone's first stages to freeze.");
        if (FreezeBackboneEpochs < 0) throw new ArgumentOutOfRangeException(nameof(FreezeBackboneEpochs), FreezeBackboneEpochs, "FreezeBackboneEpochs must be >= 0.");
        if (EmbeddingSize < 1) throw new ArgumentOutOfRangeException(nameof(EmbeddingSize), EmbeddingSize, "EmbeddingSize must be at least 1.");
        if (ScoringBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), ScoringBatchSize, "ScoringBatchSize must be at least 1.");
        if (MlpHiddenLayers is { } layers && layers.Any(w => w < 1))
            throw new ArgumentOutOfRangeException(nameof(MlpHiddenLayers), "Every MLP hidden layer width must be at least 1.");
        if (ImageShape is { } shape && (shape.Length != 3 || shape.Any(d => d < 1)))
            throw new ArgumentException($"ImageShape must be [C, H, W] with positive sizes; got [{string.Join(", ", shape)}].", nameof(ImageShape));
        if (ImageStorageSize is < 1) throw new ArgumentOutOfRangeException(nameof(ImageStorageSize), ImageStorageSize, "ImageStorageSize must be at least 1 (or null for the default).");
        if (DataWorkers is < 1) throw new ArgumentOutOfRangeException(nameof(DataWorkers), DataWorkers, "DataWorkers must be at least 1 (or null for one per processor).");
        if (Augmentation is null) throw new ArgumentNullException(nameof(Augmentation), "Augmentation must be set; use ImageAugmentation.None to train without augmentation.");
        Augmentation.Validate(nameof(Augmentation));
        if (!Enum.IsDefined(TeacherView)) throw new ArgumentOutOfRangeException(nameof(TeacherView), TeacherView, "Unknown teacher view; expected Cached, SameCropOnline or CachedViews.");
        if (TeacherViews < 1) throw new ArgumentOutOfRangeException(nameof(TeacherViews), TeacherViews, "TeacherViews must be at least 1.");
        if (TeacherView != DualHeadTeacherView.Cached && Teacher is null)
            throw new ArgumentOutOfRangeException(nameof(Teacher), $"TeacherView {TeacherView} runs the teacher on augmented crops: set Teacher to a fitted teacher transform (mlContext.Transforms.TeacherSoftLabels(...).Fit(data)).");
        if (ImageStoreFolder is not null && string.IsNullOrWhiteSpace(ImageStoreFolder))
            throw new ArgumentException("ImageStoreFolder must be null or a folder path.", nameof(ImageStoreFolder));
        if (CheckpointPath is not null && string.IsNullOrWhiteSpace(CheckpointPath))
            throw new ArgumentException("CheckpointPath must be null or a file path.", nameof(CheckpointPath));
        if (string.IsNullOrWhiteSpace(Backbone.Name)) throw new ArgumentOutOfRangeException(nameof(Backbone), "Backbone must name a registered backbone (for example DualHeadBackbone.SmallCnn).");
        if (!Enum.IsDefined(Device)) throw new ArgumentOutOfRangeException(nameof(Device), Device, "Unknown device.");
        if (string.IsNullOrWhiteSpace(Objective.Name)) throw new ArgumentOutOfRangeException(nameof(Objective), "Objective must name a registered training objective (for example DualHeadTrainingMode.DualHead).");
        if (string.IsNullOrWhiteSpace(BatchSource)) throw new ArgumentOutOfRangeException(nameof(BatchSource), "BatchSource must name a registered batch source (for example \"Paired\").");
        if (!Enum.IsDefined(InputNormalization)) throw new ArgumentOutOfRangeException(nameof(InputNormalization), InputNormalization, "Unknown input normalization; expected Standardize or None.");
        if (AlphaGrid is null || AlphaGrid.Length == 0 || AlphaGrid.Any(a => !(a >= 0 && a <= 1)))
            throw new ArgumentOutOfRangeException(nameof(AlphaGrid), "AlphaGrid must hold at least one value, each in [0, 1].");
        if (BetaGrid is null || BetaGrid.Length == 0 || BetaGrid.Any(b => !(b > 0) || float.IsInfinity(b)))
            throw new ArgumentOutOfRangeException(nameof(BetaGrid), "BetaGrid must hold at least one value, each finite and > 0.");
        if (!(AlphaBetaNoiseMargin >= 0) || float.IsInfinity(AlphaBetaNoiseMargin))
            throw new ArgumentOutOfRangeException(nameof(AlphaBetaNoiseMargin), AlphaBetaNoiseMargin, "AlphaBetaNoiseMargin must be finite and >= 0 (standard errors; 0 keeps the grid's best).");
    }
}
