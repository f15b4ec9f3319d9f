// Tests share TorchSharp's global state (thread count, seeding lock); run them one at a time.
[assembly: Microsoft.VisualStudio.TestTools.UnitTesting.DoNotParallelize]
