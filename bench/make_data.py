"""Writes a tiny random image set for `nepenthe collapse` to count rectifier states on and
check the collapsed model against the original (the pixels are uniform noise, seed 0).

Usage: python3 bench/make_data.py DIR png [--size 32] [--classes 10] [--train 20] [--val 5]
       python3 bench/make_data.py DIR idx [--size 28] [--classes 10] [--train 20] [--val 5]

png: RGB PNGs in torchvision's ImageFolder layout, DIR/{train,val}/<class>/<i>.png, for
     `--data folder --data-dir DIR` (the folder loader makes every image 3 channels);
idx: grayscale MNIST idx files DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte, for
     `--data mnist --data-dir DIR` (1-channel models such as the MLP on 1x28x28).
--train and --val are images per class. Does nothing when DIR/.done holds the same settings.
"""
import argparse
import os
import struct

import numpy as np


def write_idx(path, data):
    """An idx file: magic 0x0000 08 <ndims>, big-endian dims, then the uint8 data."""
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, data.ndim))
        f.write(struct.pack(f">{data.ndim}I", *data.shape))
        f.write(np.ascontiguousarray(data, dtype=np.uint8).tobytes())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("format", choices=("png", "idx"))
    p.add_argument("--size", type=int, default=0, help="image side (default: png 32, idx 28)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--train", type=int, default=20)
    p.add_argument("--val", type=int, default=5)
    a = p.parse_args()
    size = a.size or (32 if a.format == "png" else 28)
    tag = f"{a.format} {size} {a.classes} {a.train} {a.val}\n"
    done = os.path.join(a.dir, ".done")
    if os.path.exists(done) and open(done).read() == tag:
        return
    os.makedirs(a.dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", a.train), ("val", a.val)):
        labels = np.repeat(np.arange(a.classes, dtype=np.uint8), n)
        if a.format == "idx":
            name = "train" if split == "train" else "t10k"
            write_idx(os.path.join(a.dir, f"{name}-images-idx3-ubyte"),
                      rng.integers(0, 256, (len(labels), size, size), dtype=np.uint8))
            write_idx(os.path.join(a.dir, f"{name}-labels-idx1-ubyte"), labels)
            continue
        from PIL import Image
        for i, c in enumerate(labels):
            d = os.path.join(a.dir, split, f"class{c:02d}")
            os.makedirs(d, exist_ok=True)
            px = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(px, "RGB").save(os.path.join(d, f"{i:04d}.png"))
    with open(done, "w") as f:
        f.write(tag)


if __name__ == "__main__":
    main()
