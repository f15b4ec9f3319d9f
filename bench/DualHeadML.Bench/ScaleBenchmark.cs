using System.Diagnostics;
using System.Globalization;
using DualHeadML.Samples;
using DualHeadML.Samples.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DualHeadDistillation;
using Microsoft.ML.DualHeadDistillation.Datasets;
using Microsoft.ML.DualHeadDistillation.Teachers;

namespace DualHeadML.Bench;

/// <summary>
/// Scale-out of teacher labeling (docs/scale.md):
/// <list type="number">
/// <item>`dualhead label` on a folder of PNG files with a convolutional ONNX teacher at S x S: one worker process
/// (--shard 0/1) against two at once (--shard 0/2 and 1/2), each with one ONNX Runtime thread, alternating 1, 2, 1, 2; also
/// one worker with two threads, for reference. Rows per second of wall time, process start to last exit.</item>
/// <item>Whether the two workers' merged set is bit-identical to the one worker's (soft-labels.index compared byte by byte).</item>
/// <item>The shard writer's rate on synthetic rows, and the merge's.</item>
/// <item>A 10M-row synthetic set (K = 10) read through <c>SoftLabelsFromSet</c> in a child process, every row's logits read
/// in a scattered order: its resident memory before and after, against the index's bytes.</item>
/// </list>
/// </summary>
internal static class ScaleBenchmark
{
    public static Dictionary<string, object> Run(string[] args)
    {
        int Int(string name, int fallback, int min) => BenchArgs.Int(args, name, fallback, min);
        int images = Int("--images", 6000, 200), rounds = Int("--rounds", 3, 1), size = Int("--teacher-size", 112, 16);
        int readerRows = Int("--reader-rows", 10_000_000, 1000), writeRows = Int("--write-rows", 1_000_000, 1000);
        string tool = PaperBenchmark.DualheadTool();
        string work = BenchArgs.Value(args, "--work") ?? Path.Combine(Path.GetTempPath(), "dualhead-bench-scale-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        var results = new Dictionary<string, object>();
        try
        {
            // 1. The images and the teacher.
            var watch = Stopwatch.StartNew();
            string dataDir = FashionMnist.Locate(allowDownload: false);
            var train = FashionMnist.Load(dataDir, train: true);
            var test = FashionMnist.Load(dataDir, train: false);
            string root = Path.Combine(work, "data");
            var written = FashionMnistFolders.Write(root, train, test, labeledPerClass: 10, unlabeled: images - 200, testPerClass: 10);
            string teacher = Path.Combine(work, "teacher.onnx");
            var metadata = TeacherMetadata.Write(FashionMnistFolders.ClassNames, new TeacherPreprocessing { ResizeShorterSide = size, CropHeight = size, CropWidth = size, Scale = 1f / 255f });
            string kind = BenchArgs.Value(args, "--teacher-kind") ?? "conv";
            int[] hidden = [2048, 2048, 1024];
            var (onnx, parameters) = kind switch
            {
                "conv" => TinyOnnxModels.ConvClassifier(3, size, size, 10, seed: 7, metadata: metadata),
                "dense" => TinyOnnxModels.DenseClassifier(3, size, size, hidden, 10, seed: 7, metadata: metadata),
                _ => throw new ArgumentException($"--teacher-kind '{kind}': expected dense (matrix products, as a ViT) or conv."),
            };
            File.WriteAllBytes(teacher, onnx);
            int rows = written.LabeledCount + written.UnlabeledCount + written.TestCount;
            double flops = kind == "conv"
                ? 2.0 * (size * size * 32 * 27 + (size / 2) * (size / 2) * 64 * 32 * 9 + (size / 4) * (size / 4) * 64 * 64 + 64 * 10)
                : 2.0 * (parameters - hidden.Sum() - 10);
            string description = kind == "conv"
                ? $"TinyOnnxModels.ConvClassifier 3x{size}x{size} (2 conv + 2 dense, {parameters:N0} parameters, {flops / 1e6:0} MFLOP/image)"
                : $"TinyOnnxModels.DenseClassifier 3x{size}x{size} -> {string.Join(" -> ", hidden)} -> 10 (matrix products as in a ViT, {parameters:N0} parameters, {flops / 1e6:0} MFLOP/image)";
            Console.WriteLine($"{rows} PNG images and a teacher: {description}; in {watch.Elapsed.TotalSeconds:0.0} s");
            results["rows"] = rows;
            results["teacher"] = $"{description}, Fashion-MNIST PNGs resized to {size}";

            // 2. One worker vs two, alternating.
            double Label(string output, params string[][] shards)
            {
                if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
                var wall = Stopwatch.StartNew();
                var processes = shards.Select(extra =>
                {
                    var p = Dotnet([tool, "label", "--input", root, "--teacher", teacher, "--output", output, "--plain", .. extra]);
                    return (p, p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
                }).ToArray();
                foreach (var (p, stdout, stderr) in processes)
                {
                    p.WaitForExit();
                    if (p.ExitCode != 0) throw new InvalidOperationException($"dualhead label failed (exit {p.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
                    p.Dispose();
                }
                return wall.Elapsed.TotalSeconds;
            }
            var one = new List<double>();
            var two = new List<double>();
            var oneTwoThreads = new List<double>();
            string oneDir = Path.Combine(work, "one"), twoDir = Path.Combine(work, "two"), oneTwoDir = Path.Combine(work, "one-2threads");
            Label(oneDir, ["--shard", "0/1", "--teacher-threads", "1"]); // warm-up: file cache, JIT'd tool on disk
            for (int r = 1; r <= rounds; r++)
            {
                one.Add(Label(oneDir, ["--shard", "0/1", "--teacher-threads", "1"]));
                two.Add(Label(twoDir, ["--shard", "0/2", "--teacher-threads", "1"], ["--shard", "1/2", "--teacher-threads", "1"]));
                oneTwoThreads.Add(Label(oneTwoDir, ["--shard", "0/1", "--teacher-threads", "2"]));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {r}: 1 worker x 1 thread {one[^1]:0.00} s ({rows / one[^1]:0} rows/s), 2 workers x 1 thread {two[^1]:0.00} s ({rows / two[^1]:0} rows/s, {one[^1] / two[^1]:0.00}x), 1 worker x 2 threads {oneTwoThreads[^1]:0.00} s ({rows / oneTwoThreads[^1]:0} rows/s)"));
            }
            // What this machine gives two processes at all: the same fixed CPU-bound work (SHA-256 over a buffer in cache) in one
            // process, then in two at once, alternating. Two independent cores give 2.0; the labeling ratio cannot beat this one.
            var spinOne = new List<double>();
            var spinTwo = new List<double>();
            double Spin(int processes)
            {
                var wall = Stopwatch.StartNew();
                var running = Enumerable.Range(0, processes).Select(_ => Dotnet([typeof(ScaleBenchmark).Assembly.Location, "scale-spin"])).ToArray();
                foreach (var p in running)
                {
                    p.StandardOutput.ReadToEnd();
                    p.WaitForExit();
                    p.Dispose();
                }
                return wall.Elapsed.TotalSeconds;
            }
            // The teacher alone (ONNX Runtime, one thread, the same model on a fixed batch of 64, no decoding, no files): one
            // process, then two at once. Its ratio is what the model's arithmetic gets from the second core.
            var ortOne = new List<double>();
            var ortTwo = new List<double>();
            double Ort(int processes)
            {
                var running = Enumerable.Range(0, processes).Select(_ => Dotnet([typeof(ScaleBenchmark).Assembly.Location, "scale-ort", "--model", teacher, "--batches", "40"])).ToArray();
                double total = 0;
                foreach (var p in running)
                {
                    total += double.Parse(p.StandardOutput.ReadToEnd().Split(' ')[0], CultureInfo.InvariantCulture);
                    p.WaitForExit();
                    p.Dispose();
                }
                return total; // rows per second of the processes together (each measured after its session is open)
            }
            Spin(1);
            for (int r = 1; r <= rounds; r++)
            {
                spinOne.Add(Spin(1));
                spinTwo.Add(Spin(2));
                ortOne.Add(Ort(1));
                ortTwo.Add(Ort(2));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"machine round {r}: one CPU-bound process {spinOne[^1]:0.00} s, two at once {spinTwo[^1]:0.00} s: {2 * spinOne[^1] / spinTwo[^1]:0.00}x the throughput of one; the teacher alone: {ortOne[^1]:0} rows/s in one process, {ortTwo[^1]:0} in two ({ortTwo[^1] / ortOne[^1]:0.00}x)"));
            }
            double Median(List<double> x) { var s = x.Order().ToArray(); return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2; }
            var machine = spinOne.Zip(spinTwo, (a, b) => 2 * a / b).ToList();
            results["machine_two_process_ratio_median"] = Median(machine);
            results["machine_two_process_ratios"] = machine;
            var ortRatios = ortOne.Zip(ortTwo, (a, b) => b / a).ToList();
            results["teacher_only_one_process_rows_per_s"] = Median(ortOne);
            results["teacher_only_two_processes_rows_per_s"] = Median(ortTwo);
            results["teacher_only_two_vs_one_ratio_median"] = Median(ortRatios);
            results["teacher_only_two_vs_one_ratios"] = ortRatios;
            var ratios = one.Zip(two, (a, b) => a / b).ToList();
            results["one_worker_rows_per_s"] = rows / Median(one);
            results["two_workers_rows_per_s"] = rows / Median(two);
            results["one_worker_two_threads_rows_per_s"] = rows / Median(oneTwoThreads);
            results["two_vs_one_worker_ratio_median"] = Median(ratios);
            results["two_vs_one_worker_ratios"] = ratios;
            results["one_worker_seconds"] = one;
            results["two_workers_seconds"] = two;
            results["one_worker_two_threads_seconds"] = oneTwoThreads;
            results["two_workers_vs_machine_ceiling"] = Median(ratios) / Median(machine);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"two workers / one worker, per round: {string.Join(", ", ratios.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)))}; median {Median(ratios):0.00}x (goal >= 1.7x); this machine gives two CPU-bound processes {Median(machine):0.00}x, so the workers reach {Median(ratios) / Median(machine):P0} of what it can give"));

            // 2b. What a worker's own pipeline (list, read, decode, resize to 224, standardise, hash, write) costs per photo:
            // 640 x 480 JPEG files and a teacher whose arithmetic is negligible (a linear layer on 3 x 224 x 224).
            int photos = Int("--photos", 1000, 10);
            string photoDir = Path.Combine(work, "photos");
            WritePhotos(photoDir, photos);
            var w = new float[10, 3 * 224 * 224];
            var linear = TinyOnnxModels.Linear(w, new float[10], "pixels", "logits", TeacherMetadata.Write(FashionMnistFolders.ClassNames,
                new TeacherPreprocessing { ResizeShorterSide = 224, CropHeight = 224, CropWidth = 224, Scale = 1f / 255f, Mean = TeacherPreprocessing.ImageNetMean, Std = TeacherPreprocessing.ImageNetStd }));
            string linearTeacher = Path.Combine(work, "linear224.onnx");
            File.WriteAllBytes(linearTeacher, linear);
            var photoRuns = new List<double>();
            for (int r = 0; r <= rounds; r++)
            {
                string o = Path.Combine(work, "photos-out");
                if (Directory.Exists(o)) Directory.Delete(o, recursive: true);
                using var p = Dotnet([tool, "label", "--input", photoDir, "--teacher", linearTeacher, "--output", o, "--shard", "0/1", "--teacher-threads", "1", "--plain"]);
                string stdout = p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode != 0) throw new InvalidOperationException($"dualhead label on photos failed:\n{stdout}\n{p.StandardError.ReadToEnd()}");
                var rate = System.Text.RegularExpressions.Regex.Match(stdout, @"([0-9.]+) images/s, ");
                if (r > 0) photoRuns.Add(double.Parse(rate.Groups[1].Value, CultureInfo.InvariantCulture)); // round 0 warms the file cache
            }
            results["photo_pipeline_rows_per_s"] = Median(photoRuns);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"a worker's own pipeline on {photos} 640x480 JPEG photos (read, decode, resize to 224, standardise, hash, write; negligible teacher): {Median(photoRuns):0} images/s on one thread (rounds: {string.Join(", ", photoRuns.Select(x => x.ToString("0", CultureInfo.InvariantCulture)))})"));

            // 3. The two workers' set is the one worker's, bit for bit.
            SoftLabelSetMerger.Merge(oneDir);
            watch.Restart();
            SoftLabelSetMerger.Merge(twoDir);
            bool identical = File.ReadAllBytes(Path.Combine(oneDir, "soft-labels.index")).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(twoDir, "soft-labels.index")));
            results["merged_identical"] = identical;
            Console.WriteLine($"merged 2 shards in {watch.Elapsed.TotalSeconds:0.00} s; bit-identical to the single worker's set: {identical}");

            // 4. Shard write rate and merge rate, synthetic rows (K = 10).
            string synthetic = Path.Combine(work, "synthetic");
            var (writeSeconds, writeBytes) = WriteSynthetic(synthetic, writeRows, 10, 4);
            watch.Restart();
            SoftLabelSetMerger.Merge(synthetic);
            double mergeSeconds = watch.Elapsed.TotalSeconds;
            results["shard_write_rows_per_s"] = writeRows / writeSeconds;
            results["shard_write_mb_per_s"] = writeBytes / 1e6 / writeSeconds;
            results["shard_bytes_per_row"] = (double)writeBytes / writeRows;
            results["merge_rows_per_s"] = writeRows / mergeSeconds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"shard writer: {writeRows:N0} rows of 10 logits in {writeSeconds:0.0} s = {writeRows / writeSeconds:N0} rows/s, {writeBytes / 1e6 / writeSeconds:0.0} MB/s of Parquet ({(double)writeBytes / writeRows:0.0} bytes/row); merge: {writeRows / mergeSeconds:N0} rows/s"));
            Directory.Delete(synthetic, recursive: true);

            // 5. A 10M-row set read by the trainer's transform, in a child process: resident memory.
            string big = Path.Combine(work, "big");
            watch.Restart();
            WriteSynthetic(big, readerRows, 10, 8);
            SoftLabelSetMerger.Merge(big);
            foreach (var f in Directory.GetFiles(big, "*.parquet")) File.Delete(f); // only the index and the manifest are read
            long indexBytes = new FileInfo(Path.Combine(big, "soft-labels.index")).Length;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{readerRows:N0}-row set written and merged in {watch.Elapsed.TotalSeconds:0} s; index {indexBytes / 1e6:0} MB ({readerRows * 40L / 1e6:0} MB of logits + {readerRows * 8L / 1e6:0} MB of row keys)"));
            using (var p = Dotnet([typeof(ScaleBenchmark).Assembly.Location, "scale-reader", "--set", big, "--rows", readerRows.ToString(CultureInfo.InvariantCulture)]))
            {
                var stdout = p.StandardOutput.ReadToEndAsync();
                var stderr = p.StandardError.ReadToEndAsync();
                p.WaitForExit();
                Console.Write(stdout.Result);
                if (p.ExitCode != 0) throw new InvalidOperationException($"scale-reader failed (exit {p.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
                var figures = stdout.Result.Split('\n').Where(l => l.StartsWith("figure ", StringComparison.Ordinal))
                    .Select(l => l.Split(' ')).ToDictionary(f => f[1], f => double.Parse(f[2], CultureInfo.InvariantCulture));
                results["reader_rows"] = readerRows;
                results["reader_rss_mb_10m"] = figures["rss_after_mb"] - figures["rss_before_mb"];
                results["reader_rss_before_mb"] = figures["rss_before_mb"];
                results["reader_rss_after_mb"] = figures["rss_after_mb"];
                results["reader_rss_file_mb"] = figures["rss_file_mb"];
                results["reader_rss_anon_growth_mb"] = figures["rss_anon_growth_mb"];
                results["reader_rows_per_s"] = figures["rows_per_s"];
                results["index_mb"] = indexBytes / 1e6;
                results["logits_mb"] = readerRows * 40L / 1e6;
            }
            return results;
        }
        finally
        {
            if (!BenchArgs.Has(args, "--keep")) try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Starts `dotnet ARGS` with standard output and error redirected (read both, or the child may block).</summary>
    private static Process Dotnet(IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }

    /// <summary>Writes <paramref name="rows"/> synthetic rows (ids img/00000000.jpg …) as <paramref name="shards"/> shard files; returns seconds and bytes.</summary>
    private static (double Seconds, long Bytes) WriteSynthetic(string directory, int rows, int k, int shards)
    {
        Directory.CreateDirectory(directory);
        var ids = Enumerable.Range(0, rows).Select(Id);
        string listing = SoftLabelRowIds.ListingFingerprint(Enumerable.Range(0, rows).Select(Id));
        var byShard = new List<(ulong Hash, int Row)>[shards];
        for (int s = 0; s < shards; s++) byShard[s] = new List<(ulong, int)>(rows / shards + 1024);
        for (int i = 0; i < rows; i++)
        {
            ulong h = SoftLabelRowIds.Hash(Id(i));
            byShard[h % (ulong)shards].Add((h, i));
        }
        var classes = Enumerable.Range(0, k).Select(c => $"class{c}").ToArray();
        var logits = new float[k];
        var content = new byte[32];
        var watch = Stopwatch.StartNew();
        for (int s = 0; s < shards; s++)
        {
            var mine = byShard[s];
            mine.Sort();
            var info = new SoftLabelShardInfo
            {
                TeacherFingerprint = new string('a', 64), TeacherDescription = "synthetic", ClassNames = classes,
                InputRows = rows, InputFingerprint = listing, ShardInputRows = mine.Count,
            };
            using var writer = new SoftLabelShardWriter(directory, new SoftLabelShard(s, shards), info);
            foreach (var (_, i) in mine)
            {
                for (int c = 0; c < k; c++) logits[c] = (float)((i * 31 + c * 17) % 1000) / 100f;
                BitConverter.TryWriteBytes(content, i);
                writer.Add(Id(i), content, logits);
            }
            writer.Commit();
            byShard[s] = null!;
        }
        double seconds = watch.Elapsed.TotalSeconds;
        return (seconds, Directory.GetFiles(directory, "*.parquet").Sum(f => new FileInfo(f).Length));
    }

    /// <summary>The child process of the machine check: a fixed amount of CPU-bound work (SHA-256 of 64 KiB, 40,000 times).</summary>
    public static Dictionary<string, object> Spin(string[] args)
    {
        var buffer = new byte[65536];
        new Random(1).NextBytes(buffer);
        var digest = new byte[32];
        for (int i = 0; i < 40_000; i++)
        {
            System.Security.Cryptography.SHA256.HashData(buffer, digest);
            buffer[i & 65535] ^= digest[0];
        }
        Console.WriteLine(Convert.ToHexString(digest));
        return new Dictionary<string, object>();
    }

    /// <summary>Runs a teacher ONNX on random batches with one ONNX Runtime thread: --model PATH --batches N --batch B.</summary>
    public static Dictionary<string, object> OrtOnly(string[] args)
    {
        string model = BenchArgs.Value(args, "--model")!;
        int batches = int.Parse(BenchArgs.Value(args, "--batches") ?? "50", CultureInfo.InvariantCulture), batch = int.Parse(BenchArgs.Value(args, "--batch") ?? "64", CultureInfo.InvariantCulture);
        using var options = new Microsoft.ML.OnnxRuntime.SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(model, options);
        var input = session.InputMetadata.First();
        var dims = input.Value.Dimensions.Select(d => d < 0 ? batch : d).ToArray();
        var data = new float[dims.Aggregate(1, (a, b) => a * b)];
        new Random(1).NextSingle();
        for (int i = 0; i < data.Length; i++) data[i] = (i % 255) / 255f;
        var tensor = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(data, dims);
        var watch = Stopwatch.StartNew();
        for (int b = 0; b < batches; b++)
        {
            using var result = session.Run([Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor(input.Key, tensor)]);
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{batches * batch / watch.Elapsed.TotalSeconds:0} rows/s"));
        return new Dictionary<string, object>();
    }

    /// <summary>640 x 480 JPEG "photos" (quality 90): gradients, discs and noise, so they compress like camera images, not like flat colour.</summary>
    private static void WritePhotos(string directory, int count)
    {
        Directory.CreateDirectory(directory);
        var random = new Random(5);
        for (int i = 0; i < count; i++)
        {
            using var bitmap = new SkiaSharp.SKBitmap(640, 480, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Opaque);
            var pixels = new byte[640 * 480 * 4];
            int cx = random.Next(640), cy = random.Next(480), radius = 40 + random.Next(160);
            for (int y = 0; y < 480; y++)
                for (int x = 0; x < 640; x++)
                {
                    int o = (y * 640 + x) * 4;
                    bool disc = (x - cx) * (x - cx) + (y - cy) * (y - cy) < radius * radius;
                    int noise = random.Next(24);
                    pixels[o] = (byte)Math.Min(255, (disc ? 200 : x * 255 / 640) + noise);
                    pixels[o + 1] = (byte)Math.Min(255, (disc ? 60 : y * 255 / 480) + noise);
                    pixels[o + 2] = (byte)Math.Min(255, ((i * 37) & 255) / 2 + noise);
                    pixels[o + 3] = 255;
                }
            System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
            using var image = SkiaSharp.SKImage.FromBitmap(bitmap);
            using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 90);
            File.WriteAllBytes(Path.Combine(directory, $"photo{i:D5}.jpg"), data.ToArray());
        }
    }

    private static string Id(int i) => string.Create(CultureInfo.InvariantCulture, $"img/{i:D8}.jpg");

    /// <summary>The child process: reads every row's logits through SoftLabelsFromSet in a scattered order and prints its memory.</summary>
    public static Dictionary<string, object> Reader(string[] args)
    {
        string set = BenchArgs.Value(args, "--set") ?? throw new ArgumentException("--set DIR is required.");
        int rows = int.Parse(BenchArgs.Value(args, "--rows") ?? throw new ArgumentException("--rows N is required."), CultureInfo.InvariantCulture);
        var ml = new MLContext(seed: 1);
        // Row ids streamed, in a scattered order (i -> i * 7919 mod N visits every row once when N is not a multiple of 7919): no 10M objects.
        long step = 7919;
        while (rows % step == 0) step += 2;
        var view = ml.Data.LoadFromEnumerable(Enumerable.Range(0, rows).Select(i => new IdRow { Path = Id((int)(i * step % rows)) }));
        using var transformer = ml.Transforms.SoftLabelsFromSet(set, rowIdColumnName: "Path").Fit(view);
        GC.Collect();
        var before = Memory();
        var watch = Stopwatch.StartNew();
        var scored = transformer.Transform(view);
        using var cursor = scored.GetRowCursor([scored.Schema["TeacherLogits"]]);
        var getter = cursor.GetGetter<VBuffer<float>>(scored.Schema["TeacherLogits"]);
        VBuffer<float> value = default;
        double sum = 0;
        long n = 0;
        while (cursor.MoveNext())
        {
            getter(ref value);
            sum += value.GetValues()[0];
            n++;
        }
        double seconds = watch.Elapsed.TotalSeconds;
        var after = Memory();
        if (n != rows) throw new InvalidOperationException($"read {n} rows, expected {rows}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"read {n:N0} rows through SoftLabelsFromSet in {seconds:0.0} s ({n / seconds:N0} rows/s; checksum {sum:0.0})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"resident memory: {before.Rss:0} MB after opening, {after.Rss:0} MB after reading every row (file-backed {after.RssFile:0} MB, anonymous {after.RssAnon:0} MB), peak {after.Hwm:0} MB"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"figure rss_before_mb {before.Rss:0.0}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"figure rss_after_mb {after.Rss:0.0}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"figure rss_file_mb {after.RssFile:0.0}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"figure rss_anon_growth_mb {after.RssAnon - before.RssAnon:0.0}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"figure rows_per_s {n / seconds:0}"));
        return new Dictionary<string, object>();
    }

    private sealed class IdRow
    {
        public string Path { get; set; } = "";
    }

    /// <summary>VmRSS, RssFile, RssAnon and VmHWM of this process, in MB.</summary>
    private static (double Rss, double RssFile, double RssAnon, double Hwm) Memory()
    {
        var status = File.ReadAllLines("/proc/self/status");
        double Kb(string key) => double.Parse(status.First(l => l.StartsWith(key + ":", StringComparison.Ordinal)).Split(':')[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
        return (Kb("VmRSS"), Kb("RssFile"), Kb("RssAnon"), Kb("VmHWM"));
    }
}
