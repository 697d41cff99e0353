"""Trains nepenthe's `cnn` twin in PyTorch on an IDX data set (as tests/tools/make_idx.py
writes) for the conversion test, and saves its state_dict with numpy.

Usage: /usr/bin/python3 tests/tools/torch_train_small.py DATA_DIR OUT.npz
Prints one JSON line: the test accuracy PyTorch measured and the normalization used."""
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main(data, out):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    xtr = idx(os.path.join(data, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255
    ytr = idx(os.path.join(data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte = idx(os.path.join(data, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255
    yte = idx(os.path.join(data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    mean, std = float(xtr.mean()), float(xtr.std())
    # nepenthe's loader computes (x - mean) / std in float32 from the same values
    norm = lambda x: torch.from_numpy(((x - np.float32(mean)) / np.float32(std))[:, None])  # noqa: E731
    model = torch_models.build("cnn", in_c=1, classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    xt, yt = norm(xtr), torch.from_numpy(ytr)
    model.train()
    for epoch in range(4):
        perm = torch.randperm(len(yt))
        for i in range(0, len(yt), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(norm(xte)).argmax(1) == torch.from_numpy(yte)).float().mean().item() * 100
    np.savez(out, **{k: v.numpy() for k, v in model.state_dict().items()})
    print(json.dumps({"test_top1": acc, "mean": mean, "std": std}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
