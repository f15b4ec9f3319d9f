using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation.Inference;

namespace Microsoft.ML.DualHeadDistillation.Diagnosis;

/// <summary>
/// Will distillation pay off here? Measured on the labeled rows before any training, from the teacher's outputs
/// alone (no student, seconds): the teacher's accuracy and where it errs, and a verdict.
/// The rule, in order (thresholds in <see cref="DiagnosisThresholds"/>):
/// <list type="number">
/// <item>skill = (accuracy - 1/K) / (1 - 1/K) below 0.3: <b>SupervisedOnly</b>, the teacher is near chance and KD would teach noise;</item>
/// <item>a true class sent to one other class on at least 25 % (and 3) of its rows: <b>DualHead</b>, the CE head keeps
/// what the labels say where the teacher is systematically wrong, the KD head takes the rest;</item>
/// <item>accuracy at least 80 % and no such pair: <b>SingleHeadKd</b>, the teacher is right nearly everywhere;</item>
/// <item>otherwise <b>DualHead</b>: a middling teacher, errors spread out.</item>
/// </list>
/// </summary>
public static class DualHeadDiagnosis
{
    /// <summary>
    /// Diagnoses a teacher from its outputs on labeled rows (<paramref name="labeledTeacher"/> [N, K] in
    /// <paramref name="classes"/> order, <paramref name="labels"/> 0-based) and, optionally, on unlabeled rows ([M, K]).
    /// </summary>
    public static TeacherDiagnosis Assess(ReadOnlySpan<float> labeledTeacher, int[] labels, IReadOnlyList<string> classes, ReadOnlySpan<float> unlabeledTeacher = default,
        TeacherOutputKind kind = TeacherOutputKind.Logits, DiagnosisThresholds? thresholds = null)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(classes);
        thresholds ??= new DiagnosisThresholds();
        int k = classes.Count, n = labels.Length;
        if (k < 2) throw new ArgumentException($"The diagnosis needs at least 2 classes; got {k}.", nameof(classes));
        if (n == 0) throw new ArgumentException("The diagnosis needs labeled rows; there are none.", nameof(labels));
        if (labeledTeacher.Length != n * k) throw new ArgumentException($"The teacher's outputs on the labeled rows hold {labeledTeacher.Length} values; expected {n} rows x {k} classes = {n * k}.", nameof(labeledTeacher));
        if (unlabeledTeacher.Length % k != 0) throw new ArgumentException($"The teacher's outputs on the unlabeled rows hold {unlabeledTeacher.Length} values, not a multiple of {k} classes.", nameof(unlabeledTeacher));
        for (int i = 0; i < n; i++)
            if (labels[i] < 0 || labels[i] >= k) throw new ArgumentOutOfRangeException(nameof(labels), $"Label of row {i} is {labels[i]}; expected a class index 0..{k - 1}.");

        var confusion = Enumerable.Range(0, k).Select(_ => new int[k]).ToArray();
        var probabilities = new float[k];
        var binCount = new int[10];
        var binCorrect = new int[10];
        var binConfidence = new double[10];
        double confidence = 0, entropy = 0;
        int correct = 0;
        for (int i = 0; i < n; i++)
        {
            var row = labeledTeacher.Slice(i * k, k);
            int predicted = Distribution(row, kind, probabilities, $"labeled row {i}");
            confusion[labels[i]][predicted]++;
            bool right = predicted == labels[i];
            if (right) correct++;
            float top = probabilities[predicted];
            int bin = Math.Min(9, (int)(top * 10));
            binCount[bin]++;
            binConfidence[bin] += top;
            if (right) binCorrect[bin]++;
            confidence += top;
            entropy += Entropy(probabilities);
        }
        double ece = 0;
        for (int b = 0; b < 10; b++)
            if (binCount[b] > 0) ece += (double)binCount[b] / n * Math.Abs((double)binCorrect[b] / binCount[b] - binConfidence[b] / binCount[b]);

        int m = unlabeledTeacher.Length / k;
        double unlabeledEntropy = 0;
        for (int i = 0; i < m; i++)
        {
            Distribution(unlabeledTeacher.Slice(i * k, k), kind, probabilities, $"unlabeled row {i}");
            unlabeledEntropy += Entropy(probabilities);
        }

