using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>A component name that options hold (compared case-insensitively).</summary>
public interface IComponentName<TSelf> where TSelf : struct, IComponentName<TSelf>
{
    /// <summary>The registered name.</summary>
    string Name { get; }
    /// <summary>The name as this type.</summary>
    static abstract TSelf FromName(string name);
}

/// <summary>
/// The student backbone: a name registered in <see cref="DualHeadRegistry.Backbones"/>. The built-in ones are
/// <see cref="Mlp"/> and <see cref="SmallCnn"/>; any string converts, so <c>Backbone = "MyNet"</c> selects a backbone
/// you registered.
/// </summary>
[JsonConverter(typeof(ComponentNameJsonConverter<DualHeadBackbone>))]
public readonly struct DualHeadBackbone(string name) : IEquatable<DualHeadBackbone>, IComponentName<DualHeadBackbone>
{
    /// <summary>Fully connected layers over a plain feature vector.</summary>
    public static DualHeadBackbone Mlp => new("Mlp");
    /// <summary>conv3x3(C->32) ReLU maxpool2, conv3x3(32->64) ReLU maxpool2, Linear(->hidden) ReLU, over pixels with a [C,H,W] shape.</summary>
    public static DualHeadBackbone SmallCnn => new("SmallCnn");

    public string Name { get; } = name ?? "";
    public static DualHeadBackbone FromName(string name) => new(name);
    public static implicit operator DualHeadBackbone(string name) => new(name);
    public bool Equals(DualHeadBackbone other) => string.Equals(Name, other.Name, StringComparison.OrdinalIgnoreCase);
    public override bool Equals(object? obj) => obj is DualHeadBackbone other && Equals(other);
    public override int GetHashCode() => StringComparer.OrdinalIgnoreCase.GetHashCode(Name);
    public static bool operator ==(DualHeadBackbone a, DualHeadBackbone b) => a.Equals(b);
    public static bool operator !=(DualHeadBackbone a, DualHeadBackbone b) => !a.Equals(b);
    public override string ToString() => Name;
}

/// <summary>
/// What the student learns from: a training objective registered in <see cref="DualHeadRegistry.Objectives"/>.
/// Built in: <see cref="DualHead"/> (DHO), <see cref="SingleHeadKd"/> and <see cref="SupervisedOnly"/>; comparisons
/// between them differ in nothing else. Any string converts, so <c>Objective = "MyObjective"</c> selects one you registered.
/// </summary>
[JsonConverter(typeof(ComponentNameJsonConverter<DualHeadTrainingMode>))]
public readonly struct DualHeadTrainingMode(string name) : IEquatable<DualHeadTrainingMode>, IComponentName<DualHeadTrainingMode>
{
    /// <summary>DHO: h_CE on the labels, h_KD on the teacher, a shared backbone.</summary>
    public static DualHeadTrainingMode DualHead => new("DualHead");
    /// <summary>One head trained on lambda*CE + (1-lambda)*KD (the paper's "CE+KD (logit)" baseline).</summary>
    public static DualHeadTrainingMode SingleHeadKd => new("SingleHeadKd");
    /// <summary>One head trained with CE on the labeled rows only, for the same number of steps; no teacher needed.</summary>
    public static DualHeadTrainingMode SupervisedOnly => new("SupervisedOnly");

    public string Name { get; } = name ?? "";
    public static DualHeadTrainingMode FromName(string name) => new(name);
    public static implicit operator DualHeadTrainingMode(string name) => new(name);
    public bool Equals(DualHeadTrainingMode other) => string.Equals(Name, other.Name, StringComparison.OrdinalIgnoreCase);
    public override bool Equals(object? obj) => obj is DualHeadTrainingMode other && Equals(other);
    public override int GetHashCode() => StringComparer.OrdinalIgnoreCase.GetHashCode(Name);
    public static bool operator ==(DualHeadTrainingMode a, DualHeadTrainingMode b) => a.Equals(b);
    public static bool operator !=(DualHeadTrainingMode a, DualHeadTrainingMode b) => !a.Equals(b);
    public override string ToString() => Name;
}

/// <summary>Writes a component name as a JSON string (as the enums these names replaced were written).</summary>
public sealed class ComponentNameJsonConverter<T> : JsonConverter<T> where T : struct, IComponentName<T>
{
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String ? T.FromName(reader.GetString()!)
        : throw new JsonException($"Expected a {typeof(T).Name} name as a string; got {reader.TokenType}.");

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(value.Name);
}
