using System.Linq.Expressions;
using System.Reflection;

namespace Microsoft.ML.DualHeadDistillation.Training;

/// <summary>
/// The two ways a user stops a Fit: <see cref="DualHeadDistillOptions.CancellationToken"/> and
/// <c>mlContext.CancelExecution()</c>. ML.NET keeps the latter's flag (<c>IsCanceled</c> on the host) internal,
/// so it is read through a compiled accessor. Checked once per row while reading, once per step while
/// training and once per batch while scoring validation rows or searching alpha/beta.
/// </summary>
internal sealed class FitCancellation
{
    public static readonly FitCancellation None = new(CancellationToken.None, null);

    private readonly Func<bool>? _hostCanceled;

    public FitCancellation(CancellationToken token, object? host)
    {
        Token = token;
        _hostCanceled = host is null ? null : HostFlag(host);
    }

    public CancellationToken Token { get; }

    /// <summary>True once either way of stopping was used.</summary>
    public bool IsRequested => Token.IsCancellationRequested || _hostCanceled?.Invoke() == true;

    public void ThrowIfRequested()
    {
        Token.ThrowIfCancellationRequested();
        if (_hostCanceled?.Invoke() == true)
            throw new OperationCanceledException("DualHeadDistill was stopped: MLContext.CancelExecution() was called.");
    }

    /// <summary>A delegate reading the host's public-in-an-internal-class <c>IsCanceled</c> property, or null when ML.NET has none.</summary>
    private static Func<bool>? HostFlag(object host)
    {
        var property = host.GetType().GetProperty("IsCanceled", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance);
        if (property?.PropertyType != typeof(bool) || property.GetMethod is null) return null;
        var target = Expression.Constant(host);
        return Expression.Lambda<Func<bool>>(Expression.Property(Expression.Convert(target, property.DeclaringType!), property)).Compile();
    }
}
