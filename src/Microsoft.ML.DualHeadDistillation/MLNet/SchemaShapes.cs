using System.Reflection;

namespace Microsoft.ML.DualHeadDistillation.MLNet;

/// <summary>
/// SchemaShape helpers. ML.NET 5 keeps <c>SchemaShape.Create(DataViewSchema)</c> and the column constructor
/// internal, so a third-party estimator cannot describe new columns publicly; this calls the internal
/// factory once, by reflection, with a clear error if its shape ever changes.
/// </summary>
internal static class SchemaShapes
{
    private static readonly MethodInfo? s_create =
        typeof(SchemaShape).GetMethod("Create", BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public, [typeof(DataViewSchema)]);

    public static SchemaShape FromSchema(DataViewSchema schema)
    {
        if (s_create?.Invoke(null, [schema]) is SchemaShape shape) return shape;
        throw new InvalidOperationException("This ML.NET version has no SchemaShape.Create(DataViewSchema); DualHeadDistill cannot describe its output columns before Fit.");
    }

    public static bool TryFind(SchemaShape shape, string name, out SchemaShape.Column column)
    {
        // Later columns hide earlier ones of the same name, as in DataViewSchema.
        for (int i = shape.Count - 1; i >= 0; i--)
        {
            if (shape[i].Name == name)
            {
                column = shape[i];
                return true;
            }
        }
        column = default;
        return false;
    }
}
