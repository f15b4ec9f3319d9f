using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Data.Images;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.MLNet;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// The ML.NET estimator for Dual-Head Optimization. Fit reads the training rows once (so an upstream
/// teacher transform runs once per row), trains the TorchSharp student and returns a
/// <see cref="DualHeadDistillTransformer"/>.
/// </summary>
public sealed class DualHeadDistillTrainer : IEstimator<DualHeadDistillTransformer>
{
    private readonly IHost _host;
    private readonly DualHeadDistillOptions _options;

    /// <summary>Creates the trainer; prefer <c>mlContext.MulticlassClassification.Trainers.DualHeadDistill</c>.</summary>
    public DualHeadDistillTrainer(MLContext mlContext, DualHeadDistillOptions options)
        : this((IHostEnvironment)(mlContext ?? throw new ArgumentNullException(nameof(mlContext))), options)
    {
    }

    internal DualHeadDistillTrainer(IHostEnvironment env, DualHeadDistillOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _host = env.Register("DualHeadDistill");
        _options = options.Clone();
        var (gpu, fallback) = CatalogEnvironment.GpuSettings(env);
        GpuDeviceId = gpu;
        ContextFallbackToCpu = fallback;
    }

    private int? GpuDeviceId { get; }
    private bool ContextFallbackToCpu { get; }

    /// <summary>A copy of the options this trainer uses.</summary>
    public DualHeadDistillOptions Options => _options.Clone();

    /// <summary>Trains on <paramref name="input"/>, reporting accuracy on <see cref="DualHeadDistillOptions.ValidationData"/> if set.</summary>
    public DualHeadDistillTransformer Fit(IDataView input) => Fit(input, _options.ValidationData);

    /// <summary>Trains on <paramref name="trainData"/> and reports the combined accuracy on <paramref name="validationData"/> every epoch.</summary>
    public DualHeadDistillTransformer Fit(IDataView trainData, IDataView? validationData) => Fit(trainData, validationData, null);

    /// <summary>
    /// Continues the run saved in <paramref name="resumeFrom"/> up to <see cref="DualHeadDistillOptions.NumberOfEpochs"/>
    /// epochs in all: same weights, AdamW state, seed, batch order and learning-rate schedule, so an interrupted
    /// run that is resumed ends with the weights an uninterrupted run gives. The architecture options must match
    /// the checkpoint's; the data must have the same classes and feature size.
    /// </summary>
    public DualHeadDistillTransformer Fit(IDataView trainData, DualHeadCheckpoint resumeFrom)
    {
        ArgumentNullException.ThrowIfNull(resumeFrom);
        return Fit(trainData, _options.ValidationData, resumeFrom);
    }

