#!/usr/bin/env python3
"""Step-level parity: replays in PyTorch the K steps that `parity-steps` took with TorchSharp.

    dotnet run -c Release --project bench/DualHeadML.Bench -- parity-steps --bundle BUNDLE --steps 50 --out OUT
    python3 bench/parity/compare_steps.py OUT BUNDLE

Checks that (1) PyTorch's default initialisation under torch.manual_seed(seed) (backbone, then h_CE, then
h_KD) equals the trainer's TorchSharp weights, and (2) from those weights and the same batches the losses
and weights of both sides stay together (float rounding only). Uses dho_pytorch.py's student and loss.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dho_pytorch as D  # noqa: E402


def load_weights(path):
    names = json.load(open(path + ".json", encoding="utf-8"))
    flat = np.fromfile(path + ".bin", dtype="<f4")
    out, offset = [], 0
    for entry in names:
        size = int(np.prod(entry["shape"]))
        out.append((entry["name"], flat[offset:offset + size].reshape(entry["shape"])))
        offset += size
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, bundle = sys.argv[1], sys.argv[2]
    steps = json.load(open(os.path.join(out, "steps.json"), encoding="utf-8"))
    torch.set_num_threads(steps["threads"])
    meta, data = D.load_bundle(bundle)
    hp = meta["hyper_parameters"]
    x, y, t = data["train"]["features"], data["train"]["labels"], data["train"]["teacher"]
    nl = hp["labeled_batch_size"]
    report = {}
    for mode in ("dho", "single_head_kd"):
        torch.manual_seed(steps["seed"])
        model = D.Student(meta["image_shape"], hp["hidden_size"], meta["classes"], two_heads=(mode == "dho"), channels_last=False)
        init = load_weights(os.path.join(out, f"init-{mode}"))
        init_diff = max(float(np.abs(p.detach().numpy() - w).max()) for p, (_, w) in zip(model.parameters(), init))
        with torch.no_grad():  # start from TorchSharp's weights exactly, whatever the init check says
            for p, (_, w) in zip(model.parameters(), init):
                p.copy_(torch.from_numpy(w))
        optimizer = torch.optim.AdamW(model.parameters(), lr=hp["learning_rate"], weight_decay=hp["weight_decay"])
        worst, first_above = 0.0, None
        for s, rows in enumerate(steps["batches"]):
            ref = steps[mode][s]
            lr = D.learning_rate(s, steps["total_steps"], hp["warmup_steps"], hp["learning_rate"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = np.asarray(rows)
            ce_logits, kd_all = model.forward_training(torch.from_numpy(x[rows]), nl)
            tb = torch.from_numpy(t[rows])
            ce = torch.nn.functional.cross_entropy(ce_logits, torch.from_numpy(y[rows[:nl]].astype(np.int64)))
            kd = D.distillation(kd_all[:nl], tb[:nl], hp["temperature"]) + D.distillation(kd_all[nl:], tb[nl:], hp["temperature"])
            loss = hp["lambda"] * ce + (1 - hp["lambda"]) * kd
            rel = abs(loss.item() - ref["loss"]) / abs(ref["loss"])
            worst = max(worst, rel)
            if first_above is None and rel > 1e-5:
                first_above = s
            if s in (0, 1, len(steps["batches"]) - 1):
                print(f"{mode} step {s}: loss PyTorch {loss.item():.7f}, TorchSharp {ref['loss']:.7f} (CE {ce.item():.6f} / {ref['ce']:.6f}, KD {kd.item():.6f} / {ref['kd']:.6f}), lr {lr:.6e} / {ref['lr']:.6e}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        after = load_weights(os.path.join(out, f"after-{mode}"))
        weight_diff = max(float(np.abs(p.detach().numpy() - w).max()) for p, (_, w) in zip(model.parameters(), after))
        report[mode] = {"init_max_abs_diff": init_diff, "worst_relative_loss_diff": worst, "first_step_above_1e-5": first_above,
                        "final_weights_max_abs_diff": weight_diff}
        print(f"{mode}: initial weights max |TorchSharp - PyTorch| {init_diff:.3g}; over {len(steps['batches'])} steps worst relative loss difference "
              f"{worst:.2e} (first above 1e-5 at step {first_above}); final weights max |diff| {weight_diff:.2e}")
    with open(os.path.join(out, "compare.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
