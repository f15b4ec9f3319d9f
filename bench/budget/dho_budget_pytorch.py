#!/usr/bin/env python3
"""The PyTorch side of `bench budget`: DHO on the bundle's rows within a wall-clock budget, in plain fp32 eager PyTorch.

    /usr/bin/python3 bench/budget/dho_budget_pytorch.py BUNDLE_DIR OUT.json [--threads 2]

The student is the one our side trains: the ONNX CNN named in bundle.json (the ImageNet ResNet-18 of
Microsoft.ML.DnnImageFeaturizer.ResNet18, a CNTK export) built as a torch module from the ONNX file with python3-onnx,
with the file's weights (Conv, BatchNormalization with its running statistics, ReLU, Add, MaxPool, the AveragePool that
is the global average; asymmetric pads as an explicit pad first, as OnnxCnnNetwork does), its first convolution's input
channels reversed where the graph reads BGR, the same per-channel standardisation in front, and two Linear heads.
The protocol is bench/parity/dho_pytorch.py's (its batching, loss and learning-rate schedule are imported from there)
with the bundle's hyperparameters; what a PyTorch user would write: fp32, eager, channels-last (faster on this torch),
no recipe (no Precise BatchNorm, no frozen stages, no validation during training).

The budget is spent as our TimeBudget spends it: the clock starts before a probe of 8 steps on a throwaway copy of the
student; the epochs that fit in 92 % of what is left are chosen and the cosine schedule spans them; no epoch starts
that would end after the budget. At every epoch end the weights are copied (clock paused); afterwards each copy is
scored: alpha and beta on the validation rows (HeadCombiner's grid), then the test accuracy. The JSON holds the curve
[[seconds, accuracy], ...] and the step timings. Needs python3, torch, numpy and python3-onnx.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "speed"))
from dho_pytorch import BatchSampler, combine, distillation, learning_rate, load_bundle, logits, search_alpha_beta, accuracy  # noqa: E402
from dho_step_pytorch import blas  # noqa: E402


class OnnxCnn(nn.Module):
    """An ONNX graph of Conv / BatchNormalization / Relu / Add / MaxPool / AveragePool / GlobalAveragePool as torch layers."""

    def __init__(self, path, swap_input_channels):
        super().__init__()
        model = onnx.load(path)
        weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.input = next(i.name for i in model.graph.input if i.name not in weights)
        self.output = model.graph.output[0].name
        self.layers = nn.ModuleDict()
        self.steps = []
        for index, node in enumerate(model.graph.node):
            a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
            name = f"n{index}"
            op = node.op_type
            if op == "Conv":
                w = weights[node.input[1]].astype(np.float32)
                if swap_input_channels and node.input[0] == self.input:
                    w = w[:, ::-1].copy()
                group = a.get("group", 1)
                conv = nn.Conv2d(w.shape[1] * group, w.shape[0], tuple(a.get("kernel_shape", w.shape[2:])), stride=tuple(a.get("strides", [1, 1])),
                                 groups=group, bias=len(node.input) > 2 and node.input[2] != "")
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(w))
                    if conv.bias is not None:
                        conv.bias.copy_(torch.from_numpy(weights[node.input[2]].astype(np.float32)))
                self.layers[name] = conv
                self.steps.append(("conv", name, list(node.input[:1]), node.output[0], list(a.get("pads", [0, 0, 0, 0]))))
            elif op == "BatchNormalization":
                scale = weights[node.input[1]]
                bn = nn.BatchNorm2d(scale.shape[0], eps=a.get("epsilon", 1e-5), momentum=0.1)  # OnnxCnnNetwork's BatchNorm2d
                with torch.no_grad():
                    for target, i in ((bn.weight, 1), (bn.bias, 2), (bn.running_mean, 3), (bn.running_var, 4)):
                        target.copy_(torch.from_numpy(weights[node.input[i]].astype(np.float32).reshape(-1)))
                self.layers[name] = bn
                self.steps.append(("bn", name, [node.input[0]], node.output[0], None))
            elif op == "Relu":
                self.steps.append(("relu", name, [node.input[0]], node.output[0], None))
            elif op == "Add":
                self.steps.append(("add", name, list(node.input), node.output[0], None))
            elif op == "MaxPool":
                self.steps.append(("maxpool", name, [node.input[0]], node.output[0], (list(a["kernel_shape"]), list(a.get("strides", [1, 1])), list(a.get("pads", [0, 0, 0, 0])))))
            elif op in ("AveragePool", "GlobalAveragePool"):
                # The CNTK export's 7x7 AveragePool covers the whole map at its declared 224x224 input: the global average.
                if op == "AveragePool" and (node.output[0] != self.output or any(a.get("pads", [0, 0, 0, 0]))):
                    sys.exit(f"{path}: node {node.name} is an AveragePool that is not the final global average")
                self.steps.append(("gap", name, [node.input[0]], node.output[0], None))
            else:
                sys.exit(f"{path}: node {node.name} is a {op}; this script builds Conv, BatchNormalization, Relu, Add, MaxPool, AveragePool")

    @staticmethod
    def pad(x, pads, value):
        top, left, bottom, right = pads
        return x if not any(pads) else F.pad(x, (left, right, top, bottom), value=value)

    def forward(self, images):
        values = {self.input: images}
        for kind, name, inputs, output, extra in self.steps:
            x = values[inputs[0]]
            if kind == "conv":
                y = self.layers[name](self.pad(x, extra, 0.0))
            elif kind == "bn":
                y = self.layers[name](x)
            elif kind == "relu":
                y = F.relu(x)
            elif kind == "add":
                y = x + values[inputs[1]]
            elif kind == "maxpool":
                kernel, strides, pads = extra
                y = F.max_pool2d(self.pad(x, pads, float("-inf")), kernel, strides)
            else:
                y = F.adaptive_avg_pool2d(x, 1)
            values[output] = y
            if output == self.output:
                break
        return values[self.output].flatten(1)


class Student(nn.Module):
    def __init__(self, backbone, features, classes, image_shape, mean, std):
        super().__init__()
        self.backbone = backbone
        self.image_shape = image_shape
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.ce_head = nn.Linear(features, classes)
        self.kd_head = nn.Linear(features, classes)
        self.backbone.to(memory_format=torch.channels_last)

    def embed(self, x):
        images = ((x.view(-1, *self.image_shape) - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.backbone(images)

    def forward_training(self, x, labeled_rows):
        z = self.embed(x)
        return self.ce_head(z[:labeled_rows]), self.kd_head(z)

    def forward(self, x):
        z = self.embed(x)
        return self.ce_head(z), self.kd_head(z)


def step(model, optimizer, xt, yt, tt, lb, ub, lr, hp):
    for group in optimizer.param_groups:
        group["lr"] = lr
    rows = np.concatenate([lb, ub])
    nl = len(lb)
    ce_logits, kd_all = model.forward_training(xt[rows], nl)
    tb = tt[rows]
    ce = F.cross_entropy(ce_logits, yt[lb])
    kd = distillation(kd_all[:nl], tb[:nl], hp["temperature"]) + distillation(kd_all[nl:], tb[nl:], hp["temperature"])
    loss = hp["lambda"] * ce + (1 - hp["lambda"]) * kd
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def heads(model, x):
    model.eval()
    return logits(model, x)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    meta, data = load_bundle(args.bundle)
    hp = meta["hyperparameters"]
    budget = float(meta["minutes"]) * 60
    seed = int(meta["seed"])
    x, y, t = data["train"]["x"], data["train"]["y"], data["train"]["t"]
    labeled, unlabeled = np.nonzero(y >= 0)[0], np.nonzero(y < 0)[0]

    torch.manual_seed(seed)
    backbone = OnnxCnn(meta["onnx"], meta["swap_input_channels"])
    model = Student(backbone, meta["features"], meta["classes"], meta["image_shape"], meta["mean"], meta["std"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["learning_rate"], weight_decay=hp["weight_decay"])
    xt, yt, tt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), torch.from_numpy(t)
    sampler = BatchSampler(labeled, unlabeled, hp["labeled_batch_size"], hp["unlabeled_batch_size"], seed)

    clock = time.perf_counter()
    paused = 0.0

    def elapsed():
        return time.perf_counter() - clock - paused

    # The probe: 8 steps on a throwaway copy (the first untimed), as our TimeBudget does.
    probe_model, probe_sampler = copy.deepcopy(model), BatchSampler(labeled, unlabeled, hp["labeled_batch_size"], hp["unlabeled_batch_size"], seed)
    probe_optimizer = torch.optim.AdamW(probe_model.parameters(), lr=hp["learning_rate"], weight_decay=hp["weight_decay"])
    probe_model.train()
    marks = []
    for i, (lb, ub) in enumerate(probe_sampler.epoch()):
        step(probe_model, probe_optimizer, xt, yt, tt, lb, ub, hp["learning_rate"], hp)
        marks.append(time.perf_counter())
        if i == 7:
            break
    step_seconds = (marks[-1] - marks[0]) / (len(marks) - 1)
    del probe_model, probe_optimizer
    steps_per_epoch = sampler.steps_per_epoch
    left = (budget - elapsed()) * 0.92
    epochs = max(1, int(math.floor(left / (steps_per_epoch * step_seconds))))
    total_steps = epochs * steps_per_epoch
    print(f"pytorch: probe {step_seconds * 1000:.0f} ms/step, {steps_per_epoch} steps an epoch, {epochs} epochs in the {budget:.0f}s budget", flush=True)

    snapshots = []
    global_step = 0
    epoch_seconds = []
    for epoch in range(1, epochs + 1):
        model.train()
        start = elapsed()
        for lb, ub in sampler.epoch():
            step(model, optimizer, xt, yt, tt, lb, ub, learning_rate(global_step, total_steps, hp["warmup_steps"], hp["learning_rate"]), hp)
            global_step += 1
        epoch_seconds.append(elapsed() - start)
        copied = time.perf_counter()
        snapshots.append((elapsed(), epoch, copy.deepcopy(model.state_dict())))
        paused += time.perf_counter() - copied
        print(f"pytorch: epoch {epoch}/{epochs} at {elapsed():.0f}s ({epoch_seconds[-1] / steps_per_epoch * 1000:.0f} ms/step)", flush=True)
        if epoch < epochs and elapsed() + epoch_seconds[-1] > budget:
            print(f"pytorch: stopping after epoch {epoch}: the next epoch would end after the budget", flush=True)
            break

    grid_a, grid_b = meta["alpha_grid"], meta["beta_grid"]
    curve = []
    for seconds, epoch, state in snapshots:
        model.load_state_dict(state)
        vce, vkd = heads(model, data["validation"]["x"])
        alpha, beta, _ = search_alpha_beta(vce, vkd, data["validation"]["y"], grid_a, grid_b)
        tce, tkd = heads(model, data["test"]["x"])
        acc = accuracy(combine(tce, tkd, alpha, beta), data["test"]["y"])
        curve.append([seconds, acc])
        print(f"pytorch: epoch {epoch} ({seconds:.0f}s): test {acc * 100:.2f} % (alpha {alpha}, beta {beta})", flush=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"curve": curve, "epochs": epochs, "epochs_run": len(snapshots), "steps_per_epoch": steps_per_epoch, "probe_ms_per_step": step_seconds * 1000,
                   "ms_per_step": 1000 * sum(epoch_seconds) / (len(epoch_seconds) * steps_per_epoch), "torch_version": torch.__version__, "threads": torch.get_num_threads(),
                   "blas": blas()}, f, indent=1)


if __name__ == "__main__":
    main()
