namespace Microsoft.ML.DualHeadDistillation.Specs;

/// <summary>Names the <see cref="DualHeadDistillOptions"/> property a spec field comes from, so errors about the field name the option to change.</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Parameter)]
public sealed class SpecOptionAttribute(string option) : Attribute
{
    /// <summary>The option's name.</summary>
    public string Option { get; } = option;
}
