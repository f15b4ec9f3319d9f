namespace Microsoft.ML.DualHeadDistillation.Data;

/// <summary>
/// Maps the teacher's output slots onto the label's classes. When the teacher column carries class
/// names (slot names) they are matched, case-insensitively, to the label's key values and the logits are
/// reordered into key order; without slot names the teacher's order is taken to be the key order.
/// </summary>
internal sealed class TeacherAlignment
{
    private TeacherAlignment(int[] slotForClass, bool reordered)
    {
        SlotForClass = slotForClass;
        Reordered = reordered;
    }

    /// <summary>SlotForClass[c] is the teacher slot that holds class c (0-based key order).</summary>
    public int[] SlotForClass { get; }
    public bool Reordered { get; }

    public static TeacherAlignment Create(string teacherColumn, int teacherSize, string[]? teacherNames, LabelInfo label)
    {
        if (teacherSize != label.ClassCount)
            throw new ArgumentOutOfRangeException("TeacherColumnName",
                $"Teacher column '{teacherColumn}' has {teacherSize} values per row but label column '{label.ColumnName}' has {label.ClassCount} classes; expected one teacher logit per class.");
        var identity = Enumerable.Range(0, teacherSize).ToArray();
        if (teacherNames is null) return new TeacherAlignment(identity, false);

        var bySlot = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (int s = 0; s < teacherNames.Length; s++)
        {
            if (!bySlot.TryAdd(teacherNames[s].Trim(), s))
                throw new ArgumentOutOfRangeException("TeacherColumnName", $"Teacher column '{teacherColumn}' names class '{teacherNames[s]}' twice in its slot names.");
        }
        var map = new int[label.ClassCount];
        for (int c = 0; c < label.ClassCount; c++)
        {
            if (!bySlot.TryGetValue(label.ClassNames[c].Trim(), out map[c]))
                throw new ArgumentOutOfRangeException("TeacherColumnName",
                    $"Label class '{label.ClassNames[c]}' (key {c + 1}) has no slot in teacher column '{teacherColumn}'. Teacher slot names: [{string.Join(", ", teacherNames)}]; label classes: [{string.Join(", ", label.ClassNames)}].");
        }
        return new TeacherAlignment(map, !map.SequenceEqual(identity));
    }
}
