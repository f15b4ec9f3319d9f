using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Export.Quantization;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.MLNet;
using Microsoft.ML.DualHeadDistillation.MLNet.Persistence;
using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.DualHeadDistillation.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// The fitted DHO student. Adds <c>Score</c> (combined probabilities, slot names = class names),
/// <c>PredictedLabel</c> (key typed, with the label's key values), <c>CeHeadProbabilities</c> and
/// <c>KdHeadProbabilities</c>. <see cref="Alpha"/> and <see cref="Beta"/> are fixed per model:
/// <see cref="WithAlphaBeta"/> gives a model with other values (sharing the trained student) without retraining.
/// </summary>
/// <remarks>
/// Scoring runs the student's exported ONNX graph with ONNX Runtime, many rows per call, so a model saved
/// with <c>mlContext.Model.Save</c> (which stores that graph in ML.NET's own OnnxTransformer) and loaded
/// again gives the same numbers. The TorchSharp student is kept for <see cref="TuneAlphaBeta(IDataView, float[], float[], float)"/>,
/// checkpoints and export.
/// <para>
/// <see cref="Dispose"/> releases the native memory (TorchSharp's tensors, ONNX Runtime's session) at once, but the
/// model stays usable: ML.NET's <c>PredictionEngine</c> disposes the model it was created from when the engine is
/// disposed (<c>PredictionEngineOptions.OwnsTransformer</c> is true by default), so disposing one engine must not
/// break the model, other engines or <see cref="Transform"/>. A disposed model keeps its weights and its ONNX graph
/// in managed memory and rebuilds the session (for scoring) or the TorchSharp student (for tuning, export,
/// checkpoints) on next use; dispose it again afterwards to release them again. Models made with
/// <see cref="WithAlphaBeta"/> share the student: disposing any of them releases it for all, and each rebuilds it on use.
/// </para>
/// </remarks>
public sealed class DualHeadDistillTransformer : ITransformer, IDisposable
{
    private readonly StudentHandle _handle;
    private readonly TrainingColumns _columns;
    private readonly LabelInfo _label;
    private readonly TrainingSpec _spec;
    private readonly ScoringSettings _scoring;
    private readonly object _scorerLock = new();
    private byte[]? _portableOnnx;          // this model's scoring graph (alpha and beta are fixed)
    private OnnxStudentScorer? _onnxScorer;

    internal DualHeadDistillTransformer(StudentHandle handle, TrainingColumns columns, float alpha, float beta,
        TrainingSpec spec, ScoringSettings scoring, DualHeadTrainingReport report, TrainingState state)
    {
        _handle = handle;
        _columns = columns;
        _label = columns.Label;
        _spec = spec;
        _scoring = scoring;
        CheckAlphaBeta(alpha, beta, handle.HasTwoHeads, report.Mode);
        Alpha = alpha;
        Beta = beta;
        TrainingReport = report;
        State = state;
    }

