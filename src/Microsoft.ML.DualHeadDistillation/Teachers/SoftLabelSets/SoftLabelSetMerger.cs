using System.Security.Cryptography;
using System.Text.Json;

namespace Microsoft.ML.DualHeadDistillation.Teachers;

/// <summary>
/// Checks a folder of shard files and merges them into a soft-label set: every shard 0..N-1 present, one teacher
/// fingerprint, one input listing, every shard's rows plus skipped rows equal to its share of the input, every row's
/// checksum, and no row id twice. Writes <c>soft-labels.index</c> (the rows sorted by id hash, for the trainer) and
/// <c>manifest.json</c>, each atomically. Errors name the shard file and say what to do.
/// </summary>
internal static class SoftLabelSetMerger
{
    /// <summary>Merges the shards in <paramref name="directory"/>; returns the manifest written.</summary>
    public static SoftLabelSetManifest Merge(string directory, CancellationToken cancel = default)
    {
        directory = Path.GetFullPath(directory);
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"Soft-label folder '{directory}' was not found.");
        var files = Directory.EnumerateFiles(directory, "*.parquet").Where(f => !Path.GetFileName(f).StartsWith('.')).OrderBy(f => f, StringComparer.Ordinal).ToList();
        var stray = files.Where(f => !SoftLabelShard.TryParseFileName(Path.GetFileName(f), out _)).ToList();
        if (stray.Count > 0)
            throw new InvalidDataException($"'{stray[0]}' is not named like a shard file (shard-IIIII-of-NNNNN.parquet); the folder of a labeling job holds its shards only.");
        if (files.Count == 0)
            throw new InvalidDataException($"Soft-label folder '{directory}' holds no shard files (shard-IIIII-of-NNNNN.parquet): run dualhead label --shard I/N into it first.");

