using Microsoft.ML.Data;

namespace Microsoft.ML.DualHeadDistillation.Data;

/// <summary>
/// The training rows materialised once, in row order: features [N, D], teacher logits [N, K] in label
/// key order, and the 0-based class of each row (-1 for unlabeled). Reading the IDataView once means an
/// upstream teacher transform runs once per row per Fit, and batches are gathered from memory.
/// </summary>
internal sealed class TrainingSet
{
    private TrainingSet(float[] features, float[] teacher, int[] labels, int featureSize, int classCount, Images.SampleStore? store = null)
    {
        Features = features;
        Teacher = teacher;
        Labels = labels;
        FeatureSize = featureSize;
        ClassCount = classCount;
        LabeledRows = labels.Where(l => l >= 0).Count();
        Store = store;
    }

    /// <summary>
    /// Training rows kept on disk (images): labels in memory, pixels and teacher logits read per sample from
    /// <paramref name="store"/>; <paramref name="featureSize"/> is the student's input size (the crop).
    /// </summary>
    public static TrainingSet FromStore(Images.SampleStore store, int featureSize, int classCount, Training.FitCancellation cancel,
        Teachers.CropTeacher? onlineTeacher = null, int teacherViews = 1)
    {
        var set = new TrainingSet([], [], store.ReadLabels(cancel), featureSize, classCount, store) { OnlineTeacher = onlineTeacher, TeacherViews = teacherViews };
        if (set.Rows == 0)
            throw new ArgumentException("The training data has no rows; expected labeled rows (and, for distillation, unlabeled ones).", "data");
        if (set.LabeledRows == 0)
            throw new ArgumentException($"The training data has {set.Rows} rows but none is labeled: every value of the label column is the missing key. Expected at least one labeled row for the CE head.", "data");
        return set;
    }

    /// <summary>[N, D] features in memory (empty for store-backed rows).</summary>
    public float[] Features { get; }
    /// <summary>[N, K] teacher logits in memory (empty without a teacher, or for store-backed rows).</summary>
    public float[] Teacher { get; }
    /// <summary>The disk-backed samples (image columns), or null for rows in memory.</summary>
    public Images.SampleStore? Store { get; }
    public bool HasTeacher => OnlineTeacher is not null || (Store is { } s ? s.Layout.TeacherValues > 0 : Teacher.Length > 0);
    /// <summary>SameCropOnline: the teacher that labels each batch's crops (the store holds no teacher logits).</summary>
    public Teachers.CropTeacher? OnlineTeacher { get; init; }
    /// <summary>CachedViews: V, the teacher views stored per row (1 otherwise).</summary>
    public int TeacherViews { get; init; } = 1;
    public int[] Labels { get; }
    public int FeatureSize { get; }
    public int ClassCount { get; }
    public int Rows => Labels.Length;
    public int LabeledRows { get; }
    public int UnlabeledRows => Rows - LabeledRows;

    /// <summary>
    /// The teacher's arg-max accuracy (first view) on the labeled rows: what it says of the rows whose answer is known.
    /// Null when the teacher runs online on crops (nothing stored) or there is none.
    /// </summary>
    public Diagnosis.Proportion? TeacherAccuracyOnLabels(Training.FitCancellation cancel)
    {
        if (!HasTeacher || OnlineTeacher is not null || LabeledRows == 0) return null;
        int k = ClassCount, stride = k * TeacherViews, correct = 0, seen = 0;
        var record = Store is { } store ? new byte[store.Layout.RecordSize] : null;
        for (int row = 0; row < Rows; row++)
        {
            if (Labels[row] < 0) continue;
            if ((seen++ & 1023) == 0) cancel.ThrowIfRequested();
            ReadOnlySpan<float> logits;
            if (Store is { } s)
            {
                s.Read(row, record);
                logits = Images.SampleStore.Teacher(record, s.Layout)[..k];
            }
            else logits = Teacher.AsSpan(row * stride, k);
            int best = 0;
            for (int c = 1; c < k; c++) if (logits[c] > logits[best]) best = c;
            if (best == Labels[row]) correct++;
        }
        return new Diagnosis.Proportion(correct, seen);
    }

    public int[] LabeledIndices() => Enumerable.Range(0, Rows).Where(i => Labels[i] >= 0).ToArray();
    public int[] UnlabeledIndices() => Enumerable.Range(0, Rows).Where(i => Labels[i] < 0).ToArray();

    /// <summary>Reads training rows (features, teacher, label) and checks every value.</summary>
    /// <remarks>With <paramref name="statistics"/>, every row's features are also added to it (input standardisation).</remarks>
    public static TrainingSet Read(IDataView data, TrainingColumns columns, TeacherOutputKind teacherKind, Training.FitCancellation cancel, FeatureStatistics? statistics = null)
    {
        var set = ReadRows(data, columns, columns.TeacherColumn, teacherKind, cancel, null, statistics);
        if (set.Rows == 0)
            throw new ArgumentException("The training data has no rows; expected labeled rows (and, for distillation, unlabeled ones).", nameof(data));
        if (set.LabeledRows == 0)
            throw new ArgumentException($"The training data has {set.Rows} rows but none is labeled: every value of label column '{columns.Label.ColumnName}' is the missing key. Expected at least one labeled row for the CE head.", nameof(data));
        return set;
    }

