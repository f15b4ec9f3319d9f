using Microsoft.ML.DualHeadDistillation.Export;
using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.DualHeadDistillation.Inference;

/// <summary>
/// Scores rows with ONNX Runtime on the student's exported (portable) graph, many rows per call. The
/// fitted model scores through this rather than TorchSharp, so its Score is the same computation a saved
/// and reloaded model (or any ONNX Runtime deployment) performs. ONNX Runtime's CPU kernels give each row
/// the same result whatever the batch size (checked by the save/load tests). Thread-safe.
/// </summary>
internal sealed class OnnxStudentScorer : IDisposable
{
    private static readonly string[] s_outputs =
        [DualHeadColumns.Score, DualHeadColumns.CeHeadProbabilities, DualHeadColumns.KdHeadProbabilities, StudentOnnxExporter.PredictedIndexOutput];

    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new(); // shared by all runs: it carries no per-run state here
    private readonly string[] _inputs;
    private readonly object _lock = new();
    private int _users;
    private bool _retired, _disposed;

    public OnnxStudentScorer(byte[] portableModel, string inputName, int inputSize, int classCount)
    {
        ModelBytes = portableModel;
        InputSize = inputSize;
        ClassCount = classCount;
        _inputs = [inputName];
        _session = OnnxRuntimeSessions.Create(portableModel, "the student's exported ONNX graph");
    }

    public byte[] ModelBytes { get; }
    public int InputSize { get; }
    public int ClassCount { get; }

    /// <summary>
    /// Scores <paramref name="rows"/> rows of <paramref name="features"/> ([rows, D]); writes [rows, K]
    /// probabilities (combined, CE head, KD head) and the 0-based arg-max per row.
    /// </summary>
    public void Score(float[] features, int rows, float[] score, float[] ce, float[] kd, long[] predicted)
    {
        if (rows == 0) return;
        int d = InputSize, k = ClassCount;
        var info = OrtMemoryInfo.DefaultInstance;
        using var input = OrtValue.CreateTensorValueFromMemory(info, features.AsMemory(0, rows * d), [rows, d]);
        using var scoreValue = OrtValue.CreateTensorValueFromMemory(info, score.AsMemory(0, rows * k), [rows, k]);
        using var ceValue = OrtValue.CreateTensorValueFromMemory(info, ce.AsMemory(0, rows * k), [rows, k]);
        using var kdValue = OrtValue.CreateTensorValueFromMemory(info, kd.AsMemory(0, rows * k), [rows, k]);
        using var predictedValue = OrtValue.CreateTensorValueFromMemory(info, predicted.AsMemory(0, rows), [rows]);
        _session.Run(_runOptions, _inputs, [input], s_outputs, [scoreValue, ceValue, kdValue, predictedValue]);
    }

    /// <summary>Marks a user (an open cursor, a running prediction); a retired scorer lives until its last user releases it.</summary>
    public bool TryAcquire()
    {
        lock (_lock)
        {
            if (_retired || _disposed) return false;
            _users++;
            return true;
        }
    }

    public void Release()
    {
        lock (_lock)
        {
            _users--;
            if (_retired && _users == 0) DisposeSession();
        }
    }

    /// <summary>No new users (the model was disposed); disposed once unused.</summary>
    public void Retire()
    {
        lock (_lock)
        {
            _retired = true;
            if (_users == 0) DisposeSession();
        }
    }

    private void DisposeSession()
    {
        if (_disposed) return;
        _disposed = true;
        _session.Dispose();
        _runOptions.Dispose();
    }

    public void Dispose() => Retire();
}