    /// <summary>As <see cref="Fit(IDataView, DualHeadCheckpoint)"/>, with validation data.</summary>
    public DualHeadDistillTransformer Fit(IDataView trainData, IDataView? validationData, DualHeadCheckpoint? resumeFrom)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        Native.TorchSharpNative.EnsureLoadable(); // before anything initialises TorchSharp (Debian 12's libstdc++)
        var plan = Plan(trainData, validationData, resumeFrom);
        using var channel = _host.Start("Fit");
        void Log(string message) => channel.Info(MessageSensitivity.None, message);
        void Warn(string message) => channel.Warning(MessageSensitivity.None, message);
        if (plan.DeviceWarning is not null) Warn(plan.DeviceWarning);
        var cancel = new FitCancellation(plan.Options.CancellationToken, _host);
        if (plan.Columns.Teacher?.Reordered == true) Log($"DualHeadDistill: teacher slots reordered by name to the label's key order: [{string.Join(", ", plan.Columns.Label.ClassNames)}]");
        var rows = Read(plan, validationData, resumeFrom, cancel, Log, Warn);
        try
        {
            return Train(plan, rows, resumeFrom, cancel, Log, Warn);
        }
        finally
        {
            rows.Store?.Dispose(); // a temporary store is deleted with it
        }
    }

    /// <summary>What a Fit is, decided before any row is read: the specs, the device and precision, the columns, the teacher.</summary>
    private sealed record FitPlan(DualHeadDistillOptions Options, IDataView Data, ResolvedRun Run, TrainingColumns Columns, TorchSharp.torch.Device Device, string? DeviceWarning,
        PrecisionChoice Precision, bool Images, ImageColumn? ImageColumn, Teachers.CropTeacher? CropTeacher, RunSettings Settings, ScoringSettings Scoring,
        int[]? ValidationLabelMap, InputStatistics? Pretrained);

    /// <summary>The rows Fit trains and validates on, and the input statistics.</summary>
    private sealed record FitRows(TrainingSet Train, TrainingSet? Validation, SampleStore? Store, SampleStoreBuilder? Builder, InputStatistics? InputStatistics,
        double ReadSeconds, int Seed, string? ValidationWarning);

    private FitPlan Plan(IDataView trainData, IDataView? validationData, DualHeadCheckpoint? resumeFrom)
    {
        var o = _options;
        o.Validate();
        // The options become immutable specs once, here; nothing below reads them again but for run settings.
        var objective = RunSpecs.Objective(o);
        bool images = TrainingColumns.IsImageColumn(trainData.Schema, o.FeatureColumnName);
        // A teacher given to the trainer: in Cached mode it is simply the upstream transform; otherwise it runs on crops.
        bool teacherOnCrops = o.Teacher is not null && o.TeacherView != DualHeadTeacherView.Cached && objective.UsesTeacher;
        if (teacherOnCrops && !images)
            throw new ArgumentOutOfRangeException(nameof(o.TeacherView), $"TeacherView {o.TeacherView} runs the teacher on the student's image crops; feature column '{o.FeatureColumnName}' is not an image column. Use TeacherView Cached.");
        if (o.Teacher is { } heldTeacher && !teacherOnCrops && objective.UsesTeacher)
        {
            trainData = heldTeacher.Transform(trainData);
            o = o.Clone();
            o.TeacherColumnName = heldTeacher.OutputColumnName;
        }
        var columns = TrainingColumns.Bind(trainData.Schema, o, objective.UsesTeacher && !teacherOnCrops);
        var (device, warning) = DeviceSelector.Select(o.Device, o.FallbackToCpu, GpuDeviceId, ContextFallbackToCpu);
        // Precision = Auto becomes the precision this device trains in, before the spec is made (the spec holds the resolved one).
        var precision = PrecisionChoice.Resolve(o.Precision, device.type, resumeFrom?.Spec.Optimizer.Precision, DualHeadRegistry.Backbones.Get(o.Backbone.Name));
        if (precision.Precision != o.Precision)
        {
            o = o.Clone();
            o.Precision = precision.Precision;
        }
        var run = RunSpecs.Resolve(o, columns.FeatureSize, columns.ClassCount, images); // fails before reading data
        columns = columns.WithInput(FeatureInput.FromSpec(run.Spec, o.FeatureColumnName, columns.FeatureSize));
        var imageColumn = images ? ImageColumn.Create(trainData.Schema, o.FeatureColumnName, run.Spec.Images!.Crop.Channels, nameof(o.FeatureColumnName)) : null;
        var cropTeacher = teacherOnCrops ? new Teachers.CropTeacher(o.Teacher!, columns.Label, run.Spec.Images!) : null;
        int[]? validationLabelMap = validationData is null ? null : CheckValidationSchema(validationData.Schema, columns);
        if (o.EarlyStoppingPatience > 0 && validationData is null)
            throw new ArgumentException($"EarlyStoppingPatience = {o.EarlyStoppingPatience} stops on the validation accuracy, but no ValidationData was given; pass validation data or set EarlyStoppingPatience = 0.", nameof(o.EarlyStoppingPatience));
        if (resumeFrom is not null) CheckResume(resumeFrom, run.Spec, columns);
        if (o.CheckpointPath is { } checkpointPath && Path.GetDirectoryName(Path.GetFullPath(checkpointPath)) is { } folder && !Directory.Exists(folder))
            throw new ArgumentException($"CheckpointPath '{checkpointPath}': the folder '{folder}' does not exist; create it or choose another path (checked before training, not after the first epoch).", nameof(o.CheckpointPath));
        if (o.ImageStoreFolder is { } storeFolder && images && !Directory.Exists(storeFolder))
            throw new ArgumentException($"ImageStoreFolder '{storeFolder}' does not exist; create it or leave ImageStoreFolder null for a temporary store.", nameof(o.ImageStoreFolder));
        return new FitPlan(o, trainData, run, columns, device, warning, precision, images, imageColumn, cropTeacher, RunSettings.From(o) with { Precision = precision },
            ScoringSettings.From(o), validationLabelMap, InputStatisticsSource(run));
    }

    /// <summary>
    /// The training rows (the image store for an image column) and the validation rows. Standardisation statistics of the
    /// training rows are gathered in the same (first) pass, unless resuming (the checkpoint's student carries its own) or
    /// the backbone's pretrained config gives them.
    /// </summary>
    private FitRows Read(FitPlan plan, IDataView? validationData, DualHeadCheckpoint? resumeFrom, FitCancellation cancel, Action<string> log, Action<string> warn)
    {
        var (o, run, columns) = (plan.Options, plan.Run, plan.Columns);
        var read = Stopwatch.StartNew();
        bool wantStatistics = resumeFrom is null && run.Spec.Student.InputNormalization == DualHeadInputNormalization.Standardize && plan.Pretrained is null;
        var statistics = wantStatistics && !plan.Images ? new FeatureStatistics(columns.FeatureSize) : null;
        int seed = resumeFrom?.Seed ?? o.Seed ?? _host.Rand.Next();
        SampleStore? store = null;
        SampleStoreBuilder? builder = null;
        try
        {
            TrainingSet train;
            InputStatistics? storeStatistics = null;
            if (plan.ImageColumn is not null)
            {
                (train, store, builder) = ImageTrainingRows.Read(plan.Data, columns, plan.ImageColumn, run.Spec.Images!, plan.CropTeacher, seed, o, cancel, log, warn);
                if (wantStatistics) storeStatistics = ImageStatistics(store, run);
            }
            else
            {
                train = TrainingSet.Read(plan.Data, columns, o.TeacherOutput, cancel, statistics);
            }
            var validation = validationData is null ? null : TrainingSet.ReadLabeledOnly(validationData, columns, cancel, plan.ValidationLabelMap);
            if (validation is { LabeledRows: 0 })
                throw new ArgumentException($"ValidationData has {validation.Rows} rows and none with a label (label column '{columns.Label.ColumnName}' is the missing key on every row: empty, or values the training MapValueToKey did not know). Validation needs labeled rows; pass labeled data or none.", "ValidationData");
            string? validationWarning = validation is null ? null : ValidationWarning(validation, columns);
            if (validationWarning is not null) warn($"DualHeadDistill: warning: {validationWarning}");
            double readSeconds = read.Elapsed.TotalSeconds;
            log(FormattableString.Invariant($"DualHeadDistill: read {train.Rows} training rows{(validation is null ? "" : $" and {validation.Rows} validation rows")} in {readSeconds:0.00}s"));
            var inputStatistics = plan.Pretrained ?? storeStatistics ?? statistics?.ForChannels(StudentFactory.StandardizationChannels(run.Spec.Student.Backbone));
            return new FitRows(train, validation, store, builder, inputStatistics, readSeconds, seed, validationWarning);
        }
        catch
        {
            store?.Dispose();
            throw;
        }
    }

    /// <summary>The training loop (checkpoints after every epoch and when stopped), then alpha/beta on the validation rows.</summary>
    private DualHeadDistillTransformer Train(FitPlan plan, FitRows rows, DualHeadCheckpoint? resumeFrom, FitCancellation cancel, Action<string> log, Action<string> warn)
    {
        var (o, run, columns) = (plan.Options, plan.Run, plan.Columns);
        float alpha = run.Objective.Heads == 2 ? o.Alpha : 1f;
        var curve = new StepCurve(resumeFrom?.Report?.Steps);
        var teacherOnLabels = rows.Train.TeacherAccuracyOnLabels(cancel);
        void SaveCheckpoint(DualHeadStudent student, TrainingState state, IReadOnlyList<DualHeadEpochReport> epochs, string file)
        {
            var soFar = DualHeadTrainingLoop.Report(run.Spec, run.Objective.Describe(run.Spec.Objective), student, plan.Device, rows.Train.LabeledRows, rows.Train.UnlabeledRows,
                state.CompletedSteps, rows.ReadSeconds, epochs, plan.Precision.Reason) with
            { Steps = curve.Points, TeacherOnLabels = teacherOnLabels };
            DualHeadCheckpoint.From(student, run.Spec, columns, alpha, o.Beta, plan.Scoring, soFar, state).Save(file);
        }
        var loop = new DualHeadTrainingLoop(run, plan.Settings, plan.Device, log, cancel, warn)
        {
            Curve = curve,
            EpochCompleted = o.CheckpointPath is not { } path ? null : (student, state, epochs) =>
            {
                SaveCheckpoint(student, state, epochs, path);
                log($"DualHeadDistill: checkpoint after epoch {state.CompletedEpochs} written to {path}");
            },
            Interrupted = o.CheckpointPath is not { } stopPath ? null : (student, state, epochs) =>
            {
                SaveCheckpoint(student, state, epochs, stopPath);
                log($"DualHeadDistill: stopped; checkpoint at step {state.CompletedSteps} ({state.StepsIntoEpoch} steps into epoch {state.CompletedEpochs + 1}) written to {stopPath}");
            },
        };
        var (trained, report, trainingState) = loop.Run(rows.Train, rows.Validation, rows.Seed, rows.ReadSeconds, rows.InputStatistics, resumeFrom);
        if (rows.Store is { } store)
            report = report with { SampleStore = store.Path, StoreImagesPerSecond = rows.Builder!.ImagesPerSecond, StoreReused = rows.Builder.Reused };
        if (plan.CropTeacher is { } cropTeacher)
        {
            report = report with { TeacherSeconds = cropTeacher.Seconds, TeacherCrops = cropTeacher.Rows };
            log(FormattableString.Invariant($"DualHeadDistill: teacher on crops ({cropTeacher.Describe()}): {cropTeacher.Rows} crops in {cropTeacher.Seconds:0.0}s"));
        }
        if (rows.ValidationWarning is not null) report = report with { Warnings = [.. report.Warnings, rows.ValidationWarning] };
        report = report with { TeacherOnLabels = teacherOnLabels };
        var model = new DualHeadDistillTransformer(new StudentHandle(trained, run.Spec.Student, plan.Device), columns, alpha, o.Beta, run.Spec, plan.Scoring, report, trainingState);
        try
        {
            if (rows.Validation is { } validation && o.AutoAlphaBeta && run.Objective.Heads == 2)
            {
                var watch = Stopwatch.StartNew();
                var search = model.TuneAlphaBeta(validation, o.AlphaGrid, o.BetaGrid, cancel, new AlphaBetaEvidence(report.TeacherOnLabels, o.AlphaBetaNoiseMargin, alpha, o.Beta));
                var warnings = report.Warnings;
                if (SmallValidationWarning(search) is { } small)
                {
                    warnings = [.. warnings, small];
                    warn($"DualHeadDistill: warning: {small}");
                }
                model = model.WithAlphaBeta(search.Alpha, search.Beta).WithReport(report with { AlphaBeta = search, AlphaBetaSeconds = watch.Elapsed.TotalSeconds, Warnings = warnings });
                log($"DualHeadDistill: alpha/beta chosen on the validation data: {search}");
            }
            cancel.ThrowIfRequested();
        }
        catch
        {
            model.Discard(); // never returned: no need to keep its weights
            throw;
        }
        return model;
    }

    /// <summary>The warning for a validation set too small to choose alpha and beta on, or null.</summary>
    internal static string? SmallValidationWarning(AlphaBetaSearchResult search) =>
        search.FewestRowsPerClass >= AlphaBetaSearch.SmallValidationPerClass ? null : FormattableString.Invariant(
            $"the validation data has {search.FewestRowsPerClass} images of its smallest class (fewer than {AlphaBetaSearch.SmallValidationPerClass} a class; {search.ValidationRows} in all): one image is {100.0 / search.ValidationRows:0.0} points and its accuracy ±{search.StandardError * 100:0.0} (one standard error); alpha/beta leave {search.ReferenceName} only for a lead above the noise. More validation images make the choice (and the reported accuracy) trustworthy.");

    /// <summary>
    /// Standardisation statistics of stored images: per image channel for image backbones, and the same per
    /// channel value for every slot of that channel for feature-vector backbones reading the flattened crop.
    /// </summary>
    private static InputStatistics ImageStatistics(SampleStore store, ResolvedRun run)
    {
        int channels = StudentFactory.StandardizationChannels(run.Spec.Student.Backbone);
        var crop = run.Spec.Images!.Crop;
        float[] Expand(double[] perChannel) => (channels == perChannel.Length ? perChannel
            : Enumerable.Range(0, channels).Select(i => perChannel[Math.Min(perChannel.Length - 1, i / (crop.Height * crop.Width))])).Select(v => (float)v).ToArray();
        var std = store.PixelStd.Select(v => v > 1e-12 ? v : 1.0).ToArray(); // a constant channel keeps std 1
        return new InputStatistics(Expand(store.PixelMean), Expand(std));
    }

    /// <summary>The pretrained mean/std when standardising with a backbone (or loaded weights) that has them; null to compute them from the rows.</summary>
    private static InputStatistics? InputStatisticsSource(ResolvedRun run)
    {
        var config = run.Backbone.PretrainedFor(run.Spec.Student.Backbone, weightsLoaded: run.Spec.Tuning.WeightsFile is not null);
        if (run.Spec.Student.InputNormalization != DualHeadInputNormalization.Standardize || config is not { } pretrained) return null;
        int channels = StudentFactory.StandardizationChannels(run.Spec.Student.Backbone);
        if (pretrained.Mean.Length != channels || pretrained.Std.Length != channels)
            throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.InputNormalization),
                $"Backbone '{run.Backbone.Name}' has pretrained mean/std for {pretrained.Mean.Length} channels but its input has {channels}; set ImageShape to match or InputNormalization = None.");
        return new InputStatistics([.. pretrained.Mean], [.. pretrained.Std]);
    }

    /// <summary>The input schema plus Score, PredictedLabel and both heads' probabilities, known before Fit.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = _options;
        if (!SchemaShapes.TryFind(inputSchema, o.LabelColumnName, out var label))
            throw new ArgumentOutOfRangeException(nameof(o.LabelColumnName), $"Label column '{o.LabelColumnName}' was not found in the input schema.");
        if (!label.IsKey || label.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(nameof(o.LabelColumnName), $"Label column '{o.LabelColumnName}' is {label.Kind} of {label.ItemType}; expected a scalar key (apply MapValueToKey first).");
        if (!(SchemaShapes.TryFind(inputSchema, o.FeatureColumnName, out var feature) && IsImageShape(feature)))
            RequireVectorShape(inputSchema, o.FeatureColumnName, nameof(o.FeatureColumnName), "Feature");
        // A teacher given to the trainer makes its own logits: no teacher column is needed upstream.
        if (o.Teacher is null && (!DualHeadRegistry.Objectives.TryGet(o.Objective.Name, out var objective) || objective.UsesTeacher))
            RequireVectorShape(inputSchema, o.TeacherColumnName, nameof(o.TeacherColumnName), "Teacher");

        // A SchemaShape records kinds, not sizes: the class count is only known from the data, so the
        // shapes below are built with a placeholder count.
        const int k = 2;
        var outputs = new DataViewSchema.Builder();
        var names = Enumerable.Range(0, k).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        // The label's KeyValues shape is carried over to PredictedLabel, as ML.NET's trainers do.
        DataViewSchema.Annotations? keyValues = null;
        if (SchemaShapes.TryFind(label.Annotations, LabelInfo.KeyValuesKind, out var kv) && kv.ItemType is PrimitiveDataViewType kvItem)
            keyValues = PlaceholderKeyValues(kvItem, k);
        ScoringSchema.AddOutputs(outputs, names, keyValues);
        var added = SchemaShapes.FromSchema(outputs.ToSchema());
        return new SchemaShape(inputSchema.Where(c => !ScoringSchema.Names.Contains(c.Name)).Concat(added));
    }

    private static DataViewSchema.Annotations PlaceholderKeyValues(PrimitiveDataViewType itemType, int k)
    {
        var method = typeof(DualHeadDistillTrainer).GetMethod(nameof(Placeholder), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(itemType.RawType);
        return (DataViewSchema.Annotations)method.Invoke(null, [itemType, k])!;
    }

    private static DataViewSchema.Annotations Placeholder<T>(PrimitiveDataViewType itemType, int k)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(LabelInfo.KeyValuesKind, new VectorDataViewType(itemType, k), (ref VBuffer<T> v) => v = new VBuffer<T>(k, new T[k]));
        return builder.ToAnnotations();
    }

    /// <summary>An image column (MLImage) or encoded image bytes (a vector of Byte).</summary>
    private static bool IsImageShape(SchemaShape.Column column) =>
        column.ItemType is Microsoft.ML.Transforms.Image.ImageDataViewType
        || (column.Kind != SchemaShape.Column.VectorKind.Scalar && column.ItemType == NumberDataViewType.Byte);

    private static void RequireVectorShape(SchemaShape schema, string name, string option, string role)
    {
        if (!SchemaShapes.TryFind(schema, name, out var col))
            throw new ArgumentOutOfRangeException(option, $"{role} column '{name}' was not found in the input schema.");
        if (col.Kind != SchemaShape.Column.VectorKind.Vector || col.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(option, $"{role} column '{name}' is {col.Kind} of {col.ItemType}; expected a known-size vector of Single.");
    }

    /// <summary>Resuming needs an equal spec (the first differing field is named) and the same data shape; epochs may grow.</summary>
    private void CheckResume(DualHeadCheckpoint checkpoint, TrainingSpec spec, TrainingColumns columns)
    {
        if (checkpoint.FeatureSize != columns.FeatureSize)
            throw new ArgumentOutOfRangeException("resumeFrom", $"The checkpoint's student reads {checkpoint.FeatureSize} features; feature column '{columns.FeatureColumn}' has {columns.FeatureSize}.");
        if (!checkpoint.ClassNames.SequenceEqual(columns.Label.ClassNames))
            throw new ArgumentOutOfRangeException("resumeFrom", $"The checkpoint's classes [{string.Join(", ", checkpoint.ClassNames)}] differ from label column '{columns.Label.ColumnName}': [{string.Join(", ", columns.Label.ClassNames)}].");
        if (checkpoint.Spec.FirstDifference(spec) is { } difference)
            throw new ArgumentOutOfRangeException(difference.Option,
                $"The checkpoint was trained with {difference.Field} = {difference.Left}; this trainer has {difference.Right} (option {difference.Option}). Resuming needs the same spec: student, objective, batches and optimizer.");
        if (checkpoint.CompletedEpochs >= _options.NumberOfEpochs)
            throw new ArgumentOutOfRangeException(nameof(_options.NumberOfEpochs), $"The checkpoint has already completed {checkpoint.CompletedEpochs} epochs; set NumberOfEpochs above {checkpoint.CompletedEpochs} to train further.");
    }

    /// <summary>Checks the validation columns and maps the validation label's classes onto the training ones by name.</summary>
    private static int[] CheckValidationSchema(DataViewSchema schema, TrainingColumns columns)
    {
        var label = LabelInfo.FromSchema(schema, columns.Label.ColumnName, minimumClasses: 1);
        var map = label.MapOnto(columns.Label, "ValidationData", "Validation");
        columns.Input.Bind(schema, "ValidationData", "Validation feature");
        return map;
    }

    /// <summary>A warning when validation rows carry no label (the missing key) and so cannot be used.</summary>
    internal static string? ValidationWarning(TrainingSet validation, TrainingColumns columns)
    {
        int missing = validation.UnlabeledRows;
        if (missing == 0) return null;
        return $"{missing} of {validation.Rows} validation rows have no label (label column '{columns.Label.ColumnName}' is the missing key: empty, or a value the training MapValueToKey did not know) and are left out of validation accuracy and the alpha/beta search.";
    }
}
