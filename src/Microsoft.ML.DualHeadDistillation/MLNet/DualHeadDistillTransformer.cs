using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.MLNet;
using Microsoft.ML.DualHeadDistillation.MLNet.Persistence;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.DualHeadDistillation.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// The fitted DHO student. Adds <c>Score</c> (combined probabilities, slot names = class names),
/// <c>PredictedLabel</c> (key typed, with the label's key values), <c>CeHeadProbabilities</c> and
/// <c>KdHeadProbabilities</c>. <see cref="Alpha"/> and <see cref="Beta"/> can be changed at any time
/// without retraining.
/// </summary>
/// <remarks>
/// Scoring runs the student's exported ONNX graph with ONNX Runtime, many rows per call, so a model saved
/// with <c>mlContext.Model.Save</c> (which stores that graph in ML.NET's own OnnxTransformer) and loaded
/// again gives the same numbers. The TorchSharp student is kept for <see cref="TuneAlphaBeta(IDataView, float[], float[])"/>,
/// checkpoints and export.
/// <para>
/// <see cref="Dispose"/> releases the native memory (TorchSharp's tensors, ONNX Runtime's session) at once, but the
/// model stays usable: ML.NET's <c>PredictionEngine</c> disposes the model it was created from when the engine is
/// disposed (<c>PredictionEngineOptions.OwnsTransformer</c> is true by default), so disposing one engine must not
/// break the model, other engines or <see cref="Transform"/>. A disposed model keeps its weights and its ONNX graph
/// in managed memory and rebuilds the session (for scoring) or the TorchSharp student (for tuning, export,
/// checkpoints) on next use; dispose it again afterwards to release them again.
/// </para>
/// </remarks>
public sealed class DualHeadDistillTransformer : ITransformer, IDisposable
{
    private DualHeadStudent? _student;      // null while released (after Dispose)
    private byte[]? _releasedWeights;       // the student's weights while released
    private (float Alpha, float Beta, byte[] Bytes)? _portableOnnx; // the scoring graph of the last alpha/beta
    private readonly Device _device;
    private readonly bool _twoHeads;
    private readonly TrainingColumns _columns;
    private readonly LabelInfo _label;
    private readonly DualHeadDistillOptions _options;
    private readonly object _scorerLock = new();
    private OnnxStudentScorer? _onnxScorer;
    private float _alpha, _beta;

    internal DualHeadDistillTransformer(DualHeadStudent student, Device device, TrainingColumns columns,
        float alpha, float beta, DualHeadDistillOptions options, DualHeadTrainingReport report, TrainingState state)
    {
        _student = student;
        _device = device;
        _twoHeads = student.HasTwoHeads;
        StudentParameters = student.ParameterCount;
        InputSize = student.Backbone.InputSize;
        _columns = columns;
        _label = columns.Label;
        _options = options.Clone();
        FeatureColumnName = columns.FeatureColumn;
        Alpha = alpha;
        Beta = beta;
        ScoringBatchSize = options.ScoringBatchSize;
        TrainingReport = report;
        State = state;
    }

    /// <summary>Weight of the CE head in Score, in [0, 1]. 1 uses the CE head alone, 0 the KD head alone. A single-head model keeps 1.</summary>
    public float Alpha
    {
        get => _alpha;
        set
        {
            if (!(value is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(Alpha), value, "Alpha must be in [0, 1].");
            if (value != 1 && !_twoHeads)
                throw new InvalidOperationException($"This model was trained in {Mode} mode with one head; its Score is that head's softmax, so Alpha stays 1.");
            _alpha = value;
        }
    }

    /// <summary>The training mode that produced this model.</summary>
    public DualHeadTrainingMode Mode => TrainingReport.Mode;

    /// <summary>Temperature of the KD head at inference, &gt; 0.</summary>
    public float Beta
    {
        get => _beta;
        set => _beta = value > 0 && float.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(Beta), value, "Beta must be a finite number > 0.");
    }

    /// <summary>Class names in key order (class i is key i+1).</summary>
    public IReadOnlyList<string> ClassNames => _label.ClassNames;
    /// <summary>The input column the student reads.</summary>
    public string FeatureColumnName { get; }
    /// <summary>Rows per forward pass in <see cref="Transform"/>.</summary>
    public int ScoringBatchSize { get; }
    /// <summary>Losses, learning rates, validation accuracy, timings, gradient cosines and the alpha/beta search of the training run.</summary>
    public DualHeadTrainingReport TrainingReport { get; internal set; }
    /// <summary>Trainable parameters of the student (backbone and both heads).</summary>
    public long StudentParameters { get; }
    /// <summary>The TorchSharp student (for inspection; the transformer owns it). Rebuilt from the saved weights after <see cref="Dispose"/>.</summary>
    /// <remarks>Do not keep it across a <see cref="Dispose"/> (which a PredictionEngine's disposal performs): take it again.</remarks>
    public DualHeadStudent Student => LiveStudent();

