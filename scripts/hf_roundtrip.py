#!/usr/bin/python3
"""Checks that a Hugging Face model folder written by nepenthe (nep_hf_weights_write,
nep_hf_config_write) is what transformers' from_pretrained expects, with numpy only
(transformers is not installed here): this is an independent reading of the same files.

    /usr/bin/python3 scripts/hf_roundtrip.py FOLDER

Checks: config.json is a JSON object with model_type, consistent id2label / label2id
and no num_labels that contradicts them; model.safetensors, or
model.safetensors.index.json with {"metadata": {"total_size": N}, "weight_map": {...}}
whose shards are named model-0000k-of-0000n.safetensors for k = 1..n, each holding
exactly the tensors the index maps to it, total_size equal to the bytes of all tensors;
every file's header valid, __metadata__ "format" == "pt" (transformers' loader refuses
other values), tensors contiguous, 8-byte aligned data, and every floating tensor
finite when decoded with numpy (F16 as float16, BF16 as the high half of float32).
Prints one line per problem and exits 1 if there is any."""
import json
import os
import re
import struct
import sys

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
          "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
          "BOOL": np.bool_}


def read_header(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    return header, blob[8 + n:], n


def check_file(path, problems):
    """Returns {name: nbytes} of the file's tensors."""
    header, data, n = read_header(path)
    meta = header.pop("__metadata__", None)
    if not meta or meta.get("format") != "pt":
        problems.append(f"{path}: __metadata__ format is {meta and meta.get('format')!r}, not 'pt'")
    if n % 8:
        problems.append(f"{path}: header length {n} leaves the data unaligned")
    sizes, end = {}, 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = t["data_offsets"]
        dt = np.dtype(DTYPES[t["dtype"]])
        count = int(np.prod(t["shape"], dtype=np.int64))
        if b != end or e - b != count * dt.itemsize:
            problems.append(f"{path}: tensor {name} at [{b}, {e}) is not contiguous or sized")
        end = e
        arr = np.frombuffer(data[b:e], dtype=dt).reshape(t["shape"])
        if t["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            problems.append(f"{path}: tensor {name} has non-finite values")
        sizes[name] = e - b
    if end != len(data):
        problems.append(f"{path}: {len(data) - end} bytes after the last tensor")
    return sizes


def check_config(folder, problems):
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        cfg = json.load(f)
    if not isinstance(cfg, dict) or "model_type" not in cfg:
        problems.append(f"{path}: no model_type")
        return
    id2label = cfg.get("id2label", {})
    label2id = cfg.get("label2id", {})
    if {int(k): v for k, v in id2label.items()} != {v: k for k, v in label2id.items()}:
        problems.append(f"{path}: id2label and label2id disagree")
    if sorted(int(k) for k in id2label) != list(range(len(id2label))):
        problems.append(f"{path}: id2label keys are not 0..n-1")
    if "num_labels" in cfg and id2label and cfg["num_labels"] != len(id2label):
        problems.append(f"{path}: num_labels contradicts id2label")


def check_shards(folder, problems):
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        index = json.load(f)
    wmap = index["weight_map"]
    files = sorted(set(wmap.values()))
    n = len(files)
    want = [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    if files != want:
        problems.append(f"{folder}: shard names {files} are not {want}")
    total = 0
    for file in files:
        sizes = check_file(os.path.join(folder, file), problems)
        listed = {k for k, v in wmap.items() if v == file}
        if set(sizes) != listed:
            problems.append(f"{folder}/{file}: holds {sorted(set(sizes) ^ listed)} "
                            "other than the index says")
        total += sum(sizes.values())
    if index.get("metadata", {}).get("total_size") != total:
        problems.append(f"{folder}: total_size {index.get('metadata')} but tensors hold {total}")
    stale = [f for f in os.listdir(folder)
             if re.fullmatch(r"model-\d{5}-of-\d{5}\.safetensors", f) and f not in files]
    if stale or os.path.exists(os.path.join(folder, "model.safetensors")):
        problems.append(f"{folder}: stale weights beside the index: {stale}")


def main():
    folder = sys.argv[1]
    problems = []
    check_config(folder, problems)
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        check_file(os.path.join(folder, "model.safetensors"), problems)
        if os.path.exists(os.path.join(folder, "model.safetensors.index.json")):
            problems.append(f"{folder}: a stale index beside model.safetensors")
    else:
        check_shards(folder, problems)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
