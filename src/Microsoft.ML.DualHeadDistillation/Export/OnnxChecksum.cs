using System.Security.Cryptography;
using Google.Protobuf;
using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>
/// An integrity check carried inside every ONNX graph we write: metadata entry <c>dualhead.sha256</c> holds the
/// SHA-256 of the serialised model with that entry absent (weights, nodes and every other metadata entry).
/// <see cref="Verify"/> recomputes it, so a flipped bit anywhere in the graph is an error at load instead of a
/// silently different model.
/// </summary>
internal static class OnnxChecksum
{
    public const string Key = "dualhead.sha256";

    /// <summary>Adds (or replaces) the checksum entry and returns the serialised model.</summary>
    public static byte[] Seal(ModelProto model)
    {
        Remove(model);
        string hash = Hash(model.ToByteArray());
        model.MetadataProps.Add(new StringStringEntryProto { Key = Key, Value = hash });
        return model.ToByteArray();
    }

    public enum Result
    {
        /// <summary>The checksum matches.</summary>
        Valid,
        /// <summary>The graph carries no checksum (not written by this library, or by a version before checksums).</summary>
        Absent,
        /// <summary>The graph's bytes differ from what was written.</summary>
        Mismatch,
    }

    /// <summary>Checks serialised ONNX bytes against the checksum they carry. Bytes that are not a model give <see cref="Result.Mismatch"/>.</summary>
    public static Result Verify(ReadOnlySpan<byte> onnx, out ModelProto? model)
    {
        model = null;
        try
        {
            model = ModelProto.Parser.ParseFrom(onnx);
        }
        catch (InvalidProtocolBufferException)
        {
            return Result.Mismatch;
        }
        var entry = model.MetadataProps.LastOrDefault(p => p.Key == Key);
        if (entry is null) return Result.Absent;
        var copy = model.Clone();
        Remove(copy);
        return string.Equals(Hash(copy.ToByteArray()), entry.Value, StringComparison.Ordinal) ? Result.Valid : Result.Mismatch;
    }

    private static void Remove(ModelProto model)
    {
        for (int i = model.MetadataProps.Count - 1; i >= 0; i--)
            if (model.MetadataProps[i].Key == Key) model.MetadataProps.RemoveAt(i);
    }

    private static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();
}
