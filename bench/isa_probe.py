"""Which instruction set each benchmarked library actually runs, under the current environment
(ONEDNN_MAX_CPU_ISA, OPENBLAS_CORETYPE, ATEN_CPU_CAPABILITY as bench/run.sh sets them).

Usage: /usr/bin/python3 bench/isa_probe.py --nepenthe build/nepenthe --forced avx2|native
Prints one JSON line {"impl": "isa", "forced", "cpu", "flags", "nepenthe", "pytorch",
"onnxruntime", "sgemm"}; each library's entry has "label" (avx2, avx512, or "mixed ...")
and "detail" (what was read, and where from):
  nepenthe:    oneDNN's ISA and the jit kernels a tiny resnet20 bench runs (ONEDNN_VERBOSE),
               the OpenBLAS core (openblas_get_corename), and whether the binary itself holds
               AVX-512 instructions (zmm registers in objdump -d; it is built -march=native);
  pytorch:     oneDNN's ISA and kernels for a small conv (ONEDNN_VERBOSE), ATen's
               "CPU capability usage" (torch.__config__.show()), its BLAS's OpenBLAS core;
  onnxruntime: MLAS chooses its kernels from cpuid when the library loads
               (onnxruntime/core/mlas/lib/platform.cpp) and no environment variable or session
               option caps it, so it is the CPU's best: AVX-512F if the CPU has it;
  sgemm:       the OpenBLAS core of bench/sgemm_peak (the peak the tables divide by).
"""
import argparse
import ctypes
import json
import os
import re
import subprocess
import sys

OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0"
SYSTEM_BLAS = "/lib/x86_64-linux-gnu/libblas.so.3"
# OpenBLAS cores (openblas_get_corename, lower case) that run AVX-512 kernels.
OPENBLAS_AVX512 = {"skylakex", "cooperlake", "sapphirerapids"}
TORCH_CONV = """
import torch
x = torch.randn(2, 16, 16, 16).contiguous(memory_format=torch.channels_last)
c = torch.nn.Conv2d(16, 16, 3, padding=1).to(memory_format=torch.channels_last)
with torch.no_grad():
    c(x)
    torch.nn.functional.linear(torch.randn(4, 64), torch.randn(64, 64))
cap = [l.split(":", 1)[1].strip() for l in torch.__config__.show().splitlines() if "CPU capability usage" in l]
print("ATEN", cap[0] if cap else "?")
"""


def cpu():
    name, flags = "?", set()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            name = m.group(1).strip()
    except OSError:
        pass
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return name, flags


def openblas_core(path):
    try:
        f = ctypes.CDLL(path).openblas_get_corename
        f.restype = ctypes.c_char_p
        return f().decode()
    except (OSError, AttributeError):
        return "?"


def isa_of(name):
    """avx512, avx2 or None for a oneDNN ISA string, jit kernel or OpenBLAS core."""
    n = name.lower()
    if "avx512" in n or "avx-512" in n or n in OPENBLAS_AVX512:
        return "avx512"
    if "avx2" in n or n in ("haswell", "zen", "skylake"):
        return "avx2"
    return None


def onednn(output):
    """(oneDNN's ISA line, the set of jit implementations it ran) from ONEDNN_VERBOSE output."""
    isa = "?"
    kernels = set()
    for line in output.splitlines():
        f = line.split(",")
        if len(f) > 3 and f[0].endswith("_verbose") and f[1] == "info" and f[3].startswith("isa:"):
            isa = f[3][4:]
        elif len(f) > 4 and f[0].endswith("_verbose") and f[1] == "exec" and f[3] != "reorder":
            kernels.add(f[4])
    return isa, sorted(k for k in kernels if ":" in k)


def label(parts):
    """One label from {part: isa}: the common ISA, or 'mixed' naming who runs what."""
    known = {k: v for k, v in parts.items() if v}
    kinds = set(known.values())
    if not kinds:
        return "?"
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed (" + ", ".join(f"{k} {v}" for k, v in known.items()) + ")"


def probe_nepenthe(binary):
    env = dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")
    try:
        r = subprocess.run([binary, "bench", "--model", "resnet20", "--input", "3,32,32", "--batch", "2",
                            "--steps", "1", "--warmup", "0", "--threads", "1"],
                           capture_output=True, text=True, env=env, timeout=300)
        isa, kernels = onednn(r.stdout + r.stderr)
    except (OSError, subprocess.TimeoutExpired) as e:
        isa, kernels = f"? ({e})", []
    try:
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary], capture_output=True,
                             text=True, timeout=300).stdout
        zmm = len(re.findall(r"%zmm\d", dis))
        own = "avx512" if zmm else "avx2" if "%ymm" in dis else None
        own_detail = f"{zmm} zmm operands" if zmm else "no AVX-512 instructions"
    except (OSError, subprocess.TimeoutExpired):
        own, own_detail = None, "objdump unavailable"
    core = openblas_core(OPENBLAS)
    kisa = {isa_of(k) for k in kernels} - {None}
    parts = {"oneDNN": isa_of(isa) if not kisa else ("avx512" if "avx512" in kisa else "avx2"),
             "OpenBLAS": isa_of(core), "own kernels": own}
    return {"label": label(parts),
            "detail": f"oneDNN isa {isa} (kernels {', '.join(kernels) or '?'}); OpenBLAS core {core}; "
                      f"{binary}: {own_detail}"}


def probe_pytorch():
    env = dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")
    try:
        r = subprocess.run(["/usr/bin/python3", "-c", TORCH_CONV], capture_output=True, text=True,
                           env=env, timeout=300)
        out = r.stdout + r.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        out = f"? ({e})"
    isa, kernels = onednn(out)
    m = re.search(r"^ATEN (.*)$", out, re.M)
    aten = m.group(1) if m else "?"
    core = openblas_core(SYSTEM_BLAS)
    kisa = {isa_of(k) for k in kernels} - {None}
    parts = {"oneDNN": isa_of(isa) if not kisa else ("avx512" if "avx512" in kisa else "avx2"),
             "ATen": isa_of(aten), "OpenBLAS": isa_of(core)}
    return {"label": label(parts),
            "detail": f"oneDNN isa {isa} (kernels {', '.join(kernels) or '?'}); ATen CPU capability {aten}; "
                      f"OpenBLAS core {core} ({os.path.realpath(SYSTEM_BLAS)})"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nepenthe", default="build/nepenthe")
    p.add_argument("--forced", default="native")
    a = p.parse_args()
    name, flags = cpu()
    avx512 = "avx512f" in flags
    ort = {"label": "avx512" if avx512 else "avx2" if "avx2" in flags else "?",
           "detail": "MLAS picks its kernels from cpuid at load time (no switch caps them): "
                     + ("AVX-512F" if avx512 else "AVX2/FMA" if "avx2" in flags else "below AVX2"),
           "capped": False}
    core = openblas_core(OPENBLAS)
    r = {"impl": "isa", "forced": a.forced, "cpu": name,
         "flags": {f: f in flags for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16")},
         "nepenthe": probe_nepenthe(a.nepenthe), "pytorch": probe_pytorch(), "onnxruntime": ort,
         "sgemm": {"label": isa_of(core) or "?", "detail": f"OpenBLAS core {core}"}}
    print(json.dumps(r))


if __name__ == "__main__":
    sys.exit(main())
