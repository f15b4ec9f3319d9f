using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Data;
using Microsoft.ML.DualHeadDistillation.Inference;
using Microsoft.ML.DualHeadDistillation.MLNet;
using Microsoft.ML.DualHeadDistillation.Students;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// The fitted DHO student. Adds <c>Score</c> (combined probabilities, slot names = class names),
/// <c>PredictedLabel</c> (key typed, with the label's key values), <c>CeHeadProbabilities</c> and
/// <c>KdHeadProbabilities</c>. <see cref="Alpha"/> and <see cref="Beta"/> can be changed at any time
/// without retraining. Owns native TorchSharp memory: dispose it when done.
/// </summary>
public sealed class DualHeadDistillTransformer : ITransformer, IDisposable
{
    private readonly DualHeadStudent _student;
    private readonly TrainingColumns _columns;
    private readonly LabelInfo _label;
    private float _alpha, _beta;
    private bool _disposed;

    internal DualHeadDistillTransformer(DualHeadStudent student, Device device, TrainingColumns columns,
        float alpha, float beta, int scoringBatchSize, DualHeadTrainingReport report)
    {
        _student = student;
        _columns = columns;
        _label = columns.Label;
        FeatureColumnName = columns.FeatureColumn;
        Alpha = alpha;
        Beta = beta;
        ScoringBatchSize = scoringBatchSize;
        TrainingReport = report;
        Scorer = new StudentScorer(student, device);
    }

    /// <summary>Weight of the CE head in Score, in [0, 1]. 1 uses the CE head alone, 0 the KD head alone. A single-head model keeps 1.</summary>
    public float Alpha
    {
        get => _alpha;
        set
        {
            if (!(value is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(Alpha), value, "Alpha must be in [0, 1].");
            if (value != 1 && _student is { HasTwoHeads: false })
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
    public long StudentParameters => _student.ParameterCount;
    /// <summary>The TorchSharp student (for inspection; the transformer owns it).</summary>
    public DualHeadStudent Student { get { ThrowIfDisposed(); return _student; } }

    internal StudentScorer Scorer { get; }
    internal int InputSize => _student.Backbone.InputSize;

    /// <summary>
    /// Picks <see cref="Alpha"/> and <see cref="Beta"/> on labeled validation rows (label and feature columns as
    /// in training): the student runs once over the rows, then every grid point is evaluated on the cached
    /// head logits. Sets the best pair on this model and returns the whole grid.
    /// </summary>
    public AlphaBetaSearchResult TuneAlphaBeta(IDataView validationData, float[]? alphaGrid = null, float[]? betaGrid = null)
    {
        ArgumentNullException.ThrowIfNull(validationData);
        ThrowIfDisposed();
        if (!_student.HasTwoHeads)
            throw new InvalidOperationException($"This model was trained in {Mode} mode with one head; there is no alpha/beta to tune.");
        var label = LabelInfo.FromSchema(validationData.Schema, _label.ColumnName);
        if (label.ClassCount != _label.ClassCount)
            throw new ArgumentOutOfRangeException(nameof(validationData), $"Validation label column '{_label.ColumnName}' has {label.ClassCount} classes; the model has {_label.ClassCount}.");
        GetOutputSchema(validationData.Schema); // checks the feature column
        var rows = TrainingSet.ReadLabeledOnly(validationData, _columns, CancellationToken.None);
        return TuneAlphaBeta(rows, alphaGrid ?? DualHeadDefaults.AlphaGrid, betaGrid ?? DualHeadDefaults.BetaGrid);
    }

    internal AlphaBetaSearchResult TuneAlphaBeta(TrainingSet rows, float[] alphaGrid, float[] betaGrid)
    {
        if (alphaGrid.Length == 0 || alphaGrid.Any(a => !(a >= 0 && a <= 1))) throw new ArgumentOutOfRangeException(nameof(alphaGrid), "Alpha values must be in [0, 1].");
        if (betaGrid.Length == 0 || betaGrid.Any(b => !(b > 0) || float.IsInfinity(b))) throw new ArgumentOutOfRangeException(nameof(betaGrid), "Beta values must be finite and > 0.");
        var (ce, kd) = Scorer.ScoreAll(rows.Features, rows.Rows, ScoringBatchSize);
        var result = AlphaBetaSearch.Run(ce, kd, rows.Labels, _label.ClassCount, alphaGrid, betaGrid);
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
        ThrowIfDisposed();
        return new ScoredDataView(this, input);
    }

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ThrowIfDisposed();
        return new ScoringRowMapper(this, inputSchema);
    }

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException("DualHeadDistillTransformer cannot be saved with mlContext.Model.Save yet: ML.NET's loader registry for third-party transformers is internal. Persistence through an exported ONNX graph is planned (see docs/architecture.md, 'Save, load and export').");

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _student.Dispose();
    }
}
