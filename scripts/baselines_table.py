"""The tables of a scripts/baselines.sh run directory ($OUT/baselines/<tag>/: dense/,
one directory per method with iterations.jsonl and summary.json, meta.json,
commands.sh), in the shape of the paper's Table 2 (top-1 and layers removed per method,
the paper's ResNet-18 CIFAR-10 column beside them) and Table 3 (sharpness after every
iteration of IMP and NEPENTHE, the paper's Swin-T CIFAR-10 values below).

The reported iteration of a run (the rule): every run prunes with --delta 0, so that
every iteration is logged; the table reports the last iteration before the first one
whose validation top-1 is below DELTA x the run's iteration-0 (dense) validation top-1,
which is the iteration `nepenthe prune --delta DELTA` would have stopped after and
selected (src/prune/loop.c). DELTA comes from the environment (default 0.99).
Selection is on validation, the reported top-1 is on test (paper, Alg. 1).

usage: baselines_table.py RUNDIR > results/baselines-TAG.md
ablation_table.py imports the helpers."""
import json
import math
import os
import sys

# The methods in the paper's Table 2 order (NEPENTHE+SSL last: paper Fig. 4 only).
METHODS = [
    ("smallest-weights", "Smallest weights"),
    ("smallest-grads", "Smallest gradients"),
    ("hrank", "HRank"),
    ("ssl", "Group lasso (SSL)"),
    ("imp", "IMP"),
    ("egp", "EGP"),
    ("nepenthe", "NEPENTHE"),
    ("nepenthe-ssl", "NEPENTHE+SSL"),
]
# Paper Table 2, ResNet-18 on CIFAR-10: top-1, Rem.
PAPER_T2 = {
    "dense": ("91.66", "0/17"),
    "smallest-weights": ("10.00", "1/17"),
    "smallest-grads": ("9.29", "1/17"),
    "hrank": ("91.70", "0/17"),
    "ssl": ("92.11", "1/17"),
    "imp": ("91.66", "0/17"),
    "egp": ("92.18", "3/17"),
    "nepenthe": ("92.55", "3/17"),
    "nepenthe-ssl": ("-", "-"),
}
# Paper Table 3, Swin-T on CIFAR-10: approach, sharpness, top-1, Rem.
PAPER_T3 = [
    ("Dense", "20.62", "91.54", "0/12"),
    ("IMP (iter #1)", "6.78", "91.73", "0/12"),
    ("IMP (iter #2)", "3.70", "91.80", "0/12"),
    ("IMP (iter #3)", "3.18", "91.43", "0/12"),
    ("IMP (iter #4)", "4.78", "91.46", "0/12"),
    ("IMP (iter #5)", "5.39", "91.27", "0/12"),
    ("IMP (iter #6)", "6.81", "91.05", "0/12"),
    ("IMP (iter #7)", "7.66", "90.53", "0/12"),
    ("NEPENTHE (iter #1)", "7.71", "91.77", "0/12"),
    ("NEPENTHE (iter #2)", "2.82", "92.06", "0/12"),
    ("NEPENTHE (iter #3)", "1.58", "92.08", "0/12"),
    ("NEPENTHE (iter #4)", "1.17", "92.31", "0/12"),
    ("NEPENTHE (iter #5)", "1.85", "92.29", "2/12"),
    ("NEPENTHE (iter #6)", "1.62", "92.21", "2/12"),
    ("NEPENTHE (iter #7)", "1.72", "92.11", "2/12"),
]


def delta():
    return float(os.environ.get("DELTA", "0.99"))


def load(path):
    with open(path) as f:
        return json.load(f)