        var readers = new List<SoftLabelShardReader>();
        try
        {
            foreach (var file in files)
            {
                cancel.ThrowIfCancellationRequested();
                var reader = SoftLabelShardReader.Open(file);
                readers.Add(reader);
                SoftLabelShard.TryParseFileName(Path.GetFileName(file), out var named);
                if (reader.Shard != named)
                    throw new InvalidDataException($"Soft-label shard '{file}' says it is shard {reader.Shard} in its metadata but is named as shard {named}; it was renamed. Delete it and run shard {named} again.");
            }
            CheckSet(directory, readers);
            return Write(directory, readers, cancel);
        }
        finally
        {
            foreach (var r in readers) r.Dispose();
        }
    }

    private static void CheckSet(string directory, List<SoftLabelShardReader> readers)
    {
        var counts = readers.GroupBy(r => r.Shard.Count).ToList();
        if (counts.Count > 1)
        {
            var odd = counts.OrderBy(g => g.Count()).First().First();
            throw new InvalidDataException($"Soft-label shard '{odd.FilePath}' is one of {odd.Shard.Count} shards, the others of {counts.OrderByDescending(g => g.Count()).First().Key}: the folder mixes two labeling jobs. Delete the files of the other job.");
        }
        int n = counts[0].Key;
        var missing = Enumerable.Range(0, n).Except(readers.Select(r => r.Shard.Index)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"Soft-label folder '{directory}' lacks {missing.Count} of {n} shards: expected {string.Join(", ", missing.Take(5).Select(i => $"'{SoftLabelShard.FileNameOf(i, n)}'"))}{(missing.Count > 5 ? ", …" : "")}. Run those shards (dualhead label --shard I/{n}) and merge again.");
        var reference = readers.GroupBy(r => r.Info.TeacherFingerprint).OrderByDescending(g => g.Count()).First().First();
        foreach (var r in readers)
        {
            if (r.Info.TeacherFingerprint != reference.Info.TeacherFingerprint)
                throw new InvalidDataException($"Soft-label shard '{r.FilePath}' was labeled by another teacher (fingerprint {r.Info.TeacherFingerprint[..12]}…) than '{reference.FilePath}' ({reference.Info.TeacherFingerprint[..12]}…): model, preprocessing, classes or prompts differ. Delete it and run shard {r.Shard} again with the set's teacher.");
            if (!r.Info.ClassNames.SequenceEqual(reference.Info.ClassNames) || r.Info.EmbeddingSize != reference.Info.EmbeddingSize)
                throw new InvalidDataException($"Soft-label shard '{r.FilePath}' has classes [{string.Join(", ", r.Info.ClassNames)}] and embedding size {r.Info.EmbeddingSize}; '{reference.FilePath}' has [{string.Join(", ", reference.Info.ClassNames)}] and {reference.Info.EmbeddingSize}. Run every shard with the same options.");
            if (r.Info.InputFingerprint != reference.Info.InputFingerprint || r.Info.InputRows != reference.Info.InputRows)
                throw new InvalidDataException($"Soft-label shard '{r.FilePath}' labeled another input listing ({r.Info.InputRows} rows) than '{reference.FilePath}' ({reference.Info.InputRows} rows): images were added, removed or renamed between the shards' runs. Run it again on the same input.");
            if (r.Rows + r.Skipped.Count != r.Info.ShardInputRows)
                throw new InvalidDataException($"Soft-label shard '{r.FilePath}' holds {r.Rows} rows and {r.Skipped.Count} skipped, but {r.Info.ShardInputRows} input rows belong to shard {r.Shard}. Delete it and run the shard again.");
        }
        long total = readers.Sum(r => r.Info.ShardInputRows);
        if (total != reference.Info.InputRows)
            throw new InvalidDataException($"The shards in '{directory}' cover {total} input rows; the input has {reference.Info.InputRows}. A shard was run on another listing; run them again on the same input.");
    }

    private static SoftLabelSetManifest Write(string directory, List<SoftLabelShardReader> readers, CancellationToken cancel)
    {
        var first = readers[0];
        int k = first.ClassCount;
        long rows = readers.Sum(r => r.Rows);
        // Each file's hash from the handle its rows are read from: a shard rewritten during the merge is not mixed in.
        var fileHashes = readers.ToDictionary(r => r, r => r.FileSha256(cancel));
        var listing = new SoftLabelRowIds.ListingSum(); // the input listing, recomputed from every labeled and skipped row
        foreach (var r in readers)
            foreach (var s in r.Skipped)
            {
                if (!r.Shard.Owns(s.RowId)) throw new InvalidDataException($"Soft-label shard '{r.FilePath}' lists skipped row '{s.RowId}', which belongs to another shard.");
                listing.Add(s.RowId);
            }
        string indexPath = Path.Combine(directory, SoftLabelIndex.FileName);
        string temp = Path.Combine(directory, $".{SoftLabelIndex.FileName}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        string indexSha;
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                var header = SoftLabelIndex.Header(k, rows, first.Info.TeacherFingerprint);
                stream.Write(header);
                sha.AppendData(header);
                var record = new byte[SoftLabelIndex.RecordSize(k)];
                // A k-way merge of the shards' hash-ordered rows: one row group per shard in memory at a time.
                var cursors = readers.Select(r => r.VerifiedRows(cancel).GetEnumerator()).ToList();
                try
                {
                    var queue = new PriorityQueue<int, (ulong, string)>(Comparer<(ulong Hash, string Id)>.Create((a, b) => a.Hash != b.Hash ? a.Hash.CompareTo(b.Hash) : string.CompareOrdinal(a.Id, b.Id)));
                    for (int s = 0; s < cursors.Count; s++)
                        if (cursors[s].MoveNext()) queue.Enqueue(s, (cursors[s].Current.Hash, cursors[s].Current.RowId));
                    ulong? last = null;
                    string lastId = "", lastFile = "";
                    long written = 0;
                    while (queue.TryDequeue(out int s, out var key))
                    {
                        var (hash, id, group, r) = cursors[s].Current;
                        if (last == hash)
                            throw new InvalidDataException(id == lastId
                                ? $"Row id '{id}' is in both '{lastFile}' and '{readers[s].FilePath}'."
                                : $"Row ids '{lastId}' ('{lastFile}') and '{id}' ('{readers[s].FilePath}') have the same 64-bit hash; rename one of the files.");
                        listing.Add(id);
                        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(record, hash);
                        for (int c = 0; c < k; c++) System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(record.AsSpan(8 + 4 * c), group.Logits[r * k + c]);
                        stream.Write(record);
                        sha.AppendData(record);
                        (last, lastId, lastFile) = (hash, id, readers[s].FilePath);
                        if (++written % 65536 == 0) cancel.ThrowIfCancellationRequested();
                        if (cursors[s].MoveNext()) queue.Enqueue(s, (cursors[s].Current.Hash, cursors[s].Current.RowId));
                    }
                    if (written != rows) throw new InvalidDataException($"The shards in '{directory}' gave {written} rows; their metadata says {rows}.");
                    if (listing.ToString() != first.Info.InputFingerprint)
                        throw new InvalidDataException($"The labeled and skipped rows of the shards in '{directory}' are not the input listing the shards were made from (a row missing, extra, or both labeled and skipped). Run the shards again.");
                }
                finally
                {
                    foreach (var c in cursors) c.Dispose();
                }
                stream.Flush(flushToDisk: true);
                indexSha = Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
            }
            File.Move(temp, indexPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }

        var manifest = new SoftLabelSetManifest
        {
            TeacherFingerprint = first.Info.TeacherFingerprint,
            Teacher = first.Info.TeacherDescription,
            Classes = first.Info.ClassNames,
            EmbeddingSize = first.Info.EmbeddingSize,
            Rows = rows,
            InputRows = first.Info.InputRows,
            InputFingerprint = first.Info.InputFingerprint,
            Skipped = readers.SelectMany(r => r.Skipped).OrderBy(s => s.RowId, StringComparer.Ordinal).ToArray(),
            Shards = readers.OrderBy(r => r.Shard.Index).Select(r => new SoftLabelSetManifest.ShardEntry(Path.GetFileName(r.FilePath), r.Shard.Index, r.Rows, r.Skipped.Count, fileHashes[r])).ToArray(),
            Index = new SoftLabelSetManifest.IndexEntry(SoftLabelIndex.FileName, new FileInfo(indexPath).Length, indexSha),
        };
        Export.AtomicFile.Write(Path.Combine(directory, SoftLabelSetManifest.FileName), JsonSerializer.SerializeToUtf8Bytes(manifest, SoftLabelSetManifest.Json));
        return manifest;
    }
}