    private static void CheckAlphaBeta(float alpha, float beta, bool twoHeads, DualHeadTrainingMode mode)
    {
        if (!(alpha is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(Alpha), alpha, "Alpha must be in [0, 1].");
        if (alpha != 1 && !twoHeads)
            throw new InvalidOperationException($"This model was trained in {mode} mode with one head; its Score is that head's softmax, so Alpha stays 1.");
        if (!(beta > 0 && float.IsFinite(beta))) throw new ArgumentOutOfRangeException(nameof(Beta), beta, "Beta must be a finite number > 0.");
    }

    /// <summary>Weight of the CE head in Score, in [0, 1]. 1 uses the CE head alone, 0 the KD head alone. A single-head model has 1.</summary>
    public float Alpha { get; }

    /// <summary>Temperature of the KD head at inference, &gt; 0.</summary>
    public float Beta { get; }

    /// <summary>
    /// This model with other inference weights: p = alpha*softmax(h_CE) + (1-alpha)*softmax(h_KD/beta). The new model
    /// shares the trained student (no copy, no retraining); this one is unchanged. A one-head model only takes alpha = 1.
    /// </summary>
    public DualHeadDistillTransformer WithAlphaBeta(float alpha, float beta)
    {
        CheckAlphaBeta(alpha, beta, _handle.HasTwoHeads, Objective);
        return new DualHeadDistillTransformer(_handle, _columns, alpha, beta, _spec, _scoring, TrainingReport, State);
    }

    internal DualHeadDistillTransformer WithReport(DualHeadTrainingReport report) =>
        new(_handle, _columns, Alpha, Beta, _spec, _scoring, report, State);

    /// <summary>The training objective that produced this model.</summary>
    public DualHeadTrainingMode Objective => TrainingReport.Mode;
    /// <summary>The earlier name of <see cref="Objective"/>.</summary>
    [Obsolete("Use Objective.")]
    public DualHeadTrainingMode Mode => Objective;

    /// <summary>What the model is: student (backbone, heads, standardisation), objective, batches, optimizer.</summary>
    public TrainingSpec Spec => _spec;

    /// <summary>Class names in key order (class i is key i+1).</summary>
    public IReadOnlyList<string> ClassNames => _label.ClassNames;
    /// <summary>The input column the student reads.</summary>
    public string FeatureColumnName => _columns.FeatureColumn;
    /// <summary>Rows per forward pass in <see cref="Transform"/>.</summary>
    public int ScoringBatchSize => _scoring.BatchSize;
    /// <summary>Losses, learning rates, validation accuracy, timings, gradient cosines and the alpha/beta search of the training run.</summary>
    public DualHeadTrainingReport TrainingReport { get; }
    /// <summary>Trainable parameters of the student (backbone and both heads).</summary>
    public long StudentParameters => _handle.ParameterCount;
    /// <summary>The per-channel standardisation the student applies to its input (saved with it and built into its ONNX graph), or null.</summary>
    public InputStatistics? InputStandardization => _handle.InputStatistics;
    /// <summary>The TorchSharp student (for inspection; the transformer owns it). Rebuilt from the saved weights after <see cref="Dispose"/>.</summary>
    /// <remarks>Do not keep it across a <see cref="Dispose"/> (which a PredictionEngine's disposal performs): take it again.</remarks>
    public DualHeadStudent Student => _handle.Live();

    /// <summary>True while the native memory is released (after <see cref="Dispose"/>, until the model is used again).</summary>
    public bool IsReleased
    {
        get
        {
            lock (_scorerLock) return _handle.IsReleased && _onnxScorer is null;
        }
    }

    /// <summary>How images became the features (from <see cref="DualHeadDistillOptions.InputPreprocessing"/>); written to exported models.</summary>
    public TeacherPreprocessing? InputPreprocessing => _scoring.InputPreprocessing;

    internal int InputSize => _handle.InputSize;

    /// <summary>How the feature column becomes the student's input (a float vector, or images and their crop).</summary>
    internal FeatureInput Input => _columns.Input;

    /// <summary>The feature column of <paramref name="schema"/> bound for reading (checks its type and size).</summary>
    internal FeatureInput.Reader FeatureReader(DataViewSchema schema) => _columns.Input.Bind(schema, nameof(FeatureColumnName));
    /// <summary>The TorchSharp scorer of the live student (tests and diagnostics).</summary>
    internal StudentScorer Scorer => _handle.With((_, scorer) => scorer);
    internal TrainingState State { get; }

    /// <summary>
    /// The ONNX Runtime scorer of this model, acquired for the caller, who must <see cref="OnnxStudentScorer.Release"/> it.
    /// After <see cref="Dispose"/> a new one is built from the kept graph; the old one lives until its last user releases it.
    /// </summary>
    internal OnnxStudentScorer AcquireOnnxScorer()
    {
        lock (_scorerLock)
        {
            if (_onnxScorer is { } current && current.TryAcquire()) return current;
            // The graph is kept (managed bytes), so a released model scores again without rebuilding TorchSharp's student.
            var bytes = _portableOnnx ??= StudentOnnxExporter.ToBytes(BuildOnnx(OnnxGraphFlavor.Portable));
            var scorer = new OnnxStudentScorer(bytes, FeatureColumnName, InputSize, _label.ClassCount);
            _onnxScorer?.Retire();
            _onnxScorer = scorer;
            scorer.TryAcquire();
            return scorer;
        }
    }

    /// <summary>
    /// Writes the student as a self-contained ONNX model (opset 13): input <c>FeatureColumnName</c> float [N, D];
    /// outputs <c>Score</c>, <c>CeHeadProbabilities</c>, <c>KdHeadProbabilities</c> (float [N, K]),
    /// <c>PredictedLabelIndex</c> (int64 [N], 0-based class) and <c>PredictedClassName</c> (string [N]); class
    /// names, preprocessing, alpha, beta and the architecture in its metadata (<see cref="StudentOnnxMetadata"/>).
    /// The current <see cref="Alpha"/> and <see cref="Beta"/> are built into the graph.
    /// </summary>
    public void ExportToOnnx(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("The stream must be writable.", nameof(stream));
        var bytes = StudentOnnxExporter.ToBytes(BuildOnnx(OnnxGraphFlavor.Portable)); // fails before anything is written
        stream.Write(bytes);
    }

    /// <summary>As <see cref="ExportToOnnx(Stream)"/>, to a file (written whole or not at all).</summary>
    public void ExportToOnnx(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var bytes = StudentOnnxExporter.ToBytes(BuildOnnx(OnnxGraphFlavor.Portable));
        AtomicFile.Write(path, bytes);
    }

    /// <summary>
    /// Writes the student as ONNX in the precision <paramref name="options"/> asks for (file written whole or not at all).
    /// Int8 (<see cref="DualHeadQuantization.Int8"/>): static QDQ quantisation calibrated on <c>CalibrationData</c>; with
    /// <c>ValidationData</c> fp32 and int8 are compared (accuracy, agreement: in the result and the graph's metadata) and
    /// a drop over <c>MaxAccuracyDrop</c> (1 point) is refused with an <see cref="InvalidOperationException"/> naming it.
    /// </summary>
    public StudentExportResult ExportToOnnx(string path, StudentExportOptions options, CancellationToken cancel = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(options);
        var fp32 = StudentOnnxExporter.ToBytes(BuildOnnx(OnnxGraphFlavor.Portable));
        if (options.Quantization == DualHeadQuantization.None)
        {
            AtomicFile.Write(path, fp32);
            return new StudentExportResult { Quantization = DualHeadQuantization.None, Bytes = fp32.Length, Fp32Bytes = fp32.Length };
        }
        var (bytes, result) = Int8Export.Build(this, fp32, options, cancel);
        AtomicFile.Write(path, bytes);
        return result;
    }

    /// <summary>
    /// The student quantised to int8 (<see cref="StudentQuantizer"/>: calibrated on <paramref name="calibrationData"/>,
    /// checked against fp32 on <paramref name="validationData"/> with the guarantee of
    /// <see cref="ExportToOnnx(string, StudentExportOptions, CancellationToken)"/>) as a model that scores with the int8
    /// graph in ONNX Runtime (no libtorch) and saves and loads with <see cref="DualHeadModel.Save"/> / <see cref="DualHeadModel.Load(MLContext, string, out DataViewSchema)"/>.
    /// </summary>
    public DualHeadInt8Model Quantize(IDataView calibrationData, IDataView? validationData = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(calibrationData);
        return Quantize(new StudentExportOptions { Quantization = DualHeadQuantization.Int8, CalibrationData = calibrationData, ValidationData = validationData }, cancel);
    }

    /// <summary>As <see cref="Quantize(IDataView, IDataView?, CancellationToken)"/>, with every option of the int8 export (<c>Quantization</c> must be Int8).</summary>
    public DualHeadInt8Model Quantize(StudentExportOptions options, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var fp32 = StudentOnnxExporter.ToBytes(BuildOnnx(OnnxGraphFlavor.MLNet));
        var (int8, check) = Int8Export.Build(this, fp32, options, cancel, StudentOnnxExporter.MLNetPredictedIndexOutput);
        return DualHeadInt8Model.Create(this, int8, check);
    }

    /// <summary>Labeled rows of <paramref name="validationData"/> mapped onto this model's classes.</summary>
    internal TrainingSet ReadValidation(IDataView validationData, FitCancellation cancel)
    {
        var label = LabelInfo.FromSchema(validationData.Schema, _label.ColumnName, minimumClasses: 1);
        var map = label.MapOnto(_label, nameof(validationData), "Validation");
        GetOutputSchema(validationData.Schema); // checks the feature column
        return TrainingSet.ReadLabeledOnly(validationData, _columns, cancel, map);
    }

    /// <summary>Saves a training checkpoint (weights, optimizer state, options, class names, alpha/beta, report); see <see cref="DualHeadCheckpoint"/>.</summary>
    public void SaveCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ToCheckpoint().Save(path);
    }

