using Microsoft.ML.DualHeadDistillation.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DualHeadDistillation.Students;

/// <summary>Builds a <see cref="DualHeadStudent"/> from a <see cref="StudentSpec"/> (the backbone from the registry).</summary>
internal static class StudentFactory
{
    /// <summary>Module construction draws from TorchSharp's global generator; the lock makes seeding + init atomic across threads.</summary>
    internal static readonly object s_seedLock = new();

    /// <summary>
    /// Creates the student with weights drawn after <c>manual_seed(seed)</c>: backbone first, then h_CE, then h_KD,
    /// so every objective starts from the same backbone and h_CE for a seed. With no seed (weights about to be
    /// overwritten) TorchSharp's global generator is left as it was. Standardisation statistics start at mean 0,
    /// std 1; set them with <see cref="InputStandardization.Set"/> or load them with the weights.
    /// </summary>
    public static DualHeadStudent Create(StudentSpec spec, int? seed, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Native.TorchSharpNative.EnsureLoadable();
        var definition = DualHeadRegistry.Backbones.Get(spec.Backbone.Name);
        device ??= CPU;
        lock (s_seedLock)
        {
            if (seed is null)
            {
                using var state = random.get_rng_state();
                try
                {
                    return Create(spec, seed: 0, device);
                }
                finally
                {
                    random.set_rng_state(state);
                }
            }
            random.manual_seed(seed.Value);
            DualHeadStudent student;
            // TorchSharp 0.107's Conv2d leaves one temporary tensor of its initialisation undisposed: build inside a
            // dispose scope that keeps the parameters and buffers and disposes everything else.
            using (var scope = NewDisposeScope())
            {
                var backbone = definition.Create(spec.Backbone);
                if (backbone.InputSize != spec.Backbone.InputSize || backbone.EmbeddingSize != spec.Backbone.EmbeddingSize)
                {
                    backbone.Dispose();
                    throw new InvalidOperationException($"Backbone '{spec.Backbone.Name}' ({definition.GetType().FullName}) built a module reading {backbone.InputSize} values into z of {backbone.EmbeddingSize}; its spec says {spec.Backbone.InputSize} and {spec.Backbone.EmbeddingSize}.");
                }
                var norm = spec.InputNormalization == DualHeadInputNormalization.None ? null
                    : new InputStandardization(spec.Backbone.InputSize, StandardizationChannels(spec.Backbone));
                student = new DualHeadStudent(backbone, spec.ClassCount, twoHeads: spec.Heads == 2, norm);
                scope.Detach(student.parameters().Cast<IDisposable>().Concat(student.buffers()).ToArray());
            }
            return device.type == DeviceType.CPU ? student : student.to(device);
        }
    }

    /// <summary>Channels standardised: the image channels, or every feature of a feature vector.</summary>
    public static int StandardizationChannels(BackboneSpec backbone) => backbone.ImageShape?.Channels ?? backbone.InputSize;
}
