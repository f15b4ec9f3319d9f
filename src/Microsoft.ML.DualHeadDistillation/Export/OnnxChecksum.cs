using System.Security.Cryptography;
using Google.Protobuf;
using Onnx;

namespace Microsoft.ML.DualHeadDistillation.Export;

/// <summary>
/// An integrity check carried inside every ONNX graph we write: metadata entry <c>dualhead.sha256</c> holds the
/// SHA-256 of the serialised model without that entry (weights, nodes and every other metadata entry). The entry
/// is appended to those exact bytes as one more <c>metadata_props</c> field (protobuf merges repeated fields on
/// concatenation), so <see cref="Verify"/> hashes the stored bytes themselves, not a re-serialisation: a flipped
/// bit anywhere is an error at load, and fields this version does not know cannot upset the check.
/// </summary>
internal static class OnnxChecksum
{
    public const string Key = "dualhead.sha256";

    /// <summary>Serialises <paramref name="model"/> and appends its checksum entry (which is also added to the object).</summary>
    public static byte[] Seal(ModelProto model)
    {
        Remove(model);
        byte[] body = model.ToByteArray();
        var entry = new StringStringEntryProto { Key = Key, Value = Hash(body) };
        byte[] tail = Fragment(entry);
        model.MetadataProps.Add(entry);
        var sealedBytes = new byte[body.Length + tail.Length];
        body.CopyTo(sealedBytes, 0);
        tail.CopyTo(sealedBytes, body.Length);
        return sealedBytes;
    }

    public enum Result
    {
        /// <summary>The checksum matches.</summary>
        Valid,
        /// <summary>The graph carries no checksum (not written by this library, or by a version before checksums).</summary>
        Absent,
        /// <summary>The graph's bytes differ from what was written (or are not an ONNX model: then the model is null).</summary>
        Mismatch,
    }

    /// <summary>Checks serialised ONNX bytes against the checksum they carry.</summary>
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
        byte[] tail = Fragment(entry);
        if (onnx.EndsWith(tail) && string.Equals(Hash(onnx[..^tail.Length]), entry.Value, StringComparison.Ordinal)) return Result.Valid;
        return Result.Mismatch;
    }

    /// <summary>The bytes of a ModelProto holding only <paramref name="entry"/>: one metadata_props field.</summary>
    private static byte[] Fragment(StringStringEntryProto entry)
    {
        var only = new ModelProto();
        only.MetadataProps.Add(entry.Clone());
        return only.ToByteArray();
    }

    /// <summary>Removes the checksum entry (before a graph is rewritten and sealed again).</summary>
    public static void Strip(ModelProto model) => Remove(model);

    private static void Remove(ModelProto model)
    {
        for (int i = model.MetadataProps.Count - 1; i >= 0; i--)
            if (model.MetadataProps[i].Key == Key) model.MetadataProps.RemoveAt(i);
    }

    private static string Hash(ReadOnlySpan<byte> bytes) => Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();
}
