#!/usr/bin/env python3
"""Train a small CNN teacher on the paper benchmark's teacher pool and export it to ONNX.

The pool (training-image indices and labels, possibly confused within class pairs) comes from
    dotnet run -c Release --project bench/DualHeadML.Bench -- paper --write-pool pool.txt [--confuse 0-6,2-4]
so the teacher never sees a student row. Then
    python3 bench/teachers/train_cnn_teacher.py pool.txt teacher.onnx
and give the ONNX file to the benchmark:
    ... -- paper --teacher teacher.onnx --teacher-input input --teacher-output logits

Needs Debian's python3-torch and the Fashion-MNIST files ($FASHION_MNIST_DIR or
/usr/share/datasets/fashion-mnist). Input [N,1,28,28] pixels in [0,1]; output 10 logits in
Fashion-MNIST's label order. The architecture is the student's backbone with one head:
conv3x3(1->32) ReLU maxpool2, conv3x3(32->64) ReLU maxpool2, Linear(3136->128) ReLU, Linear(128->10).
"""
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn


def load_images(directory):
    with gzip.open(os.path.join(directory, "train-images-idx3-ubyte.gz"), "rb") as f:
        data = f.read()
    count = int.from_bytes(data[4:8], "big")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, 1, 28, 28).astype(np.float32) / 255.0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pool_path, out_path = sys.argv[1], sys.argv[2]
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    directory = os.environ.get("FASHION_MNIST_DIR") or "/usr/share/datasets/fashion-mnist"
    images = load_images(directory)
    pool = np.loadtxt(pool_path, dtype=np.int64).reshape(-1, 2)
    x = torch.from_numpy(images[pool[:, 0]])
    y = torch.from_numpy(pool[:, 1])

    torch.manual_seed(13)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    steps = epochs * ((len(x) + 127) // 128)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(13)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), 128):
            batch = order[start:start + 128]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", flush=True)

    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), out_path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    print(f"wrote {out_path} ({sum(p.numel() for p in model.parameters())} parameters)")


if __name__ == "__main__":
    main()
