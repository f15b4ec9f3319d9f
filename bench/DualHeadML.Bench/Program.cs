// DualHeadML benchmarks (a benchmark program, not timed tests):
//   dotnet run -c Release --project bench/DualHeadML.Bench -- teacher [--repetitions N] [--fits N] [--json PATH]
//   dotnet run -c Release --project bench/DualHeadML.Bench -- inference [--epochs 3] [--json PATH]
//   dotnet run -c Release --project bench/DualHeadML.Bench -- paper --fraction 0.01 --seeds 3 [--confuse 0-6,2-4] [--json PATH]
//   dotnet run -c Release --project bench/DualHeadML.Bench -- cancel [--trials 40] [--json PATH]
//   dotnet run -c Release --project bench/DualHeadML.Bench -- parity --seeds 3 --teacher PATH --teacher-input NAME --teacher-output NAME [--json PATH]
//     (ours vs bench/parity/dho_pytorch.py on the same data; needs python3 with torch and numpy)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- data --rows 1000000 [--steps 40] [--rounds 3] [--folder-images 20000] [--work DIR] [--json PATH]
//   dotnet run -c Release --project bench/DualHeadML.Bench -- augment --seeds 3 --teacher PATH --teacher-input NAME --teacher-output NAME [--confuse 0-6,2-4] [--views 4] [--first-seed K --merge EARLIER.json] [--json PATH]
//   dotnet run -c Release --project bench/DualHeadML.Bench -- speed [--rounds 3] [--json PATH]   (ours vs bench/speed/dho_step_pytorch.py, alternating)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- students [--quick] [--json PATH]   (real students at 3x64x64, confused and ResNet-18 probe teachers)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- budget [--quick] [--minutes 20] [--teacher confused|probe] [--json PATH]   (time to accuracy, ours vs PyTorch)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- precision --unlabeled N --epochs 1 --seeds 1 [--json PATH]   (DHO accuracy, bfloat16 next to float32)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- cli [--images 20000] [--rounds 2] [--json PATH]   (dualhead train on a PNG folder vs the library's Fit)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- scale [--images 6000] [--rounds 3] [--teacher-size 112] [--reader-rows 10000000] [--json PATH]   (label: 2 workers vs 1, merge, 10M-row reader)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- search [--seeds 3] [--labeled-per-class 100] [--unlabeled 5000] [--epochs 9] [--json PATH]   (train --search vs every configuration)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- quantize [--fraction 0.01] [--unlabeled N] [--students small_cnn,resnet18_imagenet,resnet18,mobilenet_v3_small] [--size 64] [--keep DIR] [--json PATH]   (int8 vs fp32)
//   dotnet run -c Release --project bench/DualHeadML.Bench -- parity-steps --bundle DIR [--steps 50]   (then bench/parity/compare_steps.py)
using System.Globalization;
using System.Text.Json;
using DualHeadML.Bench;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("usage: DualHeadML.Bench teacher [--repetitions N] [--fits N] [--json PATH]");
    Console.WriteLine("         --repetitions: interleaved rounds of each timed comparison (default 9 quickstart, 5 conv); --fits: rounds of the 4 Fits (default 3)");
    Console.WriteLine("       DualHeadML.Bench inference [--epochs E] [--json PATH]");
    Console.WriteLine("       DualHeadML.Bench cancel [--trials N] [--json PATH]");
    Console.WriteLine("       DualHeadML.Bench paper [--fraction F] [--seeds N] [--epochs E] [--confuse 0-6,2-4] [--teacher PATH --teacher-input NAME --teacher-output NAME] [--json PATH]");
    Console.WriteLine("       DualHeadML.Bench parity [--seeds N] [--fraction F] [--epochs E] [--confuse 0-6,2-4] [--teacher PATH --teacher-input NAME --teacher-output NAME]");
    Console.WriteLine("                               [--python python3] [--script bench/parity/dho_pytorch.py] [--bundle DIR] [--normalization none|standardize]");
    Console.WriteLine("                               [--methods supervised_only,single_head_kd,dho] [--threads 2] [--concurrent] [--bundle-only] [--json PATH]");
    Console.WriteLine("         the paper protocol run by our trainer and by PyTorch (bench/parity/dho_pytorch.py) on the same rows and teacher logits;");
    Console.WriteLine("         --bundle keeps the data folder given to the script (else a temporary one); --normalization applies to the PyTorch side only for now;");
    Console.WriteLine("         --concurrent runs the PyTorch side at the same time as ours (faster overall; per-Fit timings then mean little);");
    Console.WriteLine("         --threads: intra-op threads of each side (use 1 with --concurrent or on a shared CPU); --methods: the fits to run on both sides;");
    Console.WriteLine("         --bundle-only writes the bundle (give --bundle DIR) and stops, for running the PyTorch side alone");
    Console.WriteLine("       DualHeadML.Bench data [--rows 1000000] [--steps 40] [--rounds 3] [--folder-images 20000] [--work DIR] [--json PATH]");
    Console.WriteLine("         the image data path: sample store build rate, peak RSS of a Fit over N generated 64x64 RGB images, Fit ms/step with");
    Console.WriteLine("         augmentation vs the bare TorchSharp step (interleaved), SameCropOnline; a folder of Fashion-MNIST PNG/JPEG files");
    Console.WriteLine("       DualHeadML.Bench augment [--seeds N] --teacher PATH --teacher-input NAME --teacher-output NAME [--confuse 0-6,2-4] [--views 4] [--methods none,cached,same_crop_online,cached_views] [--first-seed K --merge EARLIER.json] [--json PATH]");
    Console.WriteLine("         seeds K..N (K defaults to 1); --merge reads the runs of earlier seeds of the same protocol so one JSON holds all seeds");
    Console.WriteLine("         the paper protocol as an image column: no augmentation vs RandomResizedCrop + flip with the teacher Cached, SameCropOnline, CachedViews(V)");
    Console.WriteLine("       DualHeadML.Bench parity-steps --bundle DIR [--steps 50] [--seed 1] [--threads 1] [--out DIR]");
    Console.WriteLine("         K training steps from the trainer's seeded initial weights with TorchSharp; then python3 bench/parity/compare_steps.py OUT BUNDLE");
    Console.WriteLine("       DualHeadML.Bench speed [--rounds 3] [--cnn-steps 20] [--resnet-steps 4] [--bf16-steps 2] [--threads 2] [--python /usr/bin/python3] [--json PATH]");
    Console.WriteLine("         our DHO step (Fit) vs PyTorch's (bench/speed/dho_step_pytorch.py) alternating: small CNN 1x28x28, ResNet-18 3x64x64 fp32, ours ResNet-18 bfloat16");
    Console.WriteLine("       DualHeadML.Bench students [--quick] [--size 64] [--unlabeled 3840] [--epochs 1] [--test 5000] [--probe-epochs 2] [--seed 1] [--onnx-images 256]");
    Console.WriteLine("                                 [--probe-pool 10000] [--students small_cnn,resnet18_scratch,resnet18_imagenet,mobilenet_v2_scratch] [--teachers confused,resnet18_probe]");
    Console.WriteLine("                                 [--methods dho_auto,single_head_kd,supervised_only] [--fraction 0.01] [--confuse 0-6,2-4] [--json PATH]");
    Console.WriteLine("         Fashion-MNIST as 3xSxS at 1% labels: each student x teacher x method, test accuracy, parameters, ms/step, ONNX images/s;");
    Console.WriteLine("         --quick: the confused teacher, small_cnn and both ResNet-18s, DHO and single-head KD, 3,200 unlabeled, 2,000 test");
    Console.WriteLine("       DualHeadML.Bench budget [--quick] [--minutes 20] [--teacher confused|probe] [--unlabeled 20000] [--test 5000] [--frozen-stages 3] [--patience 0]");
    Console.WriteLine("                               [--runs ours_dho,pytorch_dho,ours_kd] [--threads 2] [--python /usr/bin/python3] [--json PATH]");
    Console.WriteLine("         time to accuracy: the ImageNet ResNet-18 (DnnImageFeaturizer ONNX) distilled on Fashion-MNIST 1% as 3x64x64 within the same budget,");
    Console.WriteLine("         ours (its recipe) vs PyTorch fp32 eager (bench/budget/dho_budget_pytorch.py) vs ours single-head KD, one after the other; --quick: 6 minutes");
    Console.WriteLine("       DualHeadML.Bench precision [--fraction 0.01] [--seeds 3] [--epochs 3] [--unlabeled N] [--confuse PAIRS] [--json PATH]");
    Console.WriteLine("         the paper protocol's DHO student trained in float32 and in bfloat16 (Precision), alternating per seed: test accuracy and ms/step");
    Console.WriteLine("       DualHeadML.Bench cli [--images 20000] [--rounds 2] [--epochs 1] [--image-size 28] [--work DIR] [--json PATH]");
    Console.WriteLine("         `dualhead train` on a folder of N PNG files: wall time by phase, and its ms/step against the library's Fit on the same files (alternating)");
    Console.WriteLine("       DualHeadML.Bench scale [--images 6000] [--rounds 3] [--teacher-size 112] [--write-rows 1000000] [--reader-rows 10000000] [--work DIR] [--json PATH]");
    Console.WriteLine("         dualhead label with 2 worker processes vs 1 (alternating), merged set identical or not, shard write and merge rates,");
    Console.WriteLine("         resident memory of SoftLabelsFromSet reading every row of a 10M-row synthetic set");
    Console.WriteLine("       DualHeadML.Bench diagnose [--fraction 0.01] [--seeds 3] [--epochs 3] [--unlabeled N] [--json PATH]");
    Console.WriteLine("       DualHeadML.Bench quantize [--fraction 0.01] [--epochs 3] [--unlabeled N] [--students small_cnn,resnet18_imagenet,resnet18,mobilenet_v3_small] [--size 28|64] [--test 2000] [--repetitions 7] [--calibration-method percentile|minmax] [--first-conv-fp32] [--keep DIR] [--json PATH]");
    Console.WriteLine("         students distilled on the paper protocol, exported fp32 and int8 (calibrated, checked on validation): test accuracy, agreement, size, images/s at batch 64 and 1 (alternating)");
    Console.WriteLine("       DualHeadML.Bench search [--seeds 3] [--labeled-per-class 100] [--unlabeled 5000] [--test-per-class 200] [--epochs 9] [--work DIR] [--json PATH]");
    Console.WriteLine("         train --search (successive halving, the noise-aware choice) against every configuration of the same space trained for --epochs: test accuracy and time ratio");
    Console.WriteLine("         the diagnosis's verdict against the method that wins on test, for the default, a confused and a near-chance teacher");
    Console.WriteLine("       (paper, diagnose, parity, augment and precision take --unlabeled N: the first N unlabeled rows only)");
    return args.Length == 0 ? 2 : 0;
}
string? json = ArgValue("--json");
Dictionary<string, object> results = args[0] switch
{
    "teacher" => TeacherBenchmark.Run(args),
    "paper" => PaperBenchmark.Run(args),
    "diagnose" => DiagnoseBenchmark.Run(args),
    "search" => SearchBenchmark.Run(args),
    "quantize" => QuantizeBenchmark.Run(args),
    "inference" => InferenceBenchmark.Run(args),
    "cancel" => CancelBenchmark.Run(args),
    "parity" => ParityBenchmark.Run(args),
    "parity-steps" => ParityStepsBenchmark.Run(args),
    "data" => DataBenchmark.Run(args),
    "augment" => AugmentBenchmark.Run(args),
    "speed" => SpeedBenchmark.Run(args),
    "students" => StudentsBenchmark.Run(args),
    "budget" => BudgetBenchmark.Run(args),
    "precision" => PrecisionBenchmark.Run(args),
    "cli" => CliBenchmark.Run(args),
    "scale" => ScaleBenchmark.Run(args),
    "scale-reader" => ScaleBenchmark.Reader(args),
    "scale-spin" => ScaleBenchmark.Spin(args),
    "scale-ort" => ScaleBenchmark.OrtOnly(args),
    _ => throw new ArgumentException($"Unknown benchmark '{args[0]}'; expected: teacher, inference, paper, diagnose, cancel, parity, parity-steps, data, augment, speed, students, budget, precision, cli, scale."),
};
if (json is not null)
{
    File.WriteAllText(json, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"Wrote {json}");
}
return 0;

string? ArgValue(string name) => BenchArgs.Value(args, name);
