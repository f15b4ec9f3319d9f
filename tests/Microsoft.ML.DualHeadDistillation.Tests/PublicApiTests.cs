using System.Reflection;
using System.Text;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// The library's public surface as a checked-in listing (PublicApi.txt): a change of surface is a visible diff. When a
/// change is meant, the failing test writes the new listing beside the test binaries; copy it over PublicApi.txt.
/// docs/architecture.md lists every public type with a sentence.
/// </summary>
[TestClass]
public sealed class PublicApiTests
{
    private static readonly Assembly Library = typeof(DualHeadModel).Assembly;
    private static string ListingPath => Path.Combine(TorchVisionFixtures.RepositoryRoot(), "tests", "Microsoft.ML.DualHeadDistillation.Tests", "PublicApi.txt");

    internal static IEnumerable<Type> PublicTypes() => Library.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal);

    private static string Name(Type t) => t.IsByRef ? Name(t.GetElementType()!) + "&" : t.IsArray ? Name(t.GetElementType()!) + "[]" : t.IsGenericType
        ? $"{(t.IsNested ? Name(t.DeclaringType!) + "." : t.Namespace + ".")}{t.Name[..t.Name.IndexOf('`')]}<{string.Join(", ", t.GetGenericArguments().Select(Name))}>"
        : t.IsGenericParameter ? t.Name : t.IsNested ? $"{Name(t.DeclaringType!)}.{t.Name}" : t.FullName ?? t.Name;

    private static string Kind(Type t) => t.IsEnum ? "enum" : t.IsInterface ? "interface" : t.IsValueType ? "struct"
        : typeof(Delegate).IsAssignableFrom(t) ? "delegate" : t.IsAbstract && t.IsSealed ? "static class" : t.IsAbstract ? "abstract class" : t.IsSealed ? "sealed class" : "class";

    private static string Parameters(ParameterInfo[] ps) => string.Join(", ", ps.Select(p => $"{Name(p.ParameterType)} {p.Name}{(p.HasDefaultValue ? " = …" : "")}"));

    internal static string Listing()
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var sb = new StringBuilder();
        foreach (var t in PublicTypes())
        {
            var bases = new[] { t.BaseType }.Where(b => b is not null && b != typeof(object) && b != typeof(ValueType) && b != typeof(Enum)).Select(b => Name(b!))
                .Concat(t.GetInterfaces().Where(i => i.IsPublic).Select(Name).Order(StringComparer.Ordinal));
            sb.Append(Kind(t)).Append(' ').Append(Name(t));
            if (bases.Any()) sb.Append(" : ").Append(string.Join(", ", bases));
            sb.Append('\n');
            if (t.IsEnum)
            {
                foreach (var n in Enum.GetNames(t)) sb.Append("  ").Append(n).Append('\n');
                continue;
            }
            var members = new List<string>();
            foreach (var m in t.GetMembers(flags))
            {
                bool visible = m switch
                {
                    MethodBase b => (b.IsPublic || b.IsFamily || b.IsFamilyOrAssembly) && !b.IsSpecialName || b is ConstructorInfo { IsPublic: true } or ConstructorInfo { IsFamily: true },
                    PropertyInfo p => p.GetMethod is { IsPublic: true } or { IsFamily: true } || p.SetMethod is { IsPublic: true } or { IsFamily: true },
                    FieldInfo f => (f.IsPublic || f.IsFamily) && !f.IsSpecialName,
                    EventInfo e => e.AddMethod is { IsPublic: true },
                    _ => false,
                };
                if (!visible || m.Name.StartsWith('<')) continue;
                members.Add(m switch
                {
                    ConstructorInfo c => $"{(c.IsStatic ? "static " : "")}.ctor({Parameters(c.GetParameters())})",
                    MethodInfo mi => $"{(mi.IsStatic ? "static " : mi.IsAbstract ? "abstract " : mi.IsVirtual && mi.GetBaseDefinition() == mi ? "virtual " : "")}{Name(mi.ReturnType)} {mi.Name}{(mi.IsGenericMethod ? $"<{string.Join(", ", mi.GetGenericArguments().Select(Name))}>" : "")}({Parameters(mi.GetParameters())})",
                    PropertyInfo p => $"{Name(p.PropertyType)} {p.Name} {{ {(p.GetMethod is { IsPublic: true } or { IsFamily: true } ? "get; " : "")}{(p.SetMethod is { IsPublic: true } or { IsFamily: true } ? (p.SetMethod.ReturnParameter.GetRequiredCustomModifiers().Any(x => x.Name == "IsExternalInit") ? "init; " : "set; ") : "")}}}",
                    FieldInfo f => $"{(f.IsLiteral ? "const " : f.IsStatic ? "static " : "")}{(f.IsInitOnly ? "readonly " : "")}{Name(f.FieldType)} {f.Name}",
                    EventInfo e => $"event {Name(e.EventHandlerType!)} {e.Name}",
                    _ => m.Name,
                });
            }
            foreach (var m in members.Order(StringComparer.Ordinal)) sb.Append("  ").Append(m).Append('\n');
        }
        return sb.ToString();
    }

    [TestMethod]
    public void ThePublicSurfaceIsTheCheckedInListing()
    {
        string actual = Listing();
        string expected = File.Exists(ListingPath) ? File.ReadAllText(ListingPath).ReplaceLineEndings("\n") : "";
        if (actual == expected) return;
        string written = Path.Combine(AppContext.BaseDirectory, "PublicApi.actual.txt");
        File.WriteAllText(written, actual);
        var a = actual.Split('\n');
        var e = expected.Split('\n');
        var added = a.Except(e).Take(15).ToArray();
        var removed = e.Except(a).Take(15).ToArray();
        Assert.Fail($"The public surface changed. Added:\n  {string.Join("\n  ", added)}\nRemoved:\n  {string.Join("\n  ", removed)}\n" +
            $"If it is meant: cp {written} {ListingPath}, and list new types in docs/architecture.md (Public types).");
    }

    [TestMethod]
    public void TheArchitectureDocListsEveryPublicTypeWithASentence()
    {
        string doc = File.ReadAllText(Path.Combine(TorchVisionFixtures.RepositoryRoot(), "docs", "architecture.md"));
        int section = doc.IndexOf("## Public types", StringComparison.Ordinal);
        Assert.IsTrue(section >= 0, "docs/architecture.md has a 'Public types' section");
        string listed = doc[section..];
        var missing = PublicTypes().Select(t => t.IsGenericType ? t.Name[..t.Name.IndexOf('`')] : t.Name).Distinct()
            .Where(n => !listed.Contains($"`{n}`", StringComparison.Ordinal) && !listed.Contains($"`{n}<", StringComparison.Ordinal)).ToArray();
        Assert.AreEqual(0, missing.Length, $"public types without a line in docs/architecture.md's Public types: {string.Join(", ", missing)}");
    }
}
