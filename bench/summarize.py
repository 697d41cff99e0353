"""Summarizes benchmark rounds into medians and nepenthe/PyTorch ratios, per model.

summarize.py ROUNDS.jsonl THREADS    -> one JSON line per model (appended to bench/results.jsonl)
summarize.py --markdown results.jsonl -> bench/RESULTS.md (every recorded summary)
"""
import json
import platform
import statistics
import subprocess
import sys
import time

KEYS = ["train_img_per_s", "infer_ms_batch1", "infer_img_per_s"]
SHAPES = {"mlp": "mlp 784-1024x3-10 relu",
          "vit": "vit 1x28x28 patch 4, width 64, 4 layers of 4 heads, MLP 128",
          "swin": "swin 1x28x28 patch 2, width 32, depths 2,2, heads 2,4, window 4, MLP ratio 2",
          "bert-L6-H384": "all-MiniLM-L6-v2 (BERT, 6 layers, width 384) classifier, 128 tokens, AdamW (seq/s)"}
DECODER = "Llama 6 layers, width 256, 8:2 heads, MLP 768, vocab 4096, tied (5.6 M parameters)"


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def summarize(path, threads):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    peak = {str(r["n"]): r["gflops"] for r in rows if r["impl"] == "sgemm"}
    for model in dict.fromkeys(r["model"] for r in rows if r["impl"] == "nepenthe"):
        mine = [r for r in rows if r.get("model") == model]
        if mine[0].get("kind") == "decoder":
            print(json.dumps(summarize_decoder(mine, threads)))
            continue
        out = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit(), "host": platform.node(), "cpu": cpu_name(),
               "threads": int(threads), "model": SHAPES.get(model, f"{model} 3x32x32"),
               "batch": mine[0]["batch"], "rounds": sum(r["impl"] == "nepenthe" for r in mine),
               "sgemm_gflops": peak}
        for impl in ("nepenthe", "pytorch"):
            for k in KEYS:
                out[f"{impl}_{k}"] = round(statistics.median(r[k] for r in mine if r["impl"] == impl), 4)
        out["nepenthe_train_gflops"] = round(statistics.median(
            r["train_gflops"] for r in mine if r["impl"] == "nepenthe"), 1)
        out["ratio_train"] = round(out["nepenthe_train_img_per_s"] / out["pytorch_train_img_per_s"], 3)
        out["ratio_infer_batch1"] = round(out["pytorch_infer_ms_batch1"] / out["nepenthe_infer_ms_batch1"], 3)
        out["ratio_infer_batch"] = round(out["nepenthe_infer_img_per_s"] / out["pytorch_infer_img_per_s"], 3)
        print(json.dumps(out))


def summarize_decoder(mine, threads):
    """A decoder's rows (nepenthe lm-bench, bench/lm_peer.py): medians of prompt and
    generation tokens/s, and how close generation comes to the memory-bandwidth bound."""
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit(), "host": platform.node(), "cpu": cpu_name(),
           "threads": int(threads), "kind": "decoder", "model": DECODER, "prompt_len": mine[0]["prompt_len"],
           "new_tokens": mine[0]["new_tokens"], "rounds": sum(r["impl"] == "nepenthe" for r in mine)}
    for impl in ("nepenthe", "pytorch"):
        for k in ("prompt_tok_per_s", "gen_tok_per_s"):
            out[f"{impl}_{k}"] = round(statistics.median(r[k] for r in mine if r["impl"] == impl), 2)
    ours = [r for r in mine if r["impl"] == "nepenthe"]
    out["read_gb_per_s"] = round(statistics.median(r["read_gb_per_s"] for r in ours), 2)
    out["gen_bound_tok_per_s"] = round(statistics.median(r["gen_bound_tok_per_s"] for r in ours), 1)
    out["ratio_prompt"] = round(out["nepenthe_prompt_tok_per_s"] / out["pytorch_prompt_tok_per_s"], 3)
    out["ratio_gen"] = round(out["nepenthe_gen_tok_per_s"] / out["pytorch_gen_tok_per_s"], 3)
    return out


def markdown_decoder(rows):
    print("\n## Decoder inference (`nepenthe lm-bench`, bench/lm_peer.py)\n")
    print("Random weights of bench/decoder_config.json; one prompt, then greedy generation at batch 1 "
          "through the key/value cache. The bound is the measured read bandwidth over the bytes a step "
          "reads (every weight, and the cache).\n")
    print("| date | commit | cpu | threads | model | prompt tok/s nepenthe | PyTorch | ratio | "
          "generation tok/s nepenthe | PyTorch | ratio | bandwidth bound tok/s (GB/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['date']} | {r.get('commit', '?')} | {r['cpu']} | {r['threads']} | {r['model']}, prompt "
              f"{r['prompt_len']} | {r['nepenthe_prompt_tok_per_s']:.0f} | {r['pytorch_prompt_tok_per_s']:.0f} | "
              f"**{r['ratio_prompt']:.2f}x** | {r['nepenthe_gen_tok_per_s']:.1f} | {r['pytorch_gen_tok_per_s']:.1f} | "
              f"**{r['ratio_gen']:.2f}x** | {r['gen_bound_tok_per_s']:.0f} ({r['read_gb_per_s']}) |")


def markdown(path):
    every = [json.loads(l) for l in open(path) if l.strip()]
    rows = [r for r in every if r.get("kind") != "decoder"]
    print("# Benchmarks: nepenthe against PyTorch on the same machine\n")
    print("Written by `make bench` (bench/run.sh). Medians over alternating rounds; ratios > 1 "
          "mean nepenthe is faster. GFLOP/s counts 3 forward passes per training image; the "
          "sgemm column is OpenBLAS's square sgemm peak at n = 2048 on the same threads. "
          "PyTorch runs conv nets in channels_last, its fastest CPU layout.\n")
    print("| date | commit | cpu | threads | model | train img/s nepenthe | PyTorch | ratio | "
          "GFLOP/s (sgemm peak) | batch-1 ms nepenthe | PyTorch | ratio | batch-128 img/s ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peak = r["sgemm_gflops"].get("2048", "?")
        print(f"| {r['date']} | {r.get('commit', '?')} | {r['cpu']} | {r['threads']} | {r['model']} b{r['batch']} | "
              f"{r['nepenthe_train_img_per_s']:.0f} | {r['pytorch_train_img_per_s']:.0f} | "
              f"**{r['ratio_train']:.2f}x** | {r['nepenthe_train_gflops']} ({peak}) | "
              f"{r['nepenthe_infer_ms_batch1']:.3f} | {r['pytorch_infer_ms_batch1']:.3f} | "
              f"{r['ratio_infer_batch1']:.2f}x | {r['ratio_infer_batch']:.2f}x |")
    decoders = [r for r in every if r.get("kind") == "decoder"]
    if decoders:
        markdown_decoder(decoders)


if __name__ == "__main__":
    if sys.argv[1] == "--markdown":
        markdown(sys.argv[2])
    else:
        summarize(sys.argv[1], sys.argv[2])
