namespace Microsoft.ML.DualHeadDistillation.Data;

/// <summary>The validated binding of the three training columns to a data schema.</summary>
internal sealed class TrainingColumns
{
    private TrainingColumns(LabelInfo label, string featureColumn, int featureSize, string? teacherColumn, TeacherAlignment? teacher)
    {
        Label = label;
        FeatureColumn = featureColumn;
        FeatureSize = featureSize;
        TeacherColumn = teacherColumn;
        Teacher = teacher;
    }

    public LabelInfo Label { get; }
    public string FeatureColumn { get; }
    public int FeatureSize { get; }
    /// <summary>Null when the mode needs no teacher (SupervisedOnly) and the data has none.</summary>
    public string? TeacherColumn { get; }
    public TeacherAlignment? Teacher { get; }
    public int ClassCount => Label.ClassCount;

    /// <summary>The columns a fitted model needs to score and re-tune (label and features; no teacher).</summary>
    public static TrainingColumns ForScoring(LabelInfo label, string featureColumn, int featureSize) => new(label, featureColumn, featureSize, null, null);

    /// <summary>Binds the label, feature and (when <paramref name="usesTeacher"/>) teacher columns.</summary>
    public static TrainingColumns Bind(DataViewSchema schema, DualHeadDistillOptions options, bool usesTeacher)
    {
        var label = LabelInfo.FromSchema(schema, options.LabelColumnName);
        int featureSize = VectorColumn.RequireFloatVector(schema, options.FeatureColumnName, nameof(options.FeatureColumnName), "Feature");
        if (!usesTeacher)
            return new TrainingColumns(label, options.FeatureColumnName, featureSize, null, null); // labels only: any teacher column is ignored
        int teacherSize = VectorColumn.RequireFloatVector(schema, options.TeacherColumnName, nameof(options.TeacherColumnName), "Teacher");
        var names = VectorColumn.SlotNames(schema[options.TeacherColumnName]);
        var alignment = TeacherAlignment.Create(options.TeacherColumnName, teacherSize, names, label);
        return new TrainingColumns(label, options.FeatureColumnName, featureSize, options.TeacherColumnName, alignment);
    }
}
