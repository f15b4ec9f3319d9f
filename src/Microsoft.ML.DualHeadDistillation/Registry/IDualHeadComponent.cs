namespace Microsoft.ML.DualHeadDistillation;

/// <summary>What every registered component (backbone, objective, batch source) says about itself.</summary>
public interface IDualHeadComponent
{
    /// <summary>The name options refer to it by (case-insensitive).</summary>
    string Name { get; }
    /// <summary>One line for listings (a command-line tool's "what can I train").</summary>
    string Summary { get; }
}

/// <summary>
/// Marks a component class (a public parameterless constructor) for registration by
/// <see cref="DualHeadRegistry.RegisterAssembly"/>; the library's own components carry it, so adding one is one file.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class DualHeadComponentAttribute : Attribute;
