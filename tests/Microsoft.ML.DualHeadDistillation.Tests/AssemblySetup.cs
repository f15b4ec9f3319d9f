// Tests share TorchSharp's global state (thread count, seeding lock); run them one at a time.
[assembly: Microsoft.VisualStudio.TestTools.UnitTesting.DoNotParallelize]

namespace Microsoft.ML.DualHeadDistillation.Tests
{
    [Microsoft.VisualStudio.TestTools.UnitTesting.TestClass]
    public sealed class AssemblyHooks
    {
        /// <summary>Removes the folder dataset the CLI tests wrote (once per test run).</summary>
        [Microsoft.VisualStudio.TestTools.UnitTesting.AssemblyCleanup]
        public static void Cleanup() => CliFixture.Delete();
    }
}