    /// <summary>This model as an in-memory training checkpoint.</summary>
    public DualHeadCheckpoint ToCheckpoint()
    {
        return _handle.With((student, _) => DualHeadCheckpoint.From(student, _spec, _columns, Alpha, Beta, _scoring, TrainingReport, State));
    }

    internal Onnx.ModelProto BuildOnnx(OnnxGraphFlavor flavor)
    {
        return _handle.With((student, _) =>
        {
            NonFiniteGuard.EnsureFinite(student, "export or save this model");
            var info = new StudentExportInfo(FeatureColumnName, _label.ClassNames, Alpha, Beta, Objective, _scoring.InputPreprocessing, student.Backbone.ImageShape, _spec.Images);
            return StudentOnnxExporter.Build(student, info, flavor);
        });
    }

    /// <summary>
    /// Searches <see cref="Alpha"/> and <see cref="Beta"/> on labeled validation rows (label and feature columns as
    /// in training): the student runs once over the rows, then every grid point is evaluated on the cached
    /// head logits. Returns the best pair and the whole grid; this model is unchanged (take the tuned one with
    /// <c>model.WithAlphaBeta(result.Alpha, result.Beta)</c>).
    /// </summary>
    /// <remarks>
    /// The grid's best is kept only when it beats the reference by more than <paramref name="noiseMargin"/> paired
    /// standard errors (<see cref="DualHeadDistillOptions.AlphaBetaNoiseMargin"/>): the reference is this model's alpha
    /// and beta; with fewer than 20 rows a class, a single head (the CE head when <see cref="DualHeadTrainingReport.TeacherOnLabels"/>
    /// is below its accuracy or it scores at least the KD head).
    /// </remarks>
    public AlphaBetaSearchResult TuneAlphaBeta(IDataView validationData, float[]? alphaGrid = null, float[]? betaGrid = null, float noiseMargin = DualHeadDefaults.AlphaBetaNoiseMargin)
    {
        ArgumentNullException.ThrowIfNull(validationData);
        if (!_handle.HasTwoHeads)
            throw new InvalidOperationException($"This model was trained in {Objective} mode with one head; there is no alpha/beta to tune.");
        var label = LabelInfo.FromSchema(validationData.Schema, _label.ColumnName, minimumClasses: 1);
        var map = label.MapOnto(_label, nameof(validationData), "Validation");
        GetOutputSchema(validationData.Schema); // checks the feature column
        var rows = TrainingSet.ReadLabeledOnly(validationData, _columns, FitCancellation.None, map);
        if (!(noiseMargin >= 0) || float.IsInfinity(noiseMargin)) throw new ArgumentOutOfRangeException(nameof(noiseMargin), noiseMargin, "The noise margin must be finite and >= 0 (standard errors).");
        return TuneAlphaBeta(rows, alphaGrid ?? DualHeadDefaults.AlphaGrid, betaGrid ?? DualHeadDefaults.BetaGrid, FitCancellation.None,
            new AlphaBetaEvidence(TrainingReport.TeacherOnLabels, noiseMargin, Alpha, Beta));
    }

