using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.DualHeadDistillation.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// A training checkpoint, separate from the deployed form: the student's TorchSharp weights (with its input
/// standardisation), AdamW's state, the run's <see cref="TrainingSpec"/>, class names, alpha/beta, the report so
/// far and the position in the schedule. Written by
/// <see cref="DualHeadDistillTransformer.SaveCheckpoint"/> or after every epoch when
/// <see cref="DualHeadDistillOptions.CheckpointPath"/> is set; resumed with
/// <see cref="DualHeadDistillTrainer.Fit(IDataView, DualHeadCheckpoint)"/>; turned back into a model (to
/// re-tune alpha/beta, score or export) with <see cref="ToModel"/>.
/// </summary>
/// <remarks>
/// File format (a zip archive): <c>checkpoint.json</c> (format version, the training spec, columns, class names,
/// alpha, beta, scoring settings, seed, completed epochs and steps, report), <c>student.bin</c> (TorchSharp's
/// <c>Module.save</c> format), when present <c>optimizer.bin</c> (TorchSharp's optimizer state), and
/// <c>checksums.json</c> (format 2): the SHA-256 of every other entry, verified at load, so a damaged file is an
/// error naming it rather than a silently different model. Format 4 adds StepsIntoEpoch and the loss sums of those steps (a run stopped mid-epoch); format 3 stores the spec; formats 1 and 2 stored the
/// options, which are turned into a spec (without input standardisation, which they did not have) when read.
/// Weights that are not finite are refused on save and on load.
/// </remarks>
public sealed class DualHeadCheckpoint
{
    public const int FormatVersion = 4;
    private const string Kind = "DualHeadDistill checkpoint";
    private const string ManifestEntry = "checkpoint.json", StudentEntry = "student.bin", OptimizerEntry = "optimizer.bin", ChecksumsEntry = "checksums.json";

    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    private readonly byte[] _studentWeights;

    private DualHeadCheckpoint(TrainingSpec spec, string[] classNames, string labelColumn, string featureColumn, int featureSize,
        float alpha, float beta, ScoringSettings scoring, DualHeadTrainingReport? report, TrainingState state, byte[] studentWeights)
    {
        Spec = spec;
        ClassNames = classNames;
        LabelColumnName = labelColumn;
        FeatureColumnName = featureColumn;
        FeatureSize = featureSize;
        Scoring = scoring;
        Alpha = alpha;
        Beta = beta;
        Report = report;
        State = state;
        _studentWeights = studentWeights;
    }

    /// <summary>What the run is: student, objective, batches, optimizer. Resuming requires an equal spec.</summary>
    public TrainingSpec Spec { get; }
    /// <summary>Class names in key order.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    public string LabelColumnName { get; }
    public string FeatureColumnName { get; }
    /// <summary>D, values per feature row.</summary>
    public int FeatureSize { get; }
    public float Alpha { get; }
    public float Beta { get; }
    /// <summary>The training objective's name.</summary>
    public DualHeadTrainingMode Objective => Spec.Objective.Name;
    /// <summary>The earlier name of <see cref="Objective"/>.</summary>
    [Obsolete("Use Objective.")]
    public DualHeadTrainingMode Mode => Objective;
    internal ScoringSettings Scoring { get; }
    /// <summary>The seed of the run (resuming replays its batch order).</summary>
    public int Seed => State.Seed;
    public int CompletedEpochs => State.CompletedEpochs;
    public int CompletedSteps => State.CompletedSteps;
    /// <summary>Steps already taken in epoch <see cref="CompletedEpochs"/> + 1 when the run was stopped mid-epoch (Ctrl+C, a cancelled Fit); 0 at an epoch boundary.</summary>
    public int StepsIntoEpoch => State.StepsIntoEpoch;
    /// <summary>True when AdamW's state is included (resuming then continues the optimizer exactly).</summary>
    public bool HasOptimizerState => State.OptimizerState is not null;
    /// <summary>The training report up to this checkpoint.</summary>
    public DualHeadTrainingReport? Report { get; }
    internal TrainingState State { get; }

