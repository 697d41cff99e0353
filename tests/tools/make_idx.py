"""Writes a small, learnable data set in the Fashion-MNIST file layout.

usage: /usr/bin/python3 tests/tools/make_idx.py OUTDIR [--train N] [--test N] [--plain]
                                                [--size S] [--classes K]

Each class has a fixed random prototype image (a blocky pattern shared by all classes
plus a smaller class-specific one); an image is its class's prototype plus Gaussian
noise, clipped to [0, 255], and 10% of the labels are random. An MLP learns it in an
epoch or two (top-1 about 80-90%, well below 100%), so tests can check in seconds that
training gets clearly above chance and that accuracies agree between commands.
Deterministic (fixed seed): the same arguments always write the same bytes.

Files are gzipped (train-images-idx3-ubyte.gz, ...) unless --plain is given. --size
(default 28) and --classes (default 10) make data that does not fit a model.
"""
import argparse
import gzip
import os
import struct

import numpy as np


def idx_bytes(a):
    """IDX: magic 0x0000 08 NDIM (u8 elements), one big-endian u32 per dimension, data."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return struct.pack(">I", 0x0800 | a.ndim) + struct.pack(">%dI" % a.ndim, *a.shape) + a.tobytes()


def make_split(rng, protos, n):
    classes, h, w = protos.shape
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    noise = rng.normal(0.0, 60.0, size=(n, h, w))
    images = np.clip(protos[labels] + noise, 0, 255).round().astype(np.uint8)
    # 10% of the labels are replaced by random ones, so that top-1 stays below 100% and
    # accuracies read as distinct numbers (about 91% at best).
    flip = rng.random(n) < 0.1
    labels[flip] = rng.integers(0, classes, size=int(flip.sum()))
    return images, labels.astype(np.uint8)


def write(path, data, plain):
    if plain:
        with open(path, "wb") as f:
            f.write(data)
    else:
        # mtime=0 keeps the gzip header, and so the file, identical between runs.
        with open(path + ".gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(data)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("outdir")
    p.add_argument("--train", type=int, default=1200, help="training images (default 1200)")
    p.add_argument("--test", type=int, default=300, help="test images (default 300)")
    p.add_argument("--plain", action="store_true", help="write uncompressed files")
    p.add_argument("--size", type=int, default=28, help="image height and width (default 28)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    a = p.parse_args()
    if a.train < 1 or a.test < 1 or a.size < 1 or not 2 <= a.classes <= 256:
        p.error("--train, --test and --size must be positive, --classes in [2, 256]")
    rng = np.random.default_rng(20240611)
    # Prototypes: a shared blocky random pattern (4x4 cells) plus a smaller class-specific
    # one, so that classes overlap under the noise but stay separable in broad strokes.
    c = (a.size + 3) // 4
    base = rng.uniform(0, 255, size=(1, c, c))
    cells = base + 0.15 * rng.uniform(-255, 255, size=(a.classes, c, c))
    protos = np.kron(cells, np.ones((4, 4)))[:, :a.size, :a.size]
    os.makedirs(a.outdir, exist_ok=True)
    for split, n in (("train", a.train), ("t10k", a.test)):
        images, labels = make_split(rng, protos, n)
        write(os.path.join(a.outdir, "%s-images-idx3-ubyte" % split), idx_bytes(images), a.plain)
        write(os.path.join(a.outdir, "%s-labels-idx1-ubyte" % split), idx_bytes(labels), a.plain)


if __name__ == "__main__":
    main()
