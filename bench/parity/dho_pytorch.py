#!/usr/bin/env python3
"""PyTorch implementation of the paper-benchmark protocol, for a parity check against our trainer.

Reads a bundle folder written by the C# side
    dotnet run -c Release --project bench/DualHeadML.Bench -- parity ... --bundle DIR
(bundle.json + raw little-endian float32/int32 .bin files: training rows in the trainer's row order,
labels with -1 for unlabeled rows, the teacher logits exactly as our TrainingSet sees them, validation
and test rows) and trains, for each seed, SupervisedOnly, SingleHeadKd and DualHead with the same
protocol as src/Microsoft.ML.DualHeadDistillation/Training (DualHeadTrainingLoop, BatchSampler, DhoLoss,
LearningRateSchedule), then writes a JSON of per-seed test accuracies:

    python3 bench/parity/dho_pytorch.py BUNDLE_DIR OUT.json [--normalization bundle|none|standardize]
                                        [--seeds 1,2,3] [--methods supervised_only,single_head_kd,dho]
                                        [--epochs E] [--threads 2]

It mirrors the protocol, not the bits: batches are drawn with numpy's generator (seeded with the seed),
not .NET's System.Random; the initial weights are the trainer's bit for bit (same seed, same default
inits, same order; checked by bench/parity/compare_steps.py). The JSON is rewritten after every fit
("complete": false until the end), so a stopped run keeps what it finished. Needs python3, torch
(Debian's 1.13 is fine: run /usr/bin/python3 if another python3 comes first on PATH) and numpy only.

--normalization: "bundle" (default) uses what bundle.json says; "none" turns it off; "standardize"
computes the per-channel mean and population std over every training row (labeled + unlabeled) here.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------- data

def load_bundle(directory):
    with open(os.path.join(directory, "bundle.json"), encoding="utf-8") as f:
        meta = json.load(f)

    def read(entry):
        dtype = {"float32": "<f4", "int32": "<i4"}[entry["dtype"]]
        array = np.fromfile(os.path.join(directory, entry["file"]), dtype=dtype)
        shape = tuple(entry["shape"])
        if array.size != int(np.prod(shape)):
            sys.exit(f"{entry['file']}: {array.size} values, expected shape {shape}")
        return array.reshape(shape)

    data = {name: {key: read(entry) for key, entry in part.items()} for name, part in meta["arrays"].items()}
    return meta, data


def standardization(meta, train_x, mode):
    """(mean, std) per channel as float32 arrays, or None."""
    if mode == "bundle":
        spec = meta.get("normalization", "none")
        if spec == "none" or spec is None:
            return None
        return np.asarray(spec["mean"], dtype=np.float32), np.asarray(spec["std"], dtype=np.float32)
    if mode == "none":
        return None
    c = meta["image_shape"][0]
    per_channel = train_x.reshape(train_x.shape[0], c, -1).astype(np.float64)
    mean = per_channel.mean(axis=(0, 2))
    std = np.sqrt(((per_channel - mean[None, :, None]) ** 2).mean(axis=(0, 2)))  # population std
    return mean.astype(np.float32), std.astype(np.float32)


def apply_standardization(x, norm, image_shape):
    if norm is None:
        return x
    mean, std = norm
    c = image_shape[0]
    shaped = x.reshape(x.shape[0], c, -1)
    return ((shaped - mean[None, :, None]) / std[None, :, None]).reshape(x.shape).astype(np.float32)


# ------------------------------------------------------------------------------------------- student

class Student(nn.Module):
    """SmallCnn backbone (z) and one or two Linear heads; built in the trainer's order: backbone, h_CE, h_KD."""

    def __init__(self, image_shape, hidden, classes, two_heads, channels_last=True):
        super().__init__()
        self.channels_last = channels_last
        c, h, w = image_shape
        self.image_shape = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), hidden), nn.ReLU())
        self.ce_head = nn.Linear(hidden, classes)
        self.kd_head = nn.Linear(hidden, classes) if two_heads else None
        if channels_last:
            self.features.to(memory_format=torch.channels_last)

    def backbone(self, x):
        image = x.view(-1, *self.image_shape)
        if self.channels_last:  # a memory layout only (same arithmetic); Debian's torch is faster with it
            image = image.contiguous(memory_format=torch.channels_last)
        return self.embed(self.features(image))

    def forward_training(self, x, labeled_rows):
        z = self.backbone(x)
        if self.kd_head is None:
            all_logits = self.ce_head(z)
            return all_logits[:labeled_rows], all_logits
        return self.ce_head(z[:labeled_rows]), self.kd_head(z)

    def forward(self, x):
        z = self.backbone(x)
        ce = self.ce_head(z)
        return ce, (ce if self.kd_head is None else self.kd_head(z))


# ---------------------------------------------------------------------------------------------- loss

