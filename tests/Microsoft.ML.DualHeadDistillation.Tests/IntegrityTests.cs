using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>Issue 9, point 7: what we store carries checksums verified at load, and saving is atomic.</summary>
[TestClass]
public sealed class IntegrityTests
{
    private static (MLContext Ml, IDataView Data, DualHeadDistillTransformer Model) Fitted()
    {
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 60));
        return (ml, data, ml.MulticlassClassification.Trainers.DualHeadDistill(SyntheticData.MlpOptions(epochs: 1)).Fit(data));
    }

    private static byte[] FlipBit(byte[] bytes, Random r)
    {
        var copy = (byte[])bytes.Clone();
        copy[r.Next(copy.Length)] ^= (byte)(1 << r.Next(8));
        return copy;
    }

    [TestMethod]
    public void EverySingleBitFlipInASavedModelIsDetectedOrHarmless()
    {
        using var dir = new TempDir();
        var (ml, data, model) = Fitted();
        using var owned = model;
        string good = Path.Combine(dir.Path, "model.zip");
        DualHeadModel.Save(ml, model, data.Schema, good);
        var expected = DualHeadModel.Load(new MLContext(), good, out _).Transform(data).GetColumn<float[]>("Score").ToArray();
        var bytes = File.ReadAllBytes(good);
        var r = new Random(42);
        int detected = 0, harmless = 0, silent = 0;
        string flipped = Path.Combine(dir.Path, "flipped.zip");
        for (int i = 0; i < 60; i++)
        {
            File.WriteAllBytes(flipped, FlipBit(bytes, r));
            ITransformer loaded;
            try
            {
                loaded = DualHeadModel.Load(new MLContext(), flipped, out _);
            }
            catch (InvalidDataException e)
            {
                StringAssert.Contains(e.Message, flipped);
                detected++;
                continue;
            }
            var scores = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
            if (scores.Zip(expected).All(p => p.First.SequenceEqual(p.Second))) harmless++;
            else silent++;
        }
        Console.WriteLine($"60 single-bit flips in model.zip ({bytes.Length:N0} bytes): {detected} detected, {harmless} harmless (e.g. a timestamp), {silent} silently different");
        Assert.AreEqual(0, silent);
        Assert.IsTrue(detected > 40, $"{detected} detected");
    }

    [TestMethod]
    public void EverySingleBitFlipInACheckpointIsDetectedOrHarmless()
    {
        var (_, data, model) = Fitted();
        using var m = model;
        using var buffer = new MemoryStream();
        model.ToCheckpoint().Save(buffer);
        var bytes = buffer.ToArray();
        var weights = SyntheticData.Weights(model);
        var r = new Random(7);
        int detected = 0, harmless = 0, silent = 0;
        for (int i = 0; i < 40; i++)
        {
            DualHeadCheckpoint checkpoint;
            try
            {
                checkpoint = DualHeadCheckpoint.Load(new MemoryStream(FlipBit(bytes, r)));
            }
            catch (InvalidDataException)
            {
                detected++;
                continue;
            }
            using var restored = checkpoint.ToModel();
            bool same = SyntheticData.Weights(restored).SequenceEqual(weights) && checkpoint.Alpha == model.Alpha && checkpoint.Beta == model.Beta
                && checkpoint.CompletedSteps == model.TrainingReport.TotalSteps && checkpoint.ClassNames.SequenceEqual(model.ClassNames);
            if (same) harmless++; else silent++;
        }
        Console.WriteLine($"40 single-bit flips in a checkpoint ({bytes.Length:N0} bytes): {detected} detected, {harmless} harmless, {silent} silently different");
        Assert.AreEqual(0, silent);
    }

    [TestMethod]
    public void AnUnrelatedMLNetModelIsRefusedByName()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var data = SyntheticData.Load(ml, SyntheticData.Rows(30, 0));
        var sdca = ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Features").Fit(data);
        string path = Path.Combine(dir.Path, "sdca.zip");
        ml.Model.Save(sdca, data.Schema, path);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => DualHeadModel.Load(ml, path, out _));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "holds no DualHeadDistill student");
    }

    /// <summary>A transformer whose Save writes part of the model and then fails, as a full disk does.</summary>
    private sealed class FailingSave(ITransformer inner) : ITransformer, ICanSaveModel
    {
        public bool IsRowToRowMapper => inner.IsRowToRowMapper;
        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inner.GetOutputSchema(inputSchema);
        public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => inner.GetRowToRowMapper(inputSchema);
        public IDataView Transform(IDataView input) => inner.Transform(input);
        void ICanSaveModel.Save(ModelSaveContext ctx)
        {
            ((ICanSaveModel)inner).Save(ctx);
            throw new IOException("No space left on device");
        }
    }

    [TestMethod]
    public void SaveIsAtomicAndLeavesTheOldModelWhenItFails()
    {
        using var dir = new TempDir();
        var (ml, data, model) = Fitted();
        using var owned = model;
        string path = Path.Combine(dir.Path, "model.zip");
        DualHeadModel.Save(ml, model, data.Schema, path);
        var good = File.ReadAllBytes(path);

        Assert.ThrowsExactly<IOException>(() => DualHeadModel.Save(ml, new FailingSave(model), data.Schema, path));
        CollectionAssert.AreEqual(good, File.ReadAllBytes(path), "the good model.zip was changed");
        CollectionAssert.AreEqual(new[] { path }, Directory.GetFiles(dir.Path), "a temporary file was left behind");

        var missing = Path.Combine(dir.Path, "no-such-folder", "model.zip");
        Assert.ThrowsExactly<DirectoryNotFoundException>(() => DualHeadModel.Save(ml, model, data.Schema, missing));
    }

    [TestMethod]
    public void SaveOnAFullDiskLeavesTheOldModelIntact()
    {
        if (Environment.UserName != "root")
            Assert.Inconclusive("This test mounts a 256 KiB tmpfs to fill it, which needs root (CI runs as root).");
        var (ml, data, model) = Fitted();
        using var owned = model;
        using var dir = new TempDir();
        string mount = Path.Combine(dir.Path, "small");
        Directory.CreateDirectory(mount);
        Run("mount", $"-t tmpfs -o size=256k tmpfs {mount}");
        try
        {
            string path = Path.Combine(mount, "model.zip");
            DualHeadModel.Save(ml, model, data.Schema, path);
            var good = File.ReadAllBytes(path);
            // Fill the disk, leaving less room than a second copy of the model needs.
            using (var filler = File.Create(Path.Combine(mount, "filler")))
            {
                var block = new byte[4096];
                try { while (true) filler.Write(block); } catch (IOException) { }
            }
            var e = Assert.ThrowsExactly<IOException>(() => DualHeadModel.Save(ml, model, data.Schema, path));
            Console.WriteLine(e.Message);
            CollectionAssert.AreEqual(good, File.ReadAllBytes(path), "the good model.zip was damaged");
            CollectionAssert.AreEquivalent(new[] { "model.zip", "filler" }, Directory.GetFiles(mount).Select(Path.GetFileName).ToArray());
        }
        finally
        {
            Run("umount", mount);
        }
    }

    private static void Run(string program, string args)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(program, args) { RedirectStandardError = true })!;
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.AreEqual(0, p.ExitCode, $"{program} {args}: {error}");
    }
}
