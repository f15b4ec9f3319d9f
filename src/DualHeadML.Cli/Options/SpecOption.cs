using System.CommandLine;
using System.CommandLine.Parsing;

namespace DualHeadML.Cli.Options;

/// <summary>
/// One command-line option declared once: its flag, the spec setting it fills (the path errors are named by), its help,
/// its default (read from a default spec, so from DualHeadDefaults) and how its value goes into the spec.
/// </summary>
public abstract class SpecOption<TSpec>
{
    /// <summary>The flag, e.g. --labeled.</summary>
    public abstract string Flag { get; }
    /// <summary>The spec setting, e.g. Labeled or Teacher.OnnxPath; null for an option that is not a setting.</summary>
    public abstract string? Path { get; }
    public abstract Option Option { get; }
    /// <summary>The spec with this option's value, when it was given or has a default.</summary>
    public abstract TSpec Apply(TSpec spec, ParseResult parse);
}

/// <summary>An option of type <typeparamref name="TValue"/> that sets one setting of <typeparamref name="TSpec"/>.</summary>
public sealed class SpecOption<TSpec, TValue> : SpecOption<TSpec>
{
    private readonly Option<TValue> _option;
    private readonly Func<TSpec, TValue, TSpec> _set;

    public SpecOption(string flag, string? path, string help, Func<TSpec, TValue, TSpec> set, Func<TValue>? defaultValue = null,
        string? helpName = null, Func<ArgumentResult, TValue?>? parse = null, string[]? aliases = null, string[]? only = null)
    {
        _option = new Option<TValue>(flag, aliases ?? []) { Description = help, HelpName = helpName };
        if (defaultValue is not null) _option.DefaultValueFactory = _ => defaultValue();
        if (parse is not null) _option.CustomParser = r => parse(r)!;
        if (only is not null) _option.AcceptOnlyFromAmong(only);
        _set = set;
        Flag = flag;
        Path = path;
    }

    public override string Flag { get; }
    public override string? Path { get; }
    public override Option Option => _option;

    public override TSpec Apply(TSpec spec, ParseResult parse)
    {
        var result = parse.GetResult(_option);
        if (result is null) return spec; // not given and no default: the spec's own value stays
        return _set(spec, parse.GetValue(_option)!);
    }
}

/// <summary>A command's options as one table: added to the command, read into a spec, and the names errors use.</summary>
public sealed class SpecOptionTable<TSpec> : List<SpecOption<TSpec>>
{
    public void AddTo(Command command)
    {
        foreach (var o in this) command.Add(o.Option);
    }

    public TSpec Read(ParseResult parse, TSpec spec)
    {
        foreach (var o in this) spec = o.Apply(spec, parse);
        return spec;
    }

    /// <summary>Setting path to flag, for <see cref="Microsoft.ML.DualHeadDistillation.Runs.RunInputNames"/>.</summary>
    public IEnumerable<KeyValuePair<string, string>> Names => this.Where(o => o.Path is not null).Select(o => KeyValuePair.Create(o.Path!, o.Flag));

    /// <summary>As <see cref="Names"/>, but an option given by an alias (--student for --backbone) is named as it was typed.</summary>
    public IEnumerable<KeyValuePair<string, string>> NamesAsTyped(ParseResult parse) => this.Where(o => o.Path is not null)
        .Select(o => KeyValuePair.Create(o.Path!, parse.GetResult(o.Option) is OptionResult { Implicit: false, IdentifierToken: { } token } ? token.Value : o.Flag));
}