    /// <summary>
    /// Reads evaluation rows (features and label only; no teacher). <paramref name="labelMap"/> (from
    /// <see cref="LabelInfo.MapOnto"/>) turns the data's own keys into the training classes.
    /// </summary>
    public static TrainingSet ReadLabeledOnly(IDataView data, TrainingColumns columns, Training.FitCancellation cancel, int[]? labelMap = null)
        => ReadRows(data, columns, null, TeacherOutputKind.Logits, cancel, labelMap, null);

    private static TrainingSet ReadRows(IDataView data, TrainingColumns columns, string? teacherColumn, TeacherOutputKind teacherKind, Training.FitCancellation cancel, int[]? labelMap, FeatureStatistics? statistics)
    {
        var schema = data.Schema;
        var labelCol = schema[columns.Label.ColumnName];
        var featCol = schema[columns.FeatureColumn];
        var input = columns.Input.Bind(schema, labelMap is null ? "FeatureColumnName" : "ValidationData", labelMap is null ? "Feature" : "Validation feature");
        var active = new List<DataViewSchema.Column> { labelCol, featCol };
        DataViewSchema.Column? teacherCol = teacherColumn is null ? null : schema[teacherColumn];
        if (teacherCol is { } tc) active.Add(tc);

        int d = columns.FeatureSize, k = columns.ClassCount;
        var features = new GrowableFloats(d);
        var teacher = new GrowableFloats(k);
        var labels = new List<int>();
        var teacherRaw = new float[k];

        using var cursor = data.GetRowCursor(active);
        var labelGetter = cursor.GetGetter<uint>(labelCol);
        var featReader = input.Bind(cursor);
        var teacherGetter = teacherCol is { } t ? cursor.GetGetter<VBuffer<float>>(t) : null;
        VBuffer<float> tbuf = default;
        uint key = 0;
        long row = 0;
        int[] slotForClass = columns.Teacher?.SlotForClass ?? [];
        while (cursor.MoveNext())
        {
            cancel.ThrowIfRequested(); // per row: an upstream teacher may take long per row
            labelGetter(ref key);
            int keyCount = labelMap?.Length ?? k;
            if (key > keyCount)
                throw new ArgumentOutOfRangeException(labelMap is null ? "LabelColumnName" : "ValidationData",
                    $"Row {row} of {(labelMap is null ? "" : "validation ")}label column '{labelCol.Name}' holds key {key}, outside 1..{keyCount}.");
            labels.Add(key == 0 ? -1 : labelMap is null ? (int)key - 1 : labelMap[key - 1]);

            var fdst = features.AppendRow();
            featReader.Read(row, fdst);
            for (int j = 0; j < d; j++)
            {
                if (!float.IsFinite(fdst[j]))
                    throw new ArgumentOutOfRangeException("FeatureColumnName", $"Row {row}, slot {j} of feature column '{featCol.Name}' is {fdst[j]}; expected finite values.");
            }
            statistics?.Add(fdst);

            if (teacherGetter is not null)
            {
                teacherGetter(ref tbuf);
                if (teacherRaw.Length != tbuf.Length) teacherRaw = new float[tbuf.Length];
                VectorColumn.CopyDense(tbuf, teacherRaw);
                var tdst = teacher.AppendRow();
                for (int c = 0; c < k; c++)
                {
                    float v = teacherRaw[slotForClass[c]];
                    tdst[c] = ToLogit(v, teacherKind, row, slotForClass[c], teacherCol!.Value.Name);
                }
            }
            row++;
        }
        return new TrainingSet(features.ToArray(), teacherGetter is null ? [] : teacher.ToArray(), labels.ToArray(), d, k);
    }

    internal static float ToLogit(float v, TeacherOutputKind kind, long row, int slot, string column)
    {
        if (!float.IsFinite(v))
            throw new ArgumentOutOfRangeException("TeacherColumnName", $"Row {row}, slot {slot} of teacher column '{column}' is {v}; expected finite teacher {(kind == TeacherOutputKind.Logits ? "logits" : "probabilities")}.");
        if (kind == TeacherOutputKind.Logits) return v;
        if (v < 0 || v > 1.0001f)
            throw new ArgumentOutOfRangeException("TeacherColumnName", $"Row {row}, slot {slot} of teacher column '{column}' is {v}; TeacherOutput is Probabilities, so values must be in [0, 1].");
        return MathF.Log(MathF.Max(v, 1e-12f));
    }

    /// <summary>A row-major float buffer that grows by doubling.</summary>
    private sealed class GrowableFloats(int rowSize)
    {
        private float[] _data = new float[Math.Max(rowSize, 1) * 1024];
        private int _rows;

        public Span<float> AppendRow()
        {
            if ((long)(_rows + 1) * rowSize > _data.Length)
            {
                long grown = Math.Min((long)_data.Length * 2, Array.MaxLength);
                if (grown < (long)(_rows + 1) * rowSize) throw new InvalidOperationException("The training data does not fit in one array.");
                Array.Resize(ref _data, (int)grown);
            }
            var span = _data.AsSpan(_rows * rowSize, rowSize);
            _rows++;
            return span;
        }

        public float[] ToArray() => _data.AsSpan(0, _rows * rowSize).ToArray();
    }
}
