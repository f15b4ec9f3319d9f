using System.Buffers.Binary;
using System.IO.Compression;
using Microsoft.ML.DualHeadDistillation.Export;

namespace Microsoft.ML.DualHeadDistillation.MLNet.Persistence;

/// <summary>
/// Checks a saved ML.NET model zip before ML.NET reads it: every entry against the CRC-32 the zip records, and
/// every ONNX graph ML.NET stored (<c>.../OnnxModel</c>: an int32 length, then the ONNX bytes) against the SHA-256
/// our exporter seals into it (<see cref="OnnxChecksum"/>). The zip must hold at least one DualHeadDistill student.
/// </summary>
internal static class SavedModelVerifier
{
    private const string OnnxEntryName = "OnnxModel";

    /// <summary>Throws <see cref="InvalidDataException"/> naming <paramref name="source"/> when the bytes are damaged or hold no student.</summary>
    public static void Verify(byte[] zipBytes, string source) => StudentMetadata(zipBytes, source);

    /// <summary>As <see cref="Verify"/>, returning the metadata of the (first) student graph in the zip.</summary>
    public static Dictionary<string, string> StudentMetadata(byte[] zipBytes, string source)
    {
        int students = 0;
        Dictionary<string, string>? first = null;
        try
        {
            using var zip = new ZipArchive(new MemoryStream(zipBytes, writable: false), ZipArchiveMode.Read);
            foreach (var entry in zip.Entries)
            {
                byte[] bytes = Read(entry);
                if (System.IO.Hashing.Crc32.HashToUInt32(bytes) != entry.Crc32)
                    throw new InvalidDataException($"{Describe(source)} is damaged: zip entry '{entry.FullName}' does not match its CRC-32 (the file changed after it was written).");
                if (entry.Name != OnnxEntryName) continue;
                if (bytes.Length < 4 || BinaryPrimitives.ReadInt32LittleEndian(bytes) != bytes.Length - 4)
                    throw new InvalidDataException($"{Describe(source)} is damaged: zip entry '{entry.FullName}' is not a length-prefixed ONNX model.");
                switch (OnnxChecksum.Verify(bytes.AsSpan(4), out var model))
                {
                    case OnnxChecksum.Result.Mismatch when model is null:
                        throw new InvalidDataException($"{Describe(source)} is damaged: zip entry '{entry.FullName}' does not hold a readable ONNX graph.");
                    case OnnxChecksum.Result.Mismatch:
                        throw new InvalidDataException($"{Describe(source)} is damaged: the student's ONNX graph in '{entry.FullName}' does not match the SHA-256 it was saved with.");
                    // A student saved before graphs carried checksums (Absent) is accepted on the zip's CRC-32 alone.
                    case OnnxChecksum.Result.Valid or OnnxChecksum.Result.Absent when model!.MetadataProps.Any(p => p.Key == StudentOnnxMetadata.ModelKey && p.Value == StudentOnnxMetadata.ModelValue):
                        students++;
                        first ??= model!.MetadataProps.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.Ordinal);
                        break;
                }
            }
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(Describe(source), StringComparison.Ordinal))
        {
            throw new InvalidDataException($"Could not load an ML.NET model from {Describe(source)}: the file is truncated, corrupted or not a model saved with mlContext.Model.Save ({e.Message})", e);
        }
        if (students == 0)
            throw new InvalidDataException($"{Describe(source)} is an ML.NET model zip but holds no DualHeadDistill student (no ONNX graph sealed by this library). Load other models with mlContext.Model.Load.");
        return first!;
    }

    private static byte[] Read(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var buffer = new MemoryStream(entry.Length is > 0 and < int.MaxValue ? (int)entry.Length : 0);
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    internal static string Describe(string source) => source.StartsWith("the ", StringComparison.Ordinal) ? source : $"'{source}'";
}