    /// <summary>True while the native memory is released (after <see cref="Dispose"/>, until the model is used again).</summary>
    public bool IsReleased
    {
        get
        {
            lock (_scorerLock) return _student is null && _onnxScorer is null;
        }
    }

    /// <summary>How images became the features (from <see cref="DualHeadDistillOptions.InputPreprocessing"/>); written to exported models.</summary>
    public TeacherPreprocessing? InputPreprocessing => _options.InputPreprocessing;

    /// <summary>One scorer per live student, so its lock serialises concurrent forward passes.</summary>
    internal StudentScorer Scorer
    {
        get
        {
            lock (_scorerLock)
            {
                var student = LiveStudent();
                return _studentScorer ??= new StudentScorer(student, _device);
            }
        }
    }

    private StudentScorer? _studentScorer;
    private int _studentUsers;      // leases out (WithStudent): the student is not released while one is
    private bool _releasePending;   // Dispose came while a lease was out

    /// <summary>Runs <paramref name="use"/> with the live student; a concurrent <see cref="Dispose"/> waits for it to finish before releasing.</summary>
    private T WithStudent<T>(Func<DualHeadStudent, StudentScorer, T> use)
    {
        DualHeadStudent student;
        StudentScorer scorer;
        lock (_scorerLock)
        {
            student = LiveStudent();
            scorer = _studentScorer ??= new StudentScorer(student, _device);
            _studentUsers++;
        }
        try
        {
            return use(student, scorer);
        }
        finally
        {
            lock (_scorerLock)
            {
                if (--_studentUsers == 0 && _releasePending) ReleaseStudent();
            }
        }
    }
    internal int InputSize { get; }

    /// <summary>The TorchSharp student, rebuilt from the weights kept at <see cref="Dispose"/> if it was released.</summary>
    private DualHeadStudent LiveStudent()
    {
        lock (_scorerLock)
        {
            if (_student is { } live) return live;
            var student = DualHeadTrainingLoop.CreateStudent(_options, InputSize, _label.ClassCount, seed: null, _device);
            using (var weights = new MemoryStream(_releasedWeights!, writable: false))
                student.load(weights);
            student.eval();
            _student = student;
            _releasedWeights = null;
            return student;
        }
    }
    internal TrainingState State { get; }

