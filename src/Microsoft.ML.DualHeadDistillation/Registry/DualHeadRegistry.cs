using TeacherDefinition = Microsoft.ML.DualHeadDistillation.Teachers.TeacherDefinition;
using TeacherSpec = Microsoft.ML.DualHeadDistillation.Teachers.TeacherSpec;
using System.Reflection;
using Microsoft.ML.DualHeadDistillation.Objectives;
using Microsoft.ML.DualHeadDistillation.Students;
using Microsoft.ML.DualHeadDistillation.Training.Batches;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>
/// The registries of student backbones, training objectives and batch sources (as timm registers models and
/// torchdistill registers losses). Options name a component (<see cref="DualHeadDistillOptions.Backbone"/>,
/// <see cref="DualHeadDistillOptions.Objective"/>, <see cref="DualHeadDistillOptions.BatchSource"/>); Fit looks it
/// up here. The library's own components are registered on first use; register yours before Fit:
/// <code>DualHeadRegistry.Backbones.Register(new MyBackboneDefinition());</code>
/// or mark them <see cref="DualHeadComponentAttribute"/> and call <see cref="RegisterAssembly"/>.
/// </summary>
public static class DualHeadRegistry
{
    /// <summary>Student backbones (<see cref="BackboneDefinition"/>), named by <see cref="DualHeadDistillOptions.Backbone"/>.</summary>
    public static ComponentRegistry<BackboneDefinition> Backbones { get; } = new("backbone", nameof(DualHeadDistillOptions.Backbone));
    /// <summary>Training objectives (<see cref="TrainingObjective"/>), named by <see cref="DualHeadDistillOptions.Objective"/>.</summary>
    public static ComponentRegistry<TrainingObjective> Objectives { get; } = new("training objective", nameof(DualHeadDistillOptions.Objective));
    /// <summary>Batch sources (<see cref="BatchSourceDefinition"/>), named by <see cref="DualHeadDistillOptions.BatchSource"/>.</summary>
    public static ComponentRegistry<BatchSourceDefinition> BatchSources { get; } = new("batch source", nameof(DualHeadDistillOptions.BatchSource));

    /// <summary>Teacher kinds (<see cref="TeacherDefinition"/>), named by <see cref="TeacherSpec.Kind"/>.</summary>
    public static ComponentRegistry<TeacherDefinition> Teachers { get; } = new("teacher kind", nameof(TeacherSpec.Kind));

    static DualHeadRegistry() => RegisterAssembly(typeof(DualHeadRegistry).Assembly);

    /// <summary>Registers every class of <paramref name="assembly"/> marked <see cref="DualHeadComponentAttribute"/>; returns how many.</summary>
    public static int RegisterAssembly(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        int count = 0;
        foreach (var type in assembly.GetTypes().Where(t => t.GetCustomAttribute<DualHeadComponentAttribute>() is not null).OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            if (type.IsAbstract || type.GetConstructor(Type.EmptyTypes) is null)
                throw new InvalidOperationException($"{type.FullName} is marked [DualHeadComponent] but is abstract or has no public parameterless constructor.");
            switch (Activator.CreateInstance(type))
            {
                case BackboneDefinition b: Backbones.Register(b); break;
                case TrainingObjective o: Objectives.Register(o); break;
                case BatchSourceDefinition s: BatchSources.Register(s); break;
                case TeacherDefinition t: Teachers.Register(t); break;
                default: throw new InvalidOperationException($"{type.FullName} is marked [DualHeadComponent] but is not a BackboneDefinition, TrainingObjective, BatchSourceDefinition or TeacherDefinition.");
            }
            count++;
        }
        return count;
    }
}
