using Microsoft.ML.DualHeadDistillation.Specs;
using Microsoft.ML.DualHeadDistillation.Teachers;
using Microsoft.ML.DualHeadDistillation.Training;
using Microsoft.ML.DualHeadDistillation.Training.Augmentation;

namespace Microsoft.ML.DualHeadDistillation.Data.Images;

/// <summary>The training rows of an image feature column: the sample store (built or reused) with its teacher view.</summary>
internal static class ImageTrainingRows
{
    /// <summary>
    /// Builds or reuses the store (for CachedViews with the V views labelled by <paramref name="cropTeacher"/>) and
    /// returns the rows over it. The caller disposes the store (a temporary one is deleted with it).
    /// </summary>
    public static (TrainingSet Train, SampleStore Store, SampleStoreBuilder Builder) Read(IDataView data, TrainingColumns columns, ImageColumn imageColumn,
        ImageInputSpec images, CropTeacher? cropTeacher, int seed, DualHeadDistillOptions o, FitCancellation cancel, Action<string> log, Action<string> warn)
    {
        bool views = cropTeacher is not null && images.TeacherView == DualHeadTeacherView.CachedViews;
        // The views depend on the seed and the augmentation: both are part of a CachedViews store's fingerprint.
        var viewSampler = views ? new ImageSampler(images.Augmentation, images.Crop.Channels, images.StorageSize, images.Crop, seed, images.TeacherViews) : null;
        byte[][]? extra = views
            ? [.. cropTeacher!.FingerprintParts(), System.Text.Encoding.UTF8.GetBytes(FormattableString.Invariant($"seed {seed}; {System.Text.Json.JsonSerializer.Serialize(images)}"))]
            : null;
        // A teacher the trainer holds (Cached: applied as the upstream transform) is fingerprinted by its identity.
        var heldTeacher = o.Teacher is { } t && columns.TeacherColumn == t.OutputColumnName && images.TeacherView == DualHeadTeacherView.Cached ? t.IdentityParts() : null;
        var builder = new SampleStoreBuilder(columns, imageColumn, images.StorageSize, o.TeacherOutput, cancel, log, warn,
            views ? cropTeacher : null, viewSampler, views ? images.TeacherViews : 0, extra, heldTeacher);
        var store = builder.Build(data, o.ImageStoreFolder);
        try
        {
            var train = TrainingSet.FromStore(store, columns.FeatureSize, columns.ClassCount, cancel,
                onlineTeacher: images.TeacherView == DualHeadTeacherView.SameCropOnline ? cropTeacher : null,
                teacherViews: views ? images.TeacherViews : 1);
            return (train, store, builder);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }
}