    internal AlphaBetaSearchResult TuneAlphaBeta(TrainingSet rows, float[] alphaGrid, float[] betaGrid, FitCancellation cancel, AlphaBetaEvidence evidence)
    {
        if (alphaGrid.Length == 0 || alphaGrid.Any(a => !(a >= 0 && a <= 1))) throw new ArgumentOutOfRangeException(nameof(alphaGrid), "Alpha values must be in [0, 1].");
        if (betaGrid.Length == 0 || betaGrid.Any(b => !(b > 0) || float.IsInfinity(b))) throw new ArgumentOutOfRangeException(nameof(betaGrid), "Beta values must be finite and > 0.");
        var (ce, kd) = _handle.With((_, scorer) => scorer.ScoreAll(rows.Features, rows.Rows, ScoringBatchSize, cancel));
        return AlphaBetaSearch.Run(ce, kd, rows.Labels, _label.ClassCount, alphaGrid, betaGrid, cancel, evidence);
    }

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        FeatureReader(inputSchema);
        return ScoringSchema.Build(inputSchema, _label.ClassNames, _label.Annotations);
    }

    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new ScoredDataView(this, input);
    }

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return new ScoringRowMapper(this, inputSchema);
    }

    /// <summary>
    /// Saves the student as ML.NET's own transformers (<see cref="PersistedScoringChain"/>): the ONNX graph in an
    /// OnnxTransformer, then the key mapping of PredictedLabel. <c>mlContext.Model.Load</c> rebuilds it; the
    /// loaded model needs neither TorchSharp nor this class.
    /// </summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        if (Input.IsImage)
            throw new NotSupportedException($"This model reads images from column '{FeatureColumnName}' ({Input.Images}); ML.NET's own Model.Save cannot hold its image preparation. Save the model itself with DualHeadModel.Save(mlContext, model, schema, path) (for a pipeline, its LastTransformer): DualHeadModel.Load then gives a model that scores encoded image bytes. Or keep it with SaveCheckpoint, or export the student with ExportToOnnx (input: the [C, H, W] center crop in [0, 1]).");
        var chain = BuildPersistedChain();
        try
        {
            ((ICanSaveModel)chain).Save(ctx);
        }
        finally
        {
            chain.Dispose();
        }
    }

    /// <summary>The student as ML.NET's own transformers, reading the D input values from a float vector column named <see cref="FeatureColumnName"/>.</summary>
    internal TransformerChain<ITransformer> BuildPersistedChain(byte[]? mlnetOnnx = null)
    {
        var onnx = mlnetOnnx ?? StudentOnnxExporter.ToBytes(BuildOnnx(OnnxGraphFlavor.MLNet));
        return PersistedScoringChain.Build(onnx, FeatureColumnName, InputSize, _label.ClassNames);
    }

    /// <summary>Frees everything without keeping the weights: for a model that Fit never returns (cancelled or failed after training).</summary>
    internal void Discard()
    {
        lock (_scorerLock)
        {
            _onnxScorer?.Retire();
            _onnxScorer = null;
        }
        _handle.Discard();
    }

    /// <summary>
    /// Releases the native memory now: the ONNX Runtime session (at once, or when the last open cursor closes) and
    /// the TorchSharp student (its weights are kept in managed memory; shared with models from <see cref="WithAlphaBeta"/>).
    /// Never throws. The model stays usable and rebuilds what it needs on next use — see the remarks on the class for
    /// why (PredictionEngine disposes the model it was created from).
    /// </summary>
    public void Dispose()
    {
        lock (_scorerLock)
        {
            _onnxScorer?.Retire(); // disposed now, or when the last open cursor is disposed
            _onnxScorer = null;
        }
        _handle.Release(); // released when the running export/tuning/checkpoint ends
    }
}
