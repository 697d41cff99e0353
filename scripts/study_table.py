"""Tables of a study directory (runs/study/<model>/<method>/iterations.jsonl), in the
shape of the paper's Tables 1 and 25: per iteration, the six lowest layer entropies,
val/test top-1, layers removed (H_l = 0) out of |L|, sparsity of the owned weights."""
import json
import os
import sys


def rows(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def main(root):
    print("# NEPENTHE vs IMP vs EGP on Fashion-MNIST\n")
    print("Written by `scripts/study.sh` (`scripts/study_table.py`). Iteration 0 is the dense "
          "model. Entropies in bits, measured on the training split after retraining; "
          "Rem. counts layers with H_l = 0 exactly (integer counts).\n")
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
                  "meets δ=0.99 | seconds |")
            print("|---|---|---|---|---|---|---|---|")
            for r in rs:
                low = ", ".join(f"{h:.3f}" for h in sorted(r["entropy"])[:6])
                ok = "yes" if r["val_top1"] >= 0.99 * dense else "no"
                print(f"| {r['iter']} | {low} | {r['val_top1']:.2f} | {r['test_top1']:.2f} | "
                      f"{r['removed']}/{r['layers']} | {r['sparsity']:.1f}% | {ok} | {r['seconds']:.0f} |")
            print()


if __name__ == "__main__":
    main(sys.argv[1])