        var perClass = Enumerable.Range(0, k).Select(c => new ClassAgreement(classes[c], new Proportion(confusion[c][c], confusion[c].Sum()))).ToArray();
        var systematic = new List<TeacherConfusion>();
        for (int t = 0; t < k; t++)
            for (int p = 0; p < k; p++)
            {
                int rows = confusion[t].Sum();
                if (p == t || rows == 0) continue;
                var rate = new Proportion(confusion[t][p], rows);
                if (rate.Count >= thresholds.ConfusionRows && rate.Value >= thresholds.ConfusionRate) systematic.Add(new TeacherConfusion(classes[t], classes[p], rate));
            }
        systematic.Sort((a, b) => b.Rate.Value.CompareTo(a.Rate.Value));
        var warnings = perClass.Where(c => c.Agreement.Rows < thresholds.RowsPerClass)
            .Select(c => $"class '{c.Class}' has {c.Agreement.Rows} labeled image{(c.Agreement.Rows == 1 ? "" : "s")} (fewer than {thresholds.RowsPerClass}): its agreement is within ±{100 * 1.96 * Math.Sqrt(0.25 / Math.Max(1, c.Agreement.Rows)):0} points").ToArray();
        var diagnosis = new TeacherDiagnosis
        {
            Classes = classes.ToArray(),
            Accuracy = new Proportion(correct, n),
            PerClass = perClass,
            Confusion = confusion,
            SystematicConfusions = systematic,
            ExpectedCalibrationError = ece,
            MeanConfidence = confidence / n,
            LabeledEntropy = entropy / n,
            UnlabeledRows = m,
            UnlabeledEntropy = m == 0 ? double.NaN : unlabeledEntropy / m,
            Warnings = warnings,
            Verdict = null!,
        };
        return diagnosis with { Verdict = Decide(diagnosis, thresholds) };
    }

    /// <summary>
    /// Diagnoses a teacher from a data view: <paramref name="labeled"/> holds the label (a key, or text matched to
    /// <paramref name="classes"/>) and the teacher's column; <paramref name="unlabeled"/> (optional) the teacher's column.
    /// </summary>
    public static TeacherDiagnosis Assess(IDataView labeled, IReadOnlyList<string> classes, string labelColumnName = "Label", string teacherColumnName = "Teacher",
        IDataView? unlabeled = null, TeacherOutputKind kind = TeacherOutputKind.Logits, DiagnosisThresholds? thresholds = null)
    {
        ArgumentNullException.ThrowIfNull(labeled);
        ArgumentNullException.ThrowIfNull(classes);
        var (values, labels) = Read(labeled, classes, labelColumnName, teacherColumnName, nameof(labeled));
        var (others, _) = unlabeled is null ? ([], []) : Read(unlabeled, classes, null, teacherColumnName, nameof(unlabeled));
        return Assess(values, labels, classes, others, kind, thresholds);
    }

    private static (float[] Values, int[] Labels) Read(IDataView data, IReadOnlyList<string> classes, string? labelColumn, string teacherColumn, string name)
    {
        var teacher = data.Schema.GetColumnOrNull(teacherColumn)
            ?? throw new ArgumentException($"{name} has no teacher column '{teacherColumn}' (columns: {string.Join(", ", data.Schema.Select(c => c.Name))}).", name);
        if (teacher.Type is not VectorDataViewType { ItemType: var item, Size: var size } || item != NumberDataViewType.Single || size != classes.Count)
            throw new ArgumentException($"{name}'s teacher column '{teacherColumn}' is {teacher.Type}; expected a vector of {classes.Count} floats (one per class).", name);
        DataViewSchema.Column? label = null;
        if (labelColumn is not null)
            label = data.Schema.GetColumnOrNull(labelColumn) ?? throw new ArgumentException($"{name} has no label column '{labelColumn}'.", name);
        var values = new List<float>();
        var labels = new List<int>();
        var columns = label is { } l ? new[] { teacher, l } : [teacher];
        using var cursor = data.GetRowCursor(columns);
        var getTeacher = cursor.GetGetter<VBuffer<float>>(teacher);
        Func<int>? getLabel = label is { } lc ? LabelReader(cursor, lc, classes, name) : null;
        VBuffer<float> buffer = default;
        while (cursor.MoveNext())
        {
            int y = getLabel?.Invoke() ?? 0;
            if (y < 0) continue; // an unlabeled row among the labeled: not evidence
            getTeacher(ref buffer);
            values.AddRange(buffer.DenseValues());
            labels.Add(y);
        }
        return (values.ToArray(), labels.ToArray());
    }

    private static Func<int> LabelReader(DataViewRowCursor cursor, DataViewSchema.Column label, IReadOnlyList<string> classes, string name)
    {
        if (label.Type is KeyDataViewType key)
        {
            if ((int)key.Count != classes.Count) throw new ArgumentException($"{name}'s label column '{label.Name}' is a key of {key.Count} values; expected {classes.Count} (the classes).", name);
            var get = cursor.GetGetter<uint>(label);
            return () => { uint v = 0; get(ref v); return (int)v - 1; };
        }
        if (label.Type is TextDataViewType)
        {
            var get = cursor.GetGetter<ReadOnlyMemory<char>>(label);
            return () =>
            {
                ReadOnlyMemory<char> v = default;
                get(ref v);
                string s = v.ToString();
                if (s.Length == 0) return -1;
                int c = classes.ToList().FindIndex(x => string.Equals(x, s, StringComparison.OrdinalIgnoreCase));
                return c >= 0 ? c : throw new ArgumentException($"{name}'s label column '{label.Name}' holds '{s}', which is none of the classes ({string.Join(", ", classes)}).", name);
            };
        }
        throw new ArgumentException($"{name}'s label column '{label.Name}' is {label.Type}; expected a key (MapValueToKey) or text.", name);
    }

    private static int Distribution(ReadOnlySpan<float> row, TeacherOutputKind kind, Span<float> probabilities, string where)
    {
        foreach (float v in row)
            if (!float.IsFinite(v)) throw new ArgumentException($"The teacher's output on {where} holds {v.ToString(CultureInfo.InvariantCulture)}; expected finite values.");
        if (kind == TeacherOutputKind.Probabilities)
        {
            double sum = 0;
            foreach (float v in row) sum += Math.Max(0, v);
            for (int c = 0; c < row.Length; c++) probabilities[c] = sum > 0 ? (float)(Math.Max(0, row[c]) / sum) : 1f / row.Length;
        }
        else HeadCombiner.Softmax(row, 1f, probabilities);
        int best = 0;
        for (int c = 1; c < row.Length; c++) if (probabilities[c] > probabilities[best]) best = c;
        return best;
    }

    private static double Entropy(ReadOnlySpan<float> p)
    {
        double h = 0;
        foreach (float v in p) if (v > 0) h -= v * Math.Log(v);
        return h / Math.Log(p.Length);
    }

    private static DistillationVerdict Decide(TeacherDiagnosis d, DiagnosisThresholds t)
    {
        var evidence = new List<string>
        {
            FormattableString.Invariant($"teacher {d.Accuracy} on your labels; chance is {d.ChanceAccuracy * 100:0.0} %, skill {d.Skill:0.00}"),
        };
        if (d.SystematicConfusions.Count > 0) evidence.Add("confuses " + string.Join("; ", d.SystematicConfusions.Take(3)));
        evidence.Add(FormattableString.Invariant($"mean confidence {d.MeanConfidence * 100:0.0} % (ECE {d.ExpectedCalibrationError:0.000})"));
        string acc = FormattableString.Invariant($"{d.Accuracy.Value * 100:0} %");
        if (d.Skill < t.WeakSkill)
            return new DistillationVerdict(DualHeadTrainingMode.SupervisedOnly, FormattableString.Invariant(
                $"teacher {acc} on your labels, near chance ({d.ChanceAccuracy * 100:0} %): distilling would teach noise; train on the labels (supervised)."), evidence);
        if (d.SystematicConfusions.Count > 0)
        {
            var worst = d.SystematicConfusions[0];
            return new DistillationVerdict(DualHeadTrainingMode.DualHead, FormattableString.Invariant(
                $"teacher {acc} on your labels, confuses {worst.True}->{worst.Predicted} {worst.Rate.Value * 100:0} % of the time: two heads recommended (the CE head keeps the labels where the teacher is wrong)."), evidence);
        }
        if (d.Accuracy.Value >= t.StrongAccuracy)
            return new DistillationVerdict(DualHeadTrainingMode.SingleHeadKd, FormattableString.Invariant(
                $"teacher {acc} on your labels with no class it systematically confuses: one head learning from the teacher (single-head KD) is expected to do as well as two."), evidence);
        return new DistillationVerdict(DualHeadTrainingMode.DualHead, FormattableString.Invariant(
            $"teacher {acc} on your labels, its errors spread over many classes: two heads recommended (the labels correct the teacher, the teacher adds the unlabeled images)."), evidence);
    }
}
