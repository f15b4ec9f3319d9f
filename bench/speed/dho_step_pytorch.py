#!/usr/bin/env python3
"""The PyTorch side of `bench speed`: times the DHO training step of the official recipe on synthetic data.

    python3 bench/speed/dho_step_pytorch.py --model small_cnn|resnet18|mobilenet_v3_small [--steps 10] [--warmup 3] [--threads 2]

One step = forward of the shared backbone over 64 labeled + 64 unlabeled rows, h_CE on the labeled rows,
h_KD on all rows, L = 0.5 CE + 0.5 KD (KL(softmax(t/T) || softmax(h_KD/T)) T^2 with T = 2, labeled and
unlabeled batches averaged separately, then added), backward, AdamW(1e-3, weight decay 0.01); the loss is read
back every step (loss.item(), as a training loop logs it). Rows are fixed random tensors, as on our side.

  small_cnn: our SmallCnn: conv3x3(1->32) ReLU maxpool2, conv3x3(32->64) ReLU maxpool2, Linear(3136->128) ReLU,
             on 1x28x28 rows, two Linear(128->10) heads.
  resnet18:  torchvision.models.resnet18() (random init, fc replaced by the two Linear(512->10) heads) on 3x64x64.
  mobilenet_v3_small: torchvision.models.mobilenet_v3_small() up to its pre-logits (Linear 576->1024, Hardswish),
             as our MobileNetV3Small backbone, on 3x64x64, two Linear(1024->10) heads.

PyTorch runs eager fp32 in its default (contiguous, NCHW) layout, as a PyTorch user's script does. The JSON says
which BLAS torch was built with and whether OpenBLAS was put first (LD_LIBRARY_PATH).

Prints one JSON line: {"model": ..., "ms_per_step": median, "steps_ms": [...], "threads": ..., "torch": ...}.
Needs torch and torchvision only (Debian's python3-torch 1.13 and python3-torchvision 0.14). For a fair
BLAS, run it with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp (libopenblas0-openmp), as the
C# side of `bench speed` does when that folder exists.
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F


class DualHead(nn.Module):
    def __init__(self, backbone, features, classes):
        super().__init__()
        self.backbone = backbone
        self.ce_head = nn.Linear(features, classes)
        self.kd_head = nn.Linear(features, classes)

    def forward(self, x, labeled):
        z = self.backbone(x)
        return self.ce_head(z[:labeled]), self.kd_head(z)


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU()), 128, (1, 28, 28)


def resnet18():
    import torchvision
    model = torchvision.models.resnet18()
    model.fc = nn.Identity()
    return model, 512, (3, 64, 64)


def mobilenet_v3_small():
    import torchvision
    model = torchvision.models.mobilenet_v3_small()
    model.classifier = nn.Sequential(model.classifier[0], model.classifier[1])
    return model, 1024, (3, 64, 64)


def kd_term(student_logits, teacher_logits, temperature):
    # KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over the rows
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    log_q = F.log_softmax(teacher_logits / temperature, dim=1)
    return (log_q.exp() * (log_q - log_p)).sum(1).mean() * temperature ** 2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["small_cnn", "resnet18", "mobilenet_v3_small"], required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--labeled", type=int, default=64)
    parser.add_argument("--unlabeled", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    classes, temperature, lam = 10, 2.0, 0.5
    backbone, features, shape = {"small_cnn": small_cnn, "resnet18": resnet18, "mobilenet_v3_small": mobilenet_v3_small}[args.model]()
    model = DualHead(backbone, features, classes)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    nl, n = args.labeled, args.labeled + args.unlabeled
    x = torch.rand(n, *shape)
    y = torch.randint(0, classes, (nl,))
    t = torch.randn(n, classes)

    def step():
        ce_logits, kd_logits = model(x, nl)
        ce = F.cross_entropy(ce_logits, y)
        kd = kd_term(kd_logits[:nl], t[:nl], temperature) + kd_term(kd_logits[nl:], t[nl:], temperature)
        loss = lam * ce + (1 - lam) * kd
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"model": args.model, "ms_per_step": statistics.median(times), "steps_ms": times,
                      "threads": torch.get_num_threads(), "torch": torch.__version__, "blas": blas()}))


def blas():
    # The BLAS torch's process loaded (OpenBLAS when LD_LIBRARY_PATH points at openblas-openmp), from its memory map.
    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1].rsplit("/", 1)[-1] for line in maps if "blas" in line.lower() or "mkl" in line.lower()}
        return ", ".join(sorted(libs)) or "none loaded"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
