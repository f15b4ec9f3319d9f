namespace DualHeadML.Cli;

/// <summary>The tool's exit codes (README, "The dualhead tool"). Scripts can rely on them.</summary>
public static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Success = 0;
    /// <summary>Something unexpected failed (the message says what; please report it).</summary>
    public const int Failure = 1;
    /// <summary>The command line is wrong: an unknown option, a bad value, a missing required option.</summary>
    public const int UsageError = 2;
    /// <summary>The data is wrong: a missing folder, an empty class, no images, an unreadable image with --strict, a class the teacher does not know.</summary>
    public const int DataError = 3;
    /// <summary>A model, teacher or checkpoint file is missing, damaged or does not fit.</summary>
    public const int ModelError = 4;
    /// <summary>Training diverged (a non-finite loss or weight).</summary>
    public const int Diverged = 5;
    /// <summary>Stopped by Ctrl+C (SIGINT) or SIGTERM: a resumable checkpoint was written when training had started.</summary>
    public const int Cancelled = 130;
}

/// <summary>An error to show as one message, without a stack trace, with its exit code.</summary>
public sealed class UsageException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
