using System.Collections.Concurrent;

namespace Microsoft.ML.DualHeadDistillation;

/// <summary>Components of one kind by name (case-insensitive). Thread-safe.</summary>
public sealed class ComponentRegistry<T> where T : class, IDualHeadComponent
{
    private readonly ConcurrentDictionary<string, T> _items = new(StringComparer.OrdinalIgnoreCase);
    private readonly string _kind, _option;

    internal ComponentRegistry(string kind, string option)
    {
        _kind = kind;
        _option = option;
    }

    /// <summary>
    /// Adds <paramref name="component"/> under its <see cref="IDualHeadComponent.Name"/>. Registering the same
    /// component type again under the same name does nothing; another type under a taken name is an error
    /// (pass <paramref name="replace"/> to replace it on purpose).
    /// </summary>
    public void Register(T component, bool replace = false)
    {
        ArgumentNullException.ThrowIfNull(component);
        string name = component.Name;
        if (string.IsNullOrWhiteSpace(name) || name.Trim() != name)
            throw new ArgumentException($"A {_kind} needs a non-empty name without surrounding spaces; {component.GetType().FullName} has '{name}'.", nameof(component));
        if (replace)
        {
            _items[name] = component;
            return;
        }
        var existing = _items.GetOrAdd(name, component);
        if (!ReferenceEquals(existing, component) && existing.GetType() != component.GetType())
            throw new ArgumentException($"A {_kind} named '{name}' is already registered ({existing.GetType().FullName}); choose another name for {component.GetType().FullName} or pass replace: true.", nameof(component));
    }

    /// <summary>Removes the component named <paramref name="name"/>; false when there was none.</summary>
    public bool Unregister(string name) => _items.TryRemove(name, out _);

    /// <summary>The component named <paramref name="name"/>, if registered.</summary>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out T? component)
    {
        component = null;
        return name is not null && _items.TryGetValue(name, out component);
    }

    /// <summary>The component named <paramref name="name"/>; an unknown name is an error naming the option and listing the registered ones.</summary>
    public T Get(string name) => TryGet(name, out var c) ? c
        : throw new ArgumentOutOfRangeException(_option, name, $"No {_kind} named '{name}' is registered; registered {_kind}s: {string.Join(", ", Names)}. Register your own with DualHeadRegistry.");

    /// <summary>Registered names, sorted.</summary>
    public IReadOnlyList<string> Names => _items.Keys.Order(StringComparer.OrdinalIgnoreCase).ToArray();

    /// <summary>Registered components, sorted by name.</summary>
    public IReadOnlyList<T> All => _items.OrderBy(p => p.Key, StringComparer.OrdinalIgnoreCase).Select(p => p.Value).ToArray();
}
