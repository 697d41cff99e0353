"""results/decoder.md from scripts/decoder_study.sh's runs (runs/decoder): the pretrained
decoder (training log, held-out perplexity, the multiple-choice task), NEPENTHE and IMP
without fine-tuning per iteration, what lm-collapse removed, next to the paper's Table 8.

usage: python3 scripts/decoder_table.py [RUNS] > results/decoder.md
"""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def last(path):
    rows = load(path)
    return rows[-1] if rows else None


def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def main(runs):
    commit = open(os.path.join(runs, "commit")).read().strip()
    corpus = json.load(open(os.path.join(runs, "data", "corpus.json")))["counts"]
    print("# A pretrained decoder, pruned without fine-tuning (issue 16)\n")
    print(f"Runs of `scripts/decoder_study.sh` with the binary of commit {commit}, on {cpu()} "
          "(2 cores, both threads used), table written by `scripts/decoder_table.py`.\n")
    print("## The model\n")
    if corpus:
        print(f"Corpus: Debian's fortunes, {corpus['files']} files, {corpus['entries_read']} entries, "
              f"{corpus['duplicates']} duplicates dropped: {corpus['train']} train entries ({corpus['train_bytes']} "
              f"bytes), {corpus['heldout']} held out ({corpus['heldout_bytes']} bytes, a seeded 5%). The "
              f"multiple-choice task: {corpus['mc_test']} questions from held-out text only (the first half of an "
              "entry; the true second half against three other entries' second halves), in MMLU's CSV format.\n")
    cfg = json.load(open(os.path.join(runs, "init", "config.json")))
    print(f"Decoder: LlamaForCausalLM, {cfg['num_hidden_layers']} layers, width {cfg['hidden_size']}, "
          f"{cfg['num_attention_heads']}:{cfg['num_key_value_heads']} heads, SwiGLU MLP {cfg['intermediate_size']}, "
          f"vocabulary {cfg['vocab_size']} (byte-level BPE with Llama 3's pre-tokenizer, trained on train.txt), "
          "tied embeddings. Trained by `nepenthe lm-train` from scratch: rows of 128 tokens, batch 16, AdamW "
          "2e-3 (weight decay 0.1 on matrices), 200 warm-up steps then cosine decay, clipping at 1, 8 epochs.\n")
    print("| epoch | train loss | held-out loss | held-out perplexity | next-token top-1 | tokens/s | s |")
    print("|---|---|---|---|---|---|---|")
    for r in load(os.path.join(runs, "train", "log.jsonl")):
        print(f"| {r['epoch']} | {r['loss']:.4f} | {r['heldout_loss']:.4f} | {r['heldout_ppl']:.2f} | "
              f"{r['heldout_top1']:.2f}% | {r['tokens_per_s']:.0f} | {r['seconds']:.0f} |")
    print()
    for mode in ("cloze", "letter"):
        p = os.path.join(runs, f"eval_{mode}.json")
        if os.path.exists(p):
            e = last(p)
            extra = f", acc_norm {100 * e['acc_norm']:.2f}%" if "acc_norm" in e else ""
            how = ("MMLU's 0-shot prompt, the answers ' A' .. ' D', rows of 512" if mode == "letter"
                   else "each choice scored as a continuation of the question, rows of 128")
            print(f"- {mode} ({how}): acc {100 * e['acc']:.2f}%{extra} over {e['questions']} questions (chance: 25%); "
                  f"held-out perplexity {e['ppl']:.2f} at those rows.")
    print("\n## NEPENTHE without fine-tuning (`nepenthe lm-prune`, zeta 0.25, 128 calibration rows)\n")
    print("Rem. = SwiGLU layers with H_l = 0. The paper's Table 8 (Llama 3.1-8B, MMLU high-school US history, "
          "test): dense 33.82%; 3/32 removed 36.76%; 7/32 35.08%; 11/32 27.45%.\n")
    prune = os.path.join(runs, "prune")
    for run in sorted(os.listdir(prune)) if os.path.isdir(prune) else []:
        log = os.path.join(prune, run, "iterations.jsonl")
        if not os.path.exists(log):
            continue
        print(f"### {run}\n")
        print("| iter | lowest H_l | Rem. | gate_proj sparsity | held-out ppl | acc | acc_norm |")
        print("|---|---|---|---|---|---|---|")
        for r in load(log):
            print(f"| {r['iter']} | {min(r['entropy']):.3f} | {r['layers_zero']}/{r['layers']} | {r['sparsity']:.2f}% | "
                  f"{r['heldout_ppl']:.2f} | {r['mc_acc']:.2f}% | {r['mc_acc_norm']:.2f}% |")
        print()
        for mode in ("exact", "always-off"):
            p = os.path.join(prune, run, f"collapse_{mode}.json")
            if os.path.exists(p):
                c = last(p)
                print(f"- lm-collapse ({mode}): {c['kept']} of {c['features']} SwiGLU features kept "
                      f"({c['dropped_exact']} with a zero gate row, {c['dropped_off']} always OFF), "
                      f"{c['mlps_removed']} of {c['mlps']} MLPs removed; parameters {c['params'][0]} -> {c['params'][1]}, "
                      f"MFLOPs/token {c['flops_per_token'][0] / 1e6:.2f} -> {c['flops_per_token'][1] / 1e6:.2f}, "
                      f"batch-1 latency (128 tokens) {c['latency_ms'][0]:.2f} -> {c['latency_ms'][1]:.2f} ms, "
                      f"perplexity {c['ppl'][0]:.2f} -> {c['ppl'][1]:.2f}, acc {c['mc_acc'][0]:.2f}% -> "
                      f"{c['mc_acc'][1]:.2f}%.")
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/decoder")
