"""The table of a scripts/ablation.sh run (paper Table 5): IMP and NEPENTHE from
scripts/baselines.sh's directory, the two ablations and the depth-matched model from the
ablation's, each at its reported iteration (scripts/baselines_table.py's rule, δ = DELTA
from the environment, default 0.99), beside the paper's ResNet-18 CIFAR-10 values.

usage: ablation_table.py ABLATION_DIR BASELINES_DIR > results/ablation-TAG.md
       ablation_table.py --zero-layers RUN   the layers with entropy 0 at RUN's reported
                                             iteration, comma-separated (train --identity)
       ablation_table.py --point DIR         one iterations.jsonl line for `nepenthe
                                             compare`: a trained model (DIR/eval.json,
                                             DIR/identity.txt) as layers removed, test top-1"""
import json
import os
import sys

from baselines_table import (commands, delta, dense_facts, f2, header, load, reported, rows,
                             run_options, zero_layers)

# Paper Table 5 (ResNet-18, CIFAR-10): top-1, Rem.
PAPER_T5 = {
    "imp": ("91.66", "0/17"),
    "budget": ("92.18", "3/17"),
    "budget-dontcare": ("92.33", "3/17"),
    "nepenthe": ("92.55", "3/17"),
    "depth-matched": ("91.57", "3/17"),
}


def onoff(x):
    return "on" if x else "off"


def identity(dm):
    path = os.path.join(dm, "identity.txt")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read().strip()
    return text.split(",") if text else []


def run_row(key, run, dense_test):
    """Components (from the run's stored options; IMP has none), then the numbers."""
    paper = PAPER_T5[key]
    label = {"imp": "IMP", "budget": "budget", "budget-dontcare": "budget + don't care",
             "nepenthe": "NEPENTHE"}[key]
    if not os.path.exists(os.path.join(run, "iterations.jsonl")):
        return (f"| | | | {label} (`{os.path.basename(run)}`): failed or not run | - | - | - | - | - | - | - | "
                f"{paper[0]} | {paper[1]} |")
    rs = rows(run)
    k = reported(rs)
    r = rs[k]
    if key == "imp":
        comps = ("off", "off", "off")
    else:
        o = run_options(run)
        comps = (onoff(o.get("entropy_budget")), onoff(o.get("dont_care")), onoff(o.get("neuron_selection")))
    names = ", ".join(f"`{n}`" for n in zero_layers(r)) or "-"
    return (f"| {comps[0]} | {comps[1]} | {comps[2]} | {label} (`{os.path.basename(run)}`) | "
            f"{r['iter']} of {rs[-1]['iter']} | {f2(r['val_top1'])} | {f2(r['test_top1'])} | "
            f"{r['test_top1'] - dense_test:+.2f} | {r['removed']}/{r['layers']} | {names} | "
            f"{r['sparsity']:.2f}% | {paper[0]} | {paper[1]} |")


