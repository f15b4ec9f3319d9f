namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>Writes a file whole or not at all: to a temporary file beside it, then renamed over the target.</summary>
internal static class AtomicFile
{
    public static void Write(string path, ReadOnlySpan<byte> bytes)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"The directory of '{path}' does not exist.");
        var temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            // Check what was written before it replaces anything (a full disk or a failing device is caught here).
            if (!File.ReadAllBytes(temp).AsSpan().SequenceEqual(bytes))
                throw new IOException($"The data written to '{temp}' for '{path}' did not read back identically; '{path}' was left as it was.");
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    public static void Write(string path, Action<Stream> write)
    {
        using var buffer = new MemoryStream();
        write(buffer);
        Write(path, buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }
}