    internal static DualHeadCheckpoint From(DualHeadStudent student, TrainingSpec spec, TrainingColumns columns,
        float alpha, float beta, ScoringSettings scoring, DualHeadTrainingReport? report, TrainingState state)
    {
        NonFiniteGuard.EnsureFinite(student, "write a checkpoint");
        using var weights = new MemoryStream();
        student.save(weights);
        return new DualHeadCheckpoint(spec, columns.Label.ClassNames, columns.Label.ColumnName, columns.FeatureColumn, columns.FeatureSize, alpha, beta, scoring, report, state, weights.ToArray());
    }

    /// <summary>Writes the checkpoint to <paramref name="path"/> (whole or not at all).</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        AtomicFile.Write(path, Save);
    }

    /// <summary>Writes the checkpoint to a stream.</summary>
    public void Save(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        var manifest = new Manifest
        {
            Kind = Kind,
            FormatVersion = FormatVersion,
            Spec = Spec,
            ClassNames = [.. ClassNames],
            LabelColumnName = LabelColumnName,
            FeatureColumnName = FeatureColumnName,
            ScoringBatchSize = Scoring.BatchSize,
            InputPreprocessing = Scoring.InputPreprocessing,
            FeatureSize = FeatureSize,
            Alpha = Alpha,
            Beta = Beta,
            Seed = State.Seed,
            CompletedEpochs = State.CompletedEpochs,
            CompletedSteps = State.CompletedSteps,
            StepsIntoEpoch = State.StepsIntoEpoch,
            EpochSums = State.EpochSums,
            PlannedEpochs = State.PlannedEpochs,
            IntraOpThreads = Report?.IntraOpThreads ?? 0,
            Report = Report,
        };
        var checksums = new SortedDictionary<string, string>(StringComparer.Ordinal);
        void Write(string name, byte[] bytes, CompressionLevel level)
        {
            using (var entry = zip.CreateEntry(name, level).Open())
                entry.Write(bytes);
            checksums[name] = Sha256(bytes);
        }
        Write(ManifestEntry, JsonSerializer.SerializeToUtf8Bytes(manifest, s_json), CompressionLevel.Optimal);
        Write(StudentEntry, _studentWeights, CompressionLevel.NoCompression);
        if (State.OptimizerState is { } optimizer) Write(OptimizerEntry, optimizer, CompressionLevel.NoCompression);
        using (var entry = zip.CreateEntry(ChecksumsEntry).Open())
            JsonSerializer.Serialize(entry, checksums, s_json);
    }

    private static string Sha256(byte[] bytes) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes)).ToLowerInvariant();

    /// <summary>Reads a checkpoint; a missing, truncated or foreign file is an error naming it.</summary>
    public static DualHeadCheckpoint Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint file '{path}' was not found.", path);
        using var stream = File.OpenRead(path);
        return Load(stream, path);
    }

    /// <summary>Reads a checkpoint from a stream.</summary>
    public static DualHeadCheckpoint Load(Stream stream) => Load(stream, "the checkpoint stream");

    private static DualHeadCheckpoint Load(Stream stream, string source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Native.TorchSharpNative.EnsureLoadable(); // before anything initialises TorchSharp (Debian 12's libstdc++)
        InvalidDataException Bad(string what, Exception? inner = null) => new($"Checkpoint '{source}' {what}", inner);
        try
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
            byte[] manifestBytes = ReadEntry(zip, ManifestEntry) ?? throw Bad($"has no '{ManifestEntry}': it is not a DualHeadDistill checkpoint.");
            var manifest = JsonSerializer.Deserialize<Manifest>(manifestBytes, s_json) ?? throw Bad($"has an empty '{ManifestEntry}'.");
            if (manifest.Kind != Kind) throw Bad($"is not a DualHeadDistill checkpoint ('{ManifestEntry}' says '{manifest.Kind}').");
            if (manifest.FormatVersion is < 1 or > FormatVersion)
                throw Bad($"has format version {manifest.FormatVersion}; this library reads versions 1 to {FormatVersion}.");
            // Checked whenever present (not only when the manifest, itself unverified, says format 2); required from format 2 on.
            Dictionary<string, string>? checksums = null;
            byte[]? sums = ReadEntry(zip, ChecksumsEntry);
            if (sums is null && manifest.FormatVersion >= 2)
                throw Bad($"has no '{ChecksumsEntry}' (format {manifest.FormatVersion} files carry the SHA-256 of every entry).");
            if (sums is not null)
            {
                checksums = JsonSerializer.Deserialize<Dictionary<string, string>>(sums, s_json) ?? throw Bad($"has an empty '{ChecksumsEntry}'.");
                Check(ManifestEntry, manifestBytes);
            }
            void Check(string name, byte[]? bytes)
            {
                if (checksums is null) return;
                bool listed = checksums.TryGetValue(name, out var expected);
                if (bytes is null && !listed) return;
                if (bytes is null) throw Bad($"lacks entry '{name}' that its '{ChecksumsEntry}' lists.");
                if (!listed || !string.Equals(expected, Sha256(bytes), StringComparison.Ordinal))
                    throw Bad($"is damaged: the SHA-256 of entry '{name}' does not match '{ChecksumsEntry}' (the file changed after it was written).");
            }
            if (manifest.ClassNames is not { Length: >= 2 } || manifest.FeatureSize < 1 || string.IsNullOrEmpty(manifest.LabelColumnName)
                || (manifest.FormatVersion >= 3 ? manifest.Spec is null || string.IsNullOrEmpty(manifest.FeatureColumnName) : manifest.Options is null))
                throw Bad($"has an incomplete '{ManifestEntry}' (the spec (options before format 3), class names, label and feature columns and feature size are required).");
            TrainingSpec spec;
            string featureColumn;
            ScoringSettings scoring;
            if (manifest.FormatVersion >= 3)
            {
                spec = manifest.Spec!;
                featureColumn = manifest.FeatureColumnName!;
                scoring = new ScoringSettings(manifest.ScoringBatchSize > 0 ? manifest.ScoringBatchSize : DualHeadDefaults.ScoringBatchSize, manifest.InputPreprocessing);
            }
            else
            {
                // Formats 1 and 2 stored the options; their students had no input standardisation.
                var options = manifest.Options!;
                options.Validate();
                options.InputNormalization = DualHeadInputNormalization.None;
                spec = RunSpecs.Resolve(options, manifest.FeatureSize, manifest.ClassNames.Length).Spec;
                featureColumn = options.FeatureColumnName;
                scoring = ScoringSettings.From(options);
            }
            try
            {
                RunSpecs.Components(spec); // every component must be registered in this process
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw Bad($"names a component that is not registered here: {e.Message.Split(" (Parameter")[0]} Register it before loading the checkpoint.", e);
            }
            byte[] weights = ReadEntry(zip, StudentEntry) ?? throw Bad($"has no '{StudentEntry}' (the student's weights).");
            Check(StudentEntry, weights);
            byte[]? optimizer = ReadEntry(zip, OptimizerEntry);
            Check(OptimizerEntry, optimizer);
            if (manifest.StepsIntoEpoch < 0 || (manifest.StepsIntoEpoch > 0 && manifest.EpochSums is not { Length: 3 }))
                throw Bad($"has an inconsistent '{ManifestEntry}': StepsIntoEpoch {manifest.StepsIntoEpoch} needs the three loss sums of those steps.");
            var state = new TrainingState(manifest.Seed, manifest.CompletedEpochs, manifest.CompletedSteps, optimizer, manifest.StepsIntoEpoch, manifest.StepsIntoEpoch > 0 ? manifest.EpochSums : null) { PlannedEpochs = manifest.PlannedEpochs };
            var checkpoint = new DualHeadCheckpoint(spec, manifest.ClassNames, manifest.LabelColumnName, featureColumn, manifest.FeatureSize,
                manifest.Alpha, manifest.Beta, scoring, manifest.Report, state, weights);
            using (var student = checkpoint.CreateStudent(CPU, source)) // the weights must fit the architecture
            {
                if (NonFiniteGuard.FirstNonFiniteParameter(student) is { } bad)
                    throw Bad($"holds non-finite weights (parameter '{bad}' has NaN or infinity); it cannot be resumed or turned into a model.");
            }
            return checkpoint;
        }
        catch (Exception e) when (e is InvalidDataException or JsonException or IOException or ArgumentException or NotSupportedException)
        {
            if (e is InvalidDataException { Message: var m } && m.StartsWith("Checkpoint '", StringComparison.Ordinal)) throw;
            throw Bad($"could not be read: the file is truncated, corrupted or not a checkpoint ({e.Message}).", e);
        }
    }

    /// <summary>The model at this checkpoint (on the CPU), to score, export, re-tune alpha/beta or save.</summary>
    public DualHeadDistillTransformer ToModel()
    {
        var student = CreateStudent(CPU, "this checkpoint");
        var label = LabelInfo.FromClassNames(LabelColumnName, [.. ClassNames]);
        var columns = TrainingColumns.ForScoring(label, FeatureInput.FromSpec(Spec, FeatureColumnName, FeatureSize));
        var report = Report ?? new DualHeadTrainingReport(Objective, "", student.Description, "cpu", student.ParameterCount, 0, 0, State.CompletedSteps, 0, 0, 0, []);
        return new DualHeadDistillTransformer(new Inference.StudentHandle(student, Spec.Student, CPU), columns, Alpha, Beta, Spec, Scoring, report, State);
    }

    /// <summary>Rebuilds the student from the options and loads the saved weights.</summary>
    internal DualHeadStudent CreateStudent(Device device, string source)
    {
        var student = StudentFactory.Create(Spec.Student, seed: null, device: CPU);
        try
        {
            using var weights = new MemoryStream(_studentWeights, writable: false);
            student.load(weights);
        }
        catch (Exception e)
        {
            student.Dispose();
            throw new InvalidDataException($"Checkpoint '{source}': the saved weights do not fit the student {Spec.Student}, or they are corrupted ({e.Message}).", e);
        }
        student.eval();
        return device.type == DeviceType.CPU ? student : student.to(device);
    }

    private static byte[]? ReadEntry(ZipArchive zip, string name)
    {
        var entry = zip.GetEntry(name);
        if (entry is null) return null;
        using var s = entry.Open();
        using var buffer = new MemoryStream();
        s.CopyTo(buffer);
        return buffer.ToArray();
    }

    private sealed class Manifest
    {
        public string Kind { get; set; } = "";
        public int FormatVersion { get; set; }
        /// <summary>Format 3 on.</summary>
        public TrainingSpec? Spec { get; set; }
        /// <summary>Formats 1 and 2 only.</summary>
        public DualHeadDistillOptions? Options { get; set; }
        public string[]? ClassNames { get; set; }
        public string LabelColumnName { get; set; } = "";
        public string? FeatureColumnName { get; set; }
        public int ScoringBatchSize { get; set; }
        public TeacherPreprocessing? InputPreprocessing { get; set; }
        public int FeatureSize { get; set; }
        public float Alpha { get; set; }
        public float Beta { get; set; }
        public int Seed { get; set; }
        public int CompletedEpochs { get; set; }
        public int CompletedSteps { get; set; }
        public int StepsIntoEpoch { get; set; }
        public double[]? EpochSums { get; set; }
        /// <summary>The epochs the run's schedules span (0 in checkpoints written before it was recorded).</summary>
        public int PlannedEpochs { get; set; }
        /// <summary>libtorch's intra-op threads during training (same seed + same thread count = same weights).</summary>
        public int IntraOpThreads { get; set; }
        public DualHeadTrainingReport? Report { get; set; }
    }
}