def main(ab, base):
    meta = load(os.path.join(ab, "meta.json")) if os.path.exists(os.path.join(ab, "meta.json")) else {}
    model, data = meta.get("model", "?"), meta.get("data", "?")
    if meta.get("quick") == "1":
        data = "a generated data set (QUICK)"
    print(header(meta, f"Ablation on {model}, {data}: paper Table 5", "ablation"))
    dval, dtest = dense_facts(os.path.join(base, "dense"))
    layers = rows(os.path.join(base, "nepenthe"))[0]["layers"]
    print("## NEPENTHE's components (paper Table 5)\n")
    print(f"Each run at its reported iteration (δ = {delta():g}); the component columns of the "
          "NEPENTHE runs are read from the options each run stored (`progress.json`). "
          "*vs dense*: test top-1 minus the dense model's. *Paper*: Table 5, ResNet-18 on "
          "CIFAR-10, for reference only. IMP and NEPENTHE are the runs of "
          "`scripts/baselines.sh` (the same directories).\n")
    print("| entropy budget | don't care | neuron selection | run | reported iter | val top-1 | "
          "test top-1 | vs dense | Rem./\\|L\\| | removed layers | sparsity | paper top-1 | paper Rem. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| - | - | - | Dense (`dense`, not a row of Table 5) | - | {f2(dval)} | {f2(dtest)} | +0.00 | "
          f"0/{layers} | - | 0.00% | - | - |")
    for key, run in (("imp", os.path.join(base, "imp")), ("budget", os.path.join(ab, "budget")),
                     ("budget-dontcare", os.path.join(ab, "budget-dontcare")),
                     ("nepenthe", os.path.join(base, "nepenthe"))):
        print(run_row(key, run, dtest))
    dm = os.path.join(ab, "depth-matched")
    ident = identity(dm)
    paper = PAPER_T5["depth-matched"]
    if ident and not os.path.exists(os.path.join(dm, "eval.json")):
        print(f"| Depth-reduced model trained from initialization | | | depth-matched (`depth-matched`): "
              f"training failed (see its checkpoint and the script's output) | - | - | - | - | "
              f"{len(ident)}/{layers} | {', '.join(f'`{n}`' for n in ident)} | - | {paper[0]} | {paper[1]} |")
    elif ident:
        val, test = dense_facts(dm)
        names = ", ".join(f"`{n}`" for n in ident)
        print(f"| Depth-reduced model trained from initialization | | | depth-matched (`depth-matched`) | - | "
              f"{f2(val)} | {f2(test)} | {test - dtest:+.2f} | {len(ident)}/{layers} | {names} | "
              f"0.00% | {paper[0]} | {paper[1]} |")
    else:
        print(f"| Depth-reduced model trained from initialization | | | none: NEPENTHE removed no layer at "
              f"its reported iteration | - | - | - | - | 0/{layers} | - | - | {paper[0]} | {paper[1]} |")
    print()
    print("- **Depth-matched model:** the NEPENTHE run's layers with H_l = 0 at its reported "
          "iteration are the identity from initialization (`train --identity`), trained with the "
          "dense recipe (same epochs, learning rate, schedule and seed); its Rem. counts those "
          "layers, its sparsity is 0. Its top-1 is the test split's after the last epoch, as the "
          "dense model's.")
    print("- **The paper's first row** (no component, 91.66 0/17) equals both the Dense and the "
          "IMP entries of Table 2; in the appendix's Table 14 (Swin-T, Tiny-ImageNet) the same "
          "row, 75.60 0/12, is Table 2's Dense (IMP there: 67.56), so the paper's row may be the "
          "dense model. Here it is IMP (magnitude pruning without any of NEPENTHE's components), "
          "with the dense model above it.")
    print("- **The paper's budget-only row** (92.18 3/17) equals EGP's Table 2 entry, and "
          "Table 14's (71.48 1/12) EGP's Swin-T Tiny-ImageNet entry. In this code `--method egp` "
          "is that row with EGP's own layer entropy (the mean over the neurons that are not "
          "always in one state; `src/prune/method.c`), so the budget row here differs from "
          "`scripts/baselines.sh`'s EGP run only in that average.")
    print("- **IMP's components:** its pruning is one global magnitude threshold, so don't care "
          "and neuron selection play no part in it (`--no-entropy-budget` gives the same run); "
          "its entropies, and so its Rem., are measured as NEPENTHE's, with don't care.")
    print("- **The check marks' columns** are lost in the paper's text extraction; the rows are "
          "read as cumulative (budget; budget and don't care; all three).")
    print(f"- **Figure:** `ablation-{meta.get('tag', '?')}.svg`, test top-1 against layers removed "
          "for every iteration of the four runs, the depth-matched model as one point "
          "(`nepenthe compare` on copies of the logs named by row: it labels a run by its "
          "summary's method, `nepenthe` for three of them).\n")
    print(commands(ab))


def point(dm):
    _, test = dense_facts(dm)
    print(json.dumps({"iter": 0, "removed": len(identity(dm)), "test_top1": test, "sparsity": 0}))


if __name__ == "__main__":
    if sys.argv[1] == "--zero-layers":
        rs = rows(sys.argv[2])
        print(",".join(zero_layers(rs[reported(rs)])))
    elif sys.argv[1] == "--point":
        point(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2])