def distillation(student_logits, teacher_logits, temperature):
    """batchmean KL(softmax(t/T) || softmax(s/T)) * T^2 over the rows given (0 for no rows)."""
    rows = student_logits.shape[0]
    if rows == 0:
        return student_logits.sum() * 0
    log_pt = F.log_softmax(teacher_logits / temperature, dim=1)
    log_ps = F.log_softmax(student_logits / temperature, dim=1)
    return (log_pt.exp() * (log_pt - log_ps)).sum() / rows * (temperature * temperature)


def learning_rate(step, total_steps, warmup, peak):
    """LearningRateSchedule.At: linear warm-up, then cosine decay to zero."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    decay = max(1, total_steps - warmup)
    progress = min(max((step - warmup) / decay, 0.0), 1.0)
    return 0.5 * peak * (1 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------------------ batching

class BatchSampler:
    """BatchSampler's protocol: an epoch is one pass over the unlabeled rows in a fresh shuffled order, in
    chunks of the unlabeled batch size (the last one smaller); each step also takes a labeled batch, cycled
    through a shuffled labeled list that is reshuffled whenever it runs out."""

    def __init__(self, labeled, unlabeled, labeled_batch, unlabeled_batch, seed):
        self.rng = np.random.RandomState(seed)
        self.labeled = np.array(labeled, dtype=np.int64)
        self.unlabeled = np.array(unlabeled, dtype=np.int64)
        self.labeled_batch = min(labeled_batch, len(self.labeled))
        self.unlabeled_batch = max(1, min(unlabeled_batch, len(self.unlabeled)))
        self.rng.shuffle(self.labeled)
        self.cursor = 0

    @property
    def steps_per_epoch(self):
        if len(self.unlabeled) > 0:
            return (len(self.unlabeled) + self.unlabeled_batch - 1) // self.unlabeled_batch
        return (len(self.labeled) + self.labeled_batch - 1) // self.labeled_batch

    def epoch(self):
        self.rng.shuffle(self.unlabeled)
        for step in range(self.steps_per_epoch):
            unl = self.unlabeled[step * self.unlabeled_batch:(step + 1) * self.unlabeled_batch]
            yield self.next_labeled(), unl

    def next_labeled(self):
        batch = np.empty(self.labeled_batch, dtype=np.int64)
        for i in range(self.labeled_batch):
            if self.cursor == len(self.labeled):
                self.rng.shuffle(self.labeled)
                self.cursor = 0
            batch[i] = self.labeled[self.cursor]
            self.cursor += 1
        return batch


# ---------------------------------------------------------------------------------------- train/eval

def train(mode, seed, hp, meta, x, y, t, epochs, log):
    """Trains one student; mode is 'supervised_only', 'single_head_kd' or 'dho'. Returns (model, epoch reports)."""
    supervised = mode == "supervised_only"
    torch.manual_seed(seed)
    model = Student(meta["image_shape"], hp["hidden_size"], meta["classes"], two_heads=(mode == "dho"))
    labeled = np.nonzero(y >= 0)[0]
    unlabeled = np.nonzero(y < 0)[0]
    sampler = BatchSampler(labeled, unlabeled, hp["labeled_batch_size"], hp["unlabeled_batch_size"], seed)
    total_steps = sampler.steps_per_epoch * epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["learning_rate"], weight_decay=hp["weight_decay"])
    lam, temperature = hp["lambda"], hp["temperature"]
    xt, yt, tt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), torch.from_numpy(t)
    step = 0
    reports = []
    for epoch in range(1, epochs + 1):
        model.train()
        sums = np.zeros(3)
        steps = 0
        start = time.time()
        for lb, ub in sampler.epoch():
            lr = learning_rate(step, total_steps, hp["warmup_steps"], hp["learning_rate"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = lb if supervised else np.concatenate([lb, ub])
            nl = len(lb)
            xb = xt[rows]
            ce_logits, kd_all = model.forward_training(xb, nl)
            ce = F.cross_entropy(ce_logits, yt[lb])
            if supervised:
                loss, kd = ce, torch.tensor(float("nan"))
            else:
                tb = tt[rows]
                kd = distillation(kd_all[:nl], tb[:nl], temperature) + distillation(kd_all[nl:], tb[nl:], temperature)
                loss = lam * ce + (1 - lam) * kd
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sums += [ce.item(), kd.item(), loss.item()]
            steps += 1
            step += 1
        ce_mean, kd_mean, loss_mean = sums / steps
        reports.append({"epoch": epoch, "steps": steps, "ce": ce_mean, "kd": None if supervised else kd_mean, "loss": loss_mean, "lr": lr,
                        "seconds": time.time() - start})
        log(f"  {mode} seed {seed} epoch {epoch}/{epochs}: CE {ce_mean:.4f}, KD {'-' if supervised else f'{kd_mean:.4f}'}, loss {loss_mean:.4f}, lr {lr:.2e}, {time.time() - start:.0f}s")
    model.eval()
    return model, reports


@torch.no_grad()
def logits(model, x, batch=256):
    ce, kd = [], []
    for start in range(0, len(x), batch):
        c, k = model(torch.from_numpy(x[start:start + batch]))
        ce.append(c)
        kd.append(k)
    return torch.cat(ce), torch.cat(kd)


def combine(ce, kd, alpha, beta):
    """HeadCombiner: argmax of alpha*softmax(h_CE) + (1-alpha)*softmax(h_KD/beta)."""
    alpha, beta = float(np.float32(alpha)), float(np.float32(beta))  # the float32 grid values
    p = alpha * torch.softmax(ce, dim=1) + (1 - alpha) * torch.softmax(kd / beta, dim=1)
    return p.argmax(dim=1).numpy()


def accuracy(predicted, labels):
    return float((predicted == labels).mean())


def search_alpha_beta(ce, kd, labels, alpha_grid, beta_grid):
    """AlphaBetaSearch: best validation accuracy; ties keep the first point in grid order (alpha outer, beta inner)."""
    best = None
    for alpha in alpha_grid:
        for beta in beta_grid:
            acc = accuracy(combine(ce, kd, alpha, beta), labels)
            if best is None or acc > best[2]:
                best = (alpha, beta, acc)
    return best


# ---------------------------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("out")
    parser.add_argument("--normalization", choices=["bundle", "none", "standardize"], default="bundle")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the bundle's)")
    parser.add_argument("--methods", default="supervised_only,single_head_kd,dho")
    parser.add_argument("--epochs", type=int, help="default: the bundle's")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)

    def log(message):
        print(message, flush=True)

    meta, data = load_bundle(args.bundle)
    hp = meta["hyper_parameters"]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else meta["seeds"]
    epochs = args.epochs or hp["epochs"]
    methods = args.methods.split(",")
    image_shape = meta["image_shape"]

    train_x = data["train"]["features"]
    norm = standardization(meta, train_x, args.normalization)
    x = apply_standardization(train_x, norm, image_shape)
    val_x = apply_standardization(data["validation"]["features"], norm, image_shape)
    test_x = apply_standardization(data["test"]["features"], norm, image_shape)
    y, t = data["train"]["labels"], data["train"]["teacher"]
    val_y, test_y = data["validation"]["labels"], data["test"]["labels"]
    norm_json = "none" if norm is None else {"mean": norm[0].tolist(), "std": norm[1].tolist()}
    log(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads; {int((y >= 0).sum())} labeled + {int((y < 0).sum())} unlabeled rows, "
        f"{len(val_y)} validation, {len(test_y)} test; {epochs} epochs; seeds {seeds}; normalization {json.dumps(norm_json)}")

    runs = {k: [] for k in ["supervised_only", "single_head_kd", "dho_default", "dho_auto", "ce_head", "kd_head"]}
    seconds = {m: [] for m in methods}
    epochs_report = {m: [] for m in methods}
    chosen = []

    def write(final=False):
        """The results so far (after every fit, so a stopped run keeps what it finished)."""
        result = {
            "torch_version": torch.__version__, "threads": torch.get_num_threads(), "seeds": seeds, "epochs": epochs,
            "normalization": norm_json, "runs": {k: v for k, v in runs.items() if v}, "seconds": seconds,
            "epoch_reports": epochs_report, "chosen_alpha_beta": chosen, "complete": final,
        }
        with open(args.out + ".tmp", "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, allow_nan=False)
        os.replace(args.out + ".tmp", args.out)
        if final:
            log(f"wrote {args.out}")

    for seed in seeds:
        for method in methods:
            start = time.time()
            model, reports = train(method, seed, hp, meta, x, y, t, epochs, log)
            seconds[method].append(time.time() - start)
            epochs_report[method].append(reports)
            ce, kd = logits(model, test_x)
            if method != "dho":
                acc = accuracy(ce.argmax(dim=1).numpy(), test_y)
                runs[method].append(acc)
                log(f"seed {seed} {method}: test {acc * 100:.2f}% ({seconds[method][-1]:.0f}s)")
                write()
                continue
            vce, vkd = logits(model, val_x)
            alpha, beta, vacc = search_alpha_beta(vce, vkd, val_y, meta["alpha_grid"], meta["beta_grid"])
            chosen.append({"seed": seed, "alpha": alpha, "beta": beta, "validation_accuracy": vacc})
            runs["dho_auto"].append(accuracy(combine(ce, kd, alpha, beta), test_y))
            runs["dho_default"].append(accuracy(combine(ce, kd, 0.5, 0.5), test_y))
            runs["ce_head"].append(accuracy(ce.argmax(dim=1).numpy(), test_y))
            runs["kd_head"].append(accuracy(kd.argmax(dim=1).numpy(), test_y))
            log(f"seed {seed} dho_default: test {runs['dho_default'][-1] * 100:.2f}%")
            log(f"seed {seed} dho_auto: test {runs['dho_auto'][-1] * 100:.2f}% (alpha {alpha}, beta {beta}, validation {vacc * 100:.1f}%; "
                f"CE head {runs['ce_head'][-1] * 100:.2f}%, KD head {runs['kd_head'][-1] * 100:.2f}%; {seconds[method][-1]:.0f}s)")
            write()

    write(final=True)


if __name__ == "__main__":
    main()