def rows(run):
    """The run's iterations.jsonl, one dict per iteration (0 = the dense model)."""
    with open(os.path.join(run, "iterations.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def reported(rs, d=None):
    """Index of the reported iteration (the rule in the module's docstring)."""
    d = delta() if d is None else d
    dense_val = rs[0]["val_top1"]
    k = 0
    for i in range(1, len(rs)):
        if rs[i]["val_top1"] < d * dense_val:
            break
        k = i
    return k


def zero_layers(r):
    """The layers of one iteration with entropy exactly 0 (removable, Rem.)."""
    return [n for n, h in zip(r["names"], r["entropy"]) if h == 0]


def dense_facts(dense_dir):
    """(val top-1 of the last epoch in log.jsonl, test top-1 of eval.json)."""
    with open(os.path.join(dense_dir, "log.jsonl")) as f:
        log = [json.loads(line) for line in f if line.strip()]
    return log[-1]["val_top1"], load(os.path.join(dense_dir, "eval.json"))["test_top1"]


def f2(x):
    return f"{x:.2f}"


def run_options(run):
    """The options the run was started with (progress.json), or {}."""
    try:
        return json.loads(load(os.path.join(run, "progress.json"))["options"])
    except (OSError, KeyError, ValueError):
        return {}


def failed_runs(root):
    path = os.path.join(root, "failed.txt")
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {os.path.basename(line.strip().rstrip("/")) for line in f if line.strip()}


def header(meta, title, script):
    """Title, provenance (commit, CPU, dates, settings) and the reporting rule."""
    out = [f"# {title}\n"]
    out.append(f"Written by `scripts/{script}.sh` (`scripts/{script}_table.py`); every number below "
               "is read from the runs' `iterations.jsonl`, `summary.json`, the dense model's "
               "`log.jsonl` and `eval.json` (`nepenthe eval --json`, test split).\n")
    if meta.get("quick") == "1":
        out.append("**QUICK=1:** tiny settings on a generated data set, a check that the script "
                   "and its table work; the numbers say nothing about the methods.\n")
    dirty = int(meta.get("dirty") or 0)
    out.append(f"- **Code:** commit `{meta.get('commit', '?')}`"
               + (f" with {dirty} modified tracked file(s)" if dirty else "") + ".")
    isa = set(meta.get("isa", "").split())
    threads = meta.get("threads", "?")
    out.append(f"- **CPU:** {meta.get('cpu', '?')} (avx2 {'yes' if 'avx2' in isa else 'no'}, "
               f"avx512f {'yes' if 'avx512f' in isa else 'no'}), {meta.get('cores', '?')} cores, "
               f"`--threads {threads}`" + (" (all cores)" if threads == "0" else "") + ".")
    out.append(f"- **Date:** started {meta.get('start', '?')}, tables written {meta.get('end', '?')}.")
    out.append(f"- **Settings:** `{meta.get('settings', '')}`.")
    out.append(f"- **Reported iteration (the rule):** every run prunes with `--delta 0`, so every "
               f"iteration is logged. A row reports the last iteration before the first one whose "
               f"validation top-1 is below δ = {delta():g} × the run's iteration 0 (the dense model), "
               f"which is what `nepenthe prune --delta {delta():g}` stops after and selects. The "
               f"selection looks at validation only; top-1 is the test split's.")
    out.append("- **Rem./|L|:** rectifier layers with entropy H_l = 0 exactly (removable) out of all "
               "of them.\n")
    return "\n".join(out)


def commands(root):
    path = os.path.join(root, "commands.sh")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        text = f.read()
    return "## Commands\n\nAs run (from the repository root), in order:\n\n```sh\n" + text + "```\n"


def method_row(root, m, label, dense, failed):
    """One row of the main table, or None when the method was not run."""
    run = os.path.join(root, m)
    paper = PAPER_T2[m]
    if not os.path.exists(os.path.join(run, "iterations.jsonl")):
        if m in failed:
            return f"| {label} | `{m}` | failed | | | | | | | | | {paper[0]} | {paper[1]} |"
        return None
    rs = rows(run)
    k = reported(rs)
    r = rs[k]
    summ = {}
    if os.path.exists(os.path.join(run, "summary.json")):
        summ = load(os.path.join(run, "summary.json"))
    stopped = summ.get("stopped_by", "not finished")
    if m in failed:
        stopped = "failed after iteration %d" % rs[-1]["iter"]
    note = ""
    ck = run_options(run).get("ckpt", "")
    if ck and os.path.normpath(os.path.dirname(ck)) != os.path.normpath(os.path.join(root, "dense")):
        note = f" (dense: `{os.path.basename(os.path.dirname(ck))}`, test {f2(rs[0]['test_top1'])})"
    minutes = sum(x.get("seconds", 0) for x in rs) / 60
    names = ", ".join(f"`{n}`" for n in zero_layers(r)) or "-"
    return (f"| {label}{note} | `{m}` | {r['iter']} of {rs[-1]['iter']} | {f2(r['val_top1'])} | "
            f"{f2(r['test_top1'])} | {r['test_top1'] - rs[0]['test_top1']:+.2f} | "
            f"{r['removed']}/{r['layers']} | {names} | {r['sparsity']:.2f}% | {stopped} | "
            f"{minutes:.1f} | {paper[0]} | {paper[1]} |")


def main(root):
    meta = load(os.path.join(root, "meta.json")) if os.path.exists(os.path.join(root, "meta.json")) else {}
    model, data = meta.get("model", "?"), meta.get("data", "?")
    if meta.get("quick") == "1":
        data = "a generated data set (QUICK)"
    print(header(meta, f"Baselines on {model}, {data}: paper Tables 2 and 3", "baselines"))
    failed = failed_runs(root)
    dval, dtest = dense_facts(os.path.join(root, "dense"))
    layers = next((rows(os.path.join(root, m))[0]["layers"] for m, _ in METHODS
                   if os.path.exists(os.path.join(root, m, "iterations.jsonl"))), 0)

    print("## Top-1 and layers removed (paper Table 2)\n")
    print(f"Each method at its reported iteration (δ = {delta():g}). *vs dense*: test top-1 minus "
          "the run's iteration 0. *Removed layers*: those with H_l = 0 at that iteration. "
          "*Minutes*: the whole run (every iteration, entropy and sharpness included). "
          "*Paper*: Table 2's ResNet-18 on CIFAR-10 column, for reference only (another model, "
          "data set and training budget).\n")
    print("| approach | method | reported iter | val top-1 | test top-1 | vs dense | Rem./\\|L\\| | "
          "removed layers | sparsity | stopped by | minutes | paper top-1 | paper Rem. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| Dense | `train` | - | {f2(dval)} | {f2(dtest)} | +0.00 | 0/{layers} | - | 0.00% | - | - | "
          f"{PAPER_T2['dense'][0]} | {PAPER_T2['dense'][1]} |")
    for m, label in METHODS:
        line = method_row(root, m, label, dtest, failed)
        if line:
            print(line)
    print()
    print("- **NEPENTHE+SSL** (`nepenthe-ssl`: NEPENTHE's pruning with SSL's group lasso in the "
          "retraining) has no entry in the paper's tables: its Fig. 4 plots it for ResNet-18 on "
          "CIFAR-10 without numbers.")
    print("- **HRank** prunes whole filters (width); it never makes a layer's entropy 0 by design, "
          "and the paper reports it on CIFAR-10 only.")
    print("- **The paper's Table 2** (ResNet-18, CIFAR-10, 160 dense epochs) is not this setup; "
          "compare the ordering of the methods, not the numbers.\n")

    print("## Sharpness after every iteration (paper Table 3)\n")
    print("The largest Hessian eigenvalue of the training loss (`--sharpness-batches`, power "
          "iteration on Hessian-vector products), after each iteration's retraining; iteration 0 "
          "is the dense model. Lower is flatter.\n")
    print("| approach | sharpness | val top-1 | test top-1 | Rem./\\|L\\| | sparsity |")
    print("|---|---|---|---|---|---|")
    logs = {m: rows(os.path.join(root, m)) for m in ("imp", "nepenthe")
            if os.path.exists(os.path.join(root, m, "iterations.jsonl"))}
    first = True
    for m, label in (("imp", "IMP"), ("nepenthe", "NEPENTHE")):
        for r in logs.get(m, []):
            if r["iter"] == 0 and not first:
                continue  # the same dense model
            first = False
            name = "Dense" if r["iter"] == 0 else f"{label} (iter #{r['iter']})"
            sh = r.get("sharpness")
            sh = f"{sh:.4g}" if isinstance(sh, (int, float)) and math.isfinite(sh) else "-"
            print(f"| {name} | {sh} | {f2(r['val_top1'])} | {f2(r['test_top1'])} | "
                  f"{r['removed']}/{r['layers']} | {r['sparsity']:.2f}% |")
    print()
    print("The paper's Table 3 (Swin-T on CIFAR-10), for reference:\n")
    print("| approach | sharpness | top-1 | Rem. |")
    print("|---|---|---|---|")
    for row in PAPER_T3:
        print("| " + " | ".join(row) + " |")
    print()
    print(commands(root))


if __name__ == "__main__":
    main(sys.argv[1])