    /// <summary>
    /// The ONNX Runtime scorer for the current alpha and beta (rebuilt, in milliseconds, after they change),
    /// acquired for the caller, who must <see cref="OnnxStudentScorer.Release"/> it. A replaced scorer is
    /// disposed when its last user releases it.
    /// </summary>
    internal OnnxStudentScorer AcquireOnnxScorer()
    {
        lock (_scorerLock)
        {
            if (_onnxScorer is { } current && current.Alpha == _alpha && current.Beta == _beta && current.TryAcquire()) return current;
            // The graph is kept (managed bytes), so a released model scores again without rebuilding TorchSharp's student.
            var bytes = _portableOnnx is { } cached && cached.Alpha == _alpha && cached.Beta == _beta
                ? cached.Bytes
                : StudentOnnxExporter.ToBytes(BuildOnnx(OnnxGraphFlavor.Portable));
            _portableOnnx = (_alpha, _beta, bytes);
            var scorer = new OnnxStudentScorer(bytes, FeatureColumnName, InputSize, _label.ClassCount, _alpha, _beta);
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

    /// <summary>Saves a training checkpoint (weights, optimizer state, options, class names, alpha/beta, report); see <see cref="DualHeadCheckpoint"/>.</summary>
    public void SaveCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ToCheckpoint().Save(path);
    }

    /// <summary>This model as an in-memory training checkpoint.</summary>
    public DualHeadCheckpoint ToCheckpoint()
    {
        return WithStudent((student, _) => DualHeadCheckpoint.From(student, _options, _columns, _alpha, _beta, TrainingReport, State));
    }

    internal Onnx.ModelProto BuildOnnx(OnnxGraphFlavor flavor)
    {
        return WithStudent((student, _) =>
        {
            NonFiniteGuard.EnsureFinite(student, "export or save this model");
            var info = new StudentExportInfo(FeatureColumnName, _label.ClassNames, _alpha, _beta, Mode, _options.InputPreprocessing,
                student.Backbone.ImageShape ?? _options.ImageShape);
            return StudentOnnxExporter.Build(student, info, flavor);
        });
    }

    /// <summary>
    /// Picks <see cref="Alpha"/> and <see cref="Beta"/> on labeled validation rows (label and feature columns as
    /// in training): the student runs once over the rows, then every grid point is evaluated on the cached
    /// head logits. Sets the best pair on this model and returns the whole grid.
    /// </summary>
    public AlphaBetaSearchResult TuneAlphaBeta(IDataView validationData, float[]? alphaGrid = null, float[]? betaGrid = null)
    {
        ArgumentNullException.ThrowIfNull(validationData);
        if (!_twoHeads)
            throw new InvalidOperationException($"This model was trained in {Mode} mode with one head; there is no alpha/beta to tune.");
        var label = LabelInfo.FromSchema(validationData.Schema, _label.ColumnName, minimumClasses: 1);
        var map = label.MapOnto(_label, nameof(validationData), "Validation");
        GetOutputSchema(validationData.Schema); // checks the feature column
        var rows = TrainingSet.ReadLabeledOnly(validationData, _columns, FitCancellation.None, map);
        return TuneAlphaBeta(rows, alphaGrid ?? DualHeadDefaults.AlphaGrid, betaGrid ?? DualHeadDefaults.BetaGrid, FitCancellation.None);
    }

    internal AlphaBetaSearchResult TuneAlphaBeta(TrainingSet rows, float[] alphaGrid, float[] betaGrid, FitCancellation cancel)
    {
        if (alphaGrid.Length == 0 || alphaGrid.Any(a => !(a >= 0 && a <= 1))) throw new ArgumentOutOfRangeException(nameof(alphaGrid), "Alpha values must be in [0, 1].");
        if (betaGrid.Length == 0 || betaGrid.Any(b => !(b > 0) || float.IsInfinity(b))) throw new ArgumentOutOfRangeException(nameof(betaGrid), "Beta values must be finite and > 0.");
        var (ce, kd) = WithStudent((_, scorer) => scorer.ScoreAll(rows.Features, rows.Rows, ScoringBatchSize, cancel));
        var result = AlphaBetaSearch.Run(ce, kd, rows.Labels, _label.ClassCount, alphaGrid, betaGrid, cancel);
        Alpha = result.Alpha;
        Beta = result.Beta;
        return result;
    }

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        int size = VectorColumn.RequireFloatVector(inputSchema, FeatureColumnName, nameof(FeatureColumnName), "Feature");
        if (size != InputSize)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Feature column '{FeatureColumnName}' has {size} values per row; the model was trained on {InputSize}.");
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
        var onnx = StudentOnnxExporter.ToBytes(BuildOnnx(OnnxGraphFlavor.MLNet));
        var chain = PersistedScoringChain.Build(onnx, FeatureColumnName, InputSize, _label.ClassNames);
        try
        {
            ((ICanSaveModel)chain).Save(ctx);
        }
        finally
        {
            chain.Dispose();
        }
    }

    /// <summary>Frees everything without keeping the weights: for a model that Fit never returns (cancelled or failed after training).</summary>
    internal void Discard()
    {
        lock (_scorerLock)
        {
            _onnxScorer?.Retire();
            _onnxScorer = null;
            _student?.Dispose();
            _student = null;
            _studentScorer = null;
            _releasedWeights = null;
        }
    }

    /// <summary>
    /// Releases the native memory now: the ONNX Runtime session (at once, or when the last open cursor closes) and
    /// the TorchSharp student (its weights are kept in managed memory). Never throws. The model stays usable and
    /// rebuilds what it needs on next use — see the remarks on the class for why (PredictionEngine disposes the
    /// model it was created from).
    /// </summary>
    public void Dispose()
    {
        lock (_scorerLock)
        {
            _onnxScorer?.Retire(); // disposed now, or when the last open cursor is disposed
            _onnxScorer = null;
            if (_studentUsers > 0) _releasePending = true; // released when the running export/tuning/checkpoint ends
            else ReleaseStudent();
        }
    }

    /// <summary>Copies the weights out and disposes the TorchSharp student (under the lock, with no lease out).</summary>
    private void ReleaseStudent()
    {
        _releasePending = false;
        if (_student is not { } student) return;
        try
        {
            using var weights = new MemoryStream();
            student.save(weights);
            _releasedWeights = weights.ToArray();
        }
        catch (Exception)
        {
            return; // the weights could not be copied out: keep the student (and its memory) rather than lose them
        }
        student.Dispose();
        _student = null;
        _studentScorer = null;
    }
}
