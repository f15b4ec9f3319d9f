using Microsoft.ML.DualHeadDistillation.Data.Images;

namespace Microsoft.ML.DualHeadDistillation.Data;

/// <summary>The validated binding of the three training columns to a data schema.</summary>
internal sealed class TrainingColumns
{
    private TrainingColumns(LabelInfo label, FeatureInput input, string? teacherColumn, TeacherAlignment? teacher)
    {
        Label = label;
        Input = input;
        TeacherColumn = teacherColumn;
        Teacher = teacher;
    }

    public LabelInfo Label { get; }
    /// <summary>The feature column and how its rows become the student's input.</summary>
    public FeatureInput Input { get; }
    public string FeatureColumn => Input.Column;
    public int FeatureSize => Input.Size;
    /// <summary>Null when the mode needs no teacher (SupervisedOnly) and the data has none.</summary>
    public string? TeacherColumn { get; }
    public TeacherAlignment? Teacher { get; }
    public int ClassCount => Label.ClassCount;

    /// <summary>The columns a fitted model needs to score and re-tune (label and features; no teacher).</summary>
    public static TrainingColumns ForScoring(LabelInfo label, FeatureInput input) => new(label, input, null, null);

    /// <summary>These columns with the feature input fixed by the run's spec (image settings).</summary>
    public TrainingColumns WithInput(FeatureInput input) => new(Label, input, TeacherColumn, Teacher);

    /// <summary>True when the feature column holds images (MLImage or encoded bytes).</summary>
    public static bool IsImageColumn(DataViewSchema schema, string column) =>
        schema.GetColumnOrNull(column) is { } c && ImageColumn.IsImageColumn(c.Type);

    /// <summary>
    /// Binds the label, feature and (when <paramref name="usesTeacher"/>) teacher columns. An image feature column
    /// reads as the student's [C, H, W] input (<see cref="DualHeadDistillOptions.ImageShape"/>); the image settings
    /// are fixed later by <see cref="WithInput"/>.
    /// </summary>
    public static TrainingColumns Bind(DataViewSchema schema, DualHeadDistillOptions options, bool usesTeacher)
    {
        var label = LabelInfo.FromSchema(schema, options.LabelColumnName);
        FeatureInput input;
        if (IsImageColumn(schema, options.FeatureColumnName))
        {
            if (options.ImageShape is not { Length: 3 } shape)
                throw new ArgumentOutOfRangeException(nameof(DualHeadDistillOptions.ImageShape),
                    $"Feature column '{options.FeatureColumnName}' holds images; set ImageShape to the [C, H, W] the student reads (for example [3, 64, 64]): images are stored at ImageStorageSize and cropped to it.");
            input = FeatureInput.Vector(options.FeatureColumnName, checked(shape[0] * shape[1] * shape[2]));
        }
        else
        {
            int featureSize = VectorColumn.RequireFloatVector(schema, options.FeatureColumnName, nameof(options.FeatureColumnName), "Feature");
            input = FeatureInput.Vector(options.FeatureColumnName, featureSize);
        }
        if (!usesTeacher)
            return new TrainingColumns(label, input, null, null); // labels only: any teacher column is ignored
        int teacherSize = VectorColumn.RequireFloatVector(schema, options.TeacherColumnName, nameof(options.TeacherColumnName), "Teacher");
        var names = VectorColumn.SlotNames(schema[options.TeacherColumnName]);
        var alignment = TeacherAlignment.Create(options.TeacherColumnName, teacherSize, names, label);
        return new TrainingColumns(label, input, options.TeacherColumnName, alignment);
    }
}
