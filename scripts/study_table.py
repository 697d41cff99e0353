"""Tables of a study directory (runs/study/<model>/<method>/iterations.jsonl), in the
shape of the paper's Tables 1 and 25: per iteration, the six lowest layer entropies,
val/test top-1, layers removed (H_l = 0) out of |L|, sparsity of the owned weights, and
the share of the rectifier layers' neurons that are always ON and always OFF (with
don't-cares: OFF+), which say how far a layer is from H_l = 0.

usage: study_table.py DIR [TITLE [INTRO]]"""
import json
import os
import sys


def rows(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def share(r, key):
    states = r.get("states", [])
    total = sum(s["neurons"] for s in states)
    return 100.0 * sum(s[key] for s in states) / total if total else 0.0


def main(root, title="NEPENTHE vs IMP vs EGP on Fashion-MNIST",
         intro="Written by `scripts/study.sh` (`scripts/study_table.py`)."):
    print(f"# {title}\n")
    print(intro + " Iteration 0 is the dense "
          "model. Entropies in bits, measured on the training split after retraining; "
          "Rem. counts layers with H_l = 0 exactly (integer counts); ON / OFF(+) are the "
          "shares of all rectifier neurons always ON / always OFF (OFF or don't-care).\n")
    for model in sorted(os.listdir(root)):
        print(f"## {model}\n")
        for method in ("nepenthe", "imp", "egp", "smallest-weights", "smallest-grads"):
            log = os.path.join(root, model, method, "iterations.jsonl")
            if not os.path.exists(log):
                continue
            rs = rows(log)
            dense = rs[0]["val_top1"]
            print(f"### {method}\n")
            print("| iter | six lowest H_l | val top-1 | test top-1 | Rem./\\|L\\| | sparsity | "
                  "ON | OFF(+) | meets δ=0.99 | seconds |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for r in rs:
                low = ", ".join(f"{h:.3f}" for h in sorted(r["entropy"])[:6])
                ok = "yes" if r["val_top1"] >= 0.99 * dense else "no"
                print(f"| {r['iter']} | {low} | {r['val_top1']:.2f} | {r['test_top1']:.2f} | "
                      f"{r['removed']}/{r['layers']} | {r['sparsity']:.1f}% | {share(r, 'always_on'):.1f}% | "
                      f"{share(r, 'always_off') + share(r, 'always_off_plus'):.1f}% | {ok} | {r['seconds']:.0f} |")
            print()


if __name__ == "__main__":
    main(*sys.argv[1:4])
