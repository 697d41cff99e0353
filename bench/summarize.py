"""Summarizes benchmark rounds (bench/run.sh) into medians, spreads and ratios, per model.

summarize.py ROUNDS.jsonl THREADS     -> one JSON line per model (appended to bench/results.jsonl)
summarize.py --markdown results.jsonl -> bench/RESULTS.md

ROUNDS.jsonl holds every run of one `make bench`: the sgemm peak, the ISA probe
(bench/isa_probe.py), each collapse's before/after, and one line per timed run with impl
(nepenthe, pytorch, onnxruntime), variant (dense, collapsed), isa and round. A summary line
(format 2) holds, per column impl/variant, [median, min, max] over rounds of each metric, the
ratios (of the medians, and the min and max of the per-round ratios), the collapse, the ISA each
library ran and the targets. The markdown shows the latest summary of each model per forced ISA
(one table per model), the older format-2 summaries as history, the decoder runs, and the
summaries of the previous format (nepenthe against PyTorch only) as they were.
"""
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

SHAPES = {"mlp": "mlp 784-1024x3-10 relu",
          "resnet20": "resnet20 3x32x32", "resnet18": "resnet18 3x32x32", "mobilenetv2": "mobilenetv2 3x32x32",
          "vit": "vit 1x28x28 patch 4, width 64, 4 layers of 4 heads, MLP 128",
          "swin": "swin 1x28x28 patch 2, width 32, depths 2,2, heads 2,4, window 4, MLP ratio 2",
          "bert-L6-H384": "all-MiniLM-L6-v2 (BERT, 6 layers, width 384) classifier, 128 tokens, AdamW (seq/s)"}
ORDER = ["mlp", "resnet20", "mobilenetv2", "resnet18", "vit", "swin", "bert-L6-H384"]
DECODER = "Llama 6 layers, width 256, 8:2 heads, MLP 768, vocab 4096, tied (5.6 M parameters)"
# Training speed targets against PyTorch (nepenthe img/s over PyTorch img/s).
TRAIN_TARGET = {"mlp": 1.25, "resnet20": 1.5, "resnet18": 1.5, "mobilenetv2": 1.5}
COLUMNS = [("nepenthe", "dense"), ("pytorch", "dense"), ("onnxruntime", "dense"),
           ("nepenthe", "collapsed"), ("onnxruntime", "collapsed")]
NAMES = {"nepenthe": "nepenthe", "pytorch": "PyTorch", "onnxruntime": "ORT"}
OK, MISS = "✓", "✗ below target"


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def commit():
    """The commit bench/run.sh recorded when it started (NEP_BENCH_COMMIT), else the short
    HEAD, with -dirty when tracked files differ from it."""
    if os.environ.get("NEP_BENCH_COMMIT"):
        return os.environ["NEP_BENCH_COMMIT"]
    try:
        c = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return c + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def spread(values):
    """[median, min, max], rounded to 4 significant digits."""
    v = list(values)
    return [float(f"{x:.4g}") for x in (statistics.median(v), min(v), max(v))]


def per_round(rows, impl, variant, key):
    """{round: value} of one metric of one column (rows without a round count as round 0)."""
    return {r.get("round", 0): key(r) for r in rows
            if r.get("impl") == impl and r.get("variant", "dense") == variant and key(r) is not None}


def ratio(num, den, invert=False):
    """[ratio of the medians, min, max of the per-round ratios] of two {round: value} maps:
    num/den, or den/num with invert. None when either side has no runs."""
    if not num or not den:
        return None
    a, b = (den, num) if invert else (num, den)
    med = statistics.median(a.values()) / statistics.median(b.values())
    paired = [a[k] / b[k] for k in a if k in b and b[k]]
    lo, hi = (min(paired), max(paired)) if paired else (med, med)
    return [round(med, 3), round(lo, 3), round(hi, 3)]


def summarize(path, threads):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    peak = {str(r["n"]): r["gflops"] for r in rows if r["impl"] == "sgemm"}
    probe = next((r for r in rows if r["impl"] == "isa"), None)
    date, head = time.strftime("%Y-%m-%d %H:%M"), commit()
    for model in dict.fromkeys(r["model"] for r in rows if r["impl"] == "nepenthe"):
        mine = [r for r in rows if r.get("model") == model]
        if mine[0].get("kind") == "decoder":
            print(json.dumps(summarize_decoder(mine, threads, date, head)))
            continue
        timed = [r for r in mine if r["impl"] in NAMES]
        out = {"format": 2, "date": date, "commit": head, "host": platform.node(), "cpu": cpu_name(),
               "threads": int(threads), "model": model, "shape": SHAPES.get(model, model),
               "batch": mine[0]["batch"], "rounds": len({r.get("round", 0) for r in timed
                                                         if r["impl"] == "nepenthe"}),
               "sgemm_gflops": peak, "isa_forced": probe["forced"] if probe else "?",
               "isa": {k: v for k, v in probe.items() if k not in ("impl", "forced")} if probe else {}}
        ff = {v: next((r["forward_flops"] for r in timed if r["impl"] == "nepenthe"
                       and r.get("variant", "dense") == v and r.get("forward_flops")), None)
              for v in ("dense", "collapsed")}
        out["forward_flops"] = ff
        cols, isa_used, series = {}, {}, {}
        for impl, variant in COLUMNS:
            runs = [r for r in timed if r["impl"] == impl and r.get("variant", "dense") == variant]
            if not runs:
                continue
            f = ff[variant]
            metrics = {
                "train_img_per_s": lambda r: r.get("train_img_per_s"),
                "infer_ms_batch1": lambda r: r.get("infer_ms_batch1"),
                "infer_img_per_s": lambda r: r.get("infer_img_per_s"),
                "infer_ms_batch": lambda r: r["batch"] * 1e3 / r["infer_img_per_s"] if r.get("infer_img_per_s") else None,
                "train_gflops": lambda r: 3 * f * r["train_img_per_s"] / 1e9 if f and r.get("train_img_per_s") else None,
                "infer_gflops": lambda r: f * r["infer_img_per_s"] / 1e9 if f and r.get("infer_img_per_s") else None,
            }
            col = f"{impl}/{variant}"
            cols[col], series[col] = {}, {}
            for name, key in metrics.items():
                s = per_round(runs, impl, variant, key)
                if s:
                    cols[col][name] = spread(s.values())
                    series[col][name] = s
            isa_used[col] = runs[0].get("isa", "?")
        out["cells"], out["isa_used"] = cols, isa_used

        def ser(col, name):
            return series.get(col, {}).get(name)
        out["ratios"] = {
            "train_vs_pytorch": ratio(ser("nepenthe/dense", "train_img_per_s"), ser("pytorch/dense", "train_img_per_s")),
            "b1_pytorch_over_nepenthe": ratio(ser("pytorch/dense", "infer_ms_batch1"), ser("nepenthe/dense", "infer_ms_batch1")),
            "batch_pytorch_over_nepenthe": ratio(ser("pytorch/dense", "infer_ms_batch"), ser("nepenthe/dense", "infer_ms_batch")),
        }
        for v in ("dense", "collapsed"):
            out["ratios"][f"b1_ort_over_nepenthe_{v}"] = ratio(ser(f"onnxruntime/{v}", "infer_ms_batch1"),
                                                               ser(f"nepenthe/{v}", "infer_ms_batch1"))
            out["ratios"][f"batch_ort_over_nepenthe_{v}"] = ratio(ser(f"onnxruntime/{v}", "infer_ms_batch"),
                                                                  ser(f"nepenthe/{v}", "infer_ms_batch"))
        col = next((r for r in mine if r["impl"] == "collapse"), None)
        if col:
            out["collapse"] = collapse_summary(col)
        out["targets"] = targets(out)
        print(json.dumps(out))


def collapse_summary(row):
    if "result" not in row:
        return {"dead": row.get("dead", ""), "error": row.get("error", "failed")}
    d = row["result"]
    keep = ("rectifiers", "depth", "params", "mflops", "latency_ms_batch1", "latency_ms_batch128",
            "peak_memory_mb_batch128")
    return {"dead": row.get("dead", ""),
            "before": {k: d["before"].get(k) for k in keep}, "after": {k: d["after"].get(k) for k in keep},
            "rewrites": d.get("rewrites", {}), "max_abs_diff": d.get("equivalence", {}).get("max_abs_diff"),
            "within_tol": d.get("within_tol")}


def targets(s):
    """{target: true/false} for the targets that apply to this summary."""
    t, r = {}, s["ratios"]
    goal = TRAIN_TARGET.get(s["model"])
    if goal and r.get("train_vs_pytorch"):
        t["train"] = r["train_vs_pytorch"][0] >= goal
    for v in ("dense", "collapsed"):
        for b in ("b1", "batch"):
            x = r.get(f"{b}_ort_over_nepenthe_{v}")
            if x:
                t[f"{b}_{v}_below_ort"] = x[0] > 1
    ff, cells = s.get("forward_flops", {}), s["cells"]
    if ff.get("dense") and ff.get("collapsed"):
        for b in ("infer_ms_batch1", "infer_ms_batch"):
            d, c = cells.get("nepenthe/dense", {}).get(b), cells.get("nepenthe/collapsed", {}).get(b)
            if d and c:
                t[f"collapse_{b}"] = c[0] / d[0] <= ff["collapsed"] / ff["dense"]
    return t


def summarize_decoder(mine, threads, date, head):
    """A decoder's rows (nepenthe lm-bench, bench/lm_peer.py): medians of prompt and
    generation tokens/s, and how close generation comes to the memory-bandwidth bound."""
    out = {"date": date, "commit": head, "host": platform.node(), "cpu": cpu_name(),
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


# --- markdown ---------------------------------------------------------------------------------

def num(x):
    """A value with digits to suit its size."""
    a = abs(x)
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def cell(v, peak=None):
    """'median (min–max)' of a [median, min, max]; with peak, the median's share of it too."""
    if not v:
        return "—"
    med, lo, hi = v
    s = f"{num(med)}"
    if peak:
        s += f" ({100 * med / peak:.0f}%)"
    if lo != hi:
        s += f" <sub>{num(lo)}–{num(hi)}</sub>"
    return s


def ratio_cell(v, goal=None, strict=False):
    """'**1.62x** ✓' (or ✗ below target: under goal, or at it with strict) with the per-round range."""
    if not v:
        return "—"
    med, lo, hi = v
    s = f"**{med:.2f}x**"
    if lo != hi:
        s += f" <sub>{lo:.2f}–{hi:.2f}</sub>"
    if goal is not None:
        s += " " + (OK if (med > goal if strict else med >= goal) else MISS)
    return s


def isa_words(label, impl, forced):
    if impl == "onnxruntime" and forced != "native":
        return f"{label} (its default: cannot be capped)"
    return label


def threads(n):
    return f"{n} thread" + ("" if n == 1 else "s")


def dead_words(dead):
    """'always OFF: a, b; always ON: c' of bench/dead_layers.py's arguments NAME[=off|=on]."""
    states = {"off": [], "on": []}
    for arg in dead.split():
        name, _, state = arg.partition("=")
        states.get(state or "off", states["off"]).append(name)
    return "; ".join(f"always {k.upper()}: {', '.join(v)}" for k, v in states.items() if v)


def markdown_model(s):
    r, cells, ff = s["ratios"], s["cells"], s.get("forward_flops", {})
    peak = s["sgemm_gflops"].get("2048")
    present = [c for c in COLUMNS if f"{c[0]}/{c[1]}" in cells]
    goal = TRAIN_TARGET.get(s["model"])
    print(f"\n### {s['shape']}, batch {s['batch']}\n")
    print(f"{s['date']} · commit {s.get('commit', '?')} · {threads(s['threads'])} · {s['rounds']} rounds · "
          f"sgemm peak {peak} GFLOP/s · ISA forced: {s.get('isa_forced', '?')}\n")
    head = [f"{NAMES[i]} {v}" for i, v in present]
    coll = any(v == "collapsed" for _, v in present)
    extra = ["dense: nepenthe vs peer"] + (["collapsed: nepenthe vs ORT"] if coll else [])
    print("| | " + " | ".join(head + extra) + " |")
    print("|---" * (len(head) + len(extra) + 1) + "|")

    def row(title, metric, peak_of=None, dense_ratio="—", coll_ratio="—"):
        vals = [cell(cells[f"{i}/{v}"].get(metric), peak_of) for i, v in present]
        vals += [dense_ratio] + ([coll_ratio] if coll else [])
        print(f"| {title} | " + " | ".join(vals) + " |")

    print("| ISA used | " + " | ".join([isa_words(s["isa_used"].get(f"{i}/{v}", "?"), i, s.get("isa_forced"))
                                      for i, v in present] + [""] * len(extra)) + " |")
    train = ratio_cell(r.get("train_vs_pytorch"), goal)
    if r.get("train_vs_pytorch"):
        train = "PyTorch " + train + (f" (target ≥ {goal}x)" if goal else "")
    row("training, img/s", "train_img_per_s", dense_ratio=train)

    def vs(key_ort, key_torch=None):
        parts = []
        if r.get(key_ort):
            parts.append("ORT " + ratio_cell(r[key_ort], 1.0, strict=True))
        if key_torch and r.get(key_torch):
            parts.append("PyTorch " + ratio_cell(r[key_torch]))
        return "; ".join(parts) or "—"
    row("inference latency, batch 1, ms", "infer_ms_batch1",
        dense_ratio=vs("b1_ort_over_nepenthe_dense", "b1_pytorch_over_nepenthe"),
        coll_ratio=vs("b1_ort_over_nepenthe_collapsed"))
    row(f"inference latency, batch {s['batch']}, ms", "infer_ms_batch",
        dense_ratio=vs("batch_ort_over_nepenthe_dense", "batch_pytorch_over_nepenthe"),
        coll_ratio=vs("batch_ort_over_nepenthe_collapsed"))
    row(f"inference throughput, batch {s['batch']}, img/s", "infer_img_per_s")
    if ff.get("dense"):
        row("training GFLOP/s (% of sgemm peak)", "train_gflops", peak_of=peak)
        row(f"inference GFLOP/s, batch {s['batch']} (% of peak)", "infer_gflops", peak_of=peak)
    markdown_collapse(s)


def markdown_collapse(s):
    c = s.get("collapse")
    if not c:
        if s["model"] in ("mlp", "resnet20", "resnet18", "mobilenetv2"):
            print("\nNo collapsed variant in this run.")
        return
    if "error" in c:
        print(f"\nCollapse of {c['dead']}: {c['error']}; no collapsed columns.")
        return
    b, a, t = c["before"], c["after"], s["targets"]
    fr = 1 - a["mflops"] / b["mflops"]
    d = s["cells"].get("nepenthe/dense", {})
    k = s["cells"].get("nepenthe/collapsed", {})
    lat = []
    for m, name in (("infer_ms_batch1", "batch 1"), ("infer_ms_batch", f"batch {s['batch']}")):
        if d.get(m) and k.get(m):
            red = 1 - k[m][0] / d[m][0]
            mark = OK if t.get(f"collapse_{m}") else MISS
            lat.append(f"{name} {num(d[m][0])} → {num(k[m][0])} ms (−{100 * red:.0f}%) {mark}")
    rw = c.get("rewrites", {})
    mem = ""
    if b.get("peak_memory_mb_batch128") and a.get("peak_memory_mb_batch128"):
        mb, ma = b["peak_memory_mb_batch128"], a["peak_memory_mb_batch128"]
        mem = f"; serving memory at batch 128 (weights and activation buffers, and from commit c6f767f the packed weights) {mb:.1f} → {ma:.1f} MB (−{100 * (1 - ma / mb):.0f}%)"
    print(f"\nCollapse (rectifiers made {dead_words(c['dead'])}): {b['depth']} → {a['depth']} rectifier "
          f"layers, {b['mflops']:.1f} → {a['mflops']:.1f} MFLOPs (**−{100 * fr:.0f}%**), "
          f"{b['params']:,} → {a['params']:,} parameters ({rw.get('channels_dropped', 0)} channels dropped, "
          f"{rw.get('composed', 0)} layer pairs composed; logits within {c.get('max_abs_diff', 0):.1e}). "
          f"nepenthe's latency: {'; '.join(lat) or '—'} (target: falls at least in proportion to the FLOPs){mem}.")


def markdown_targets(latest):
    print("\n| model | training ≥ target × PyTorch | latency < ORT, batch 1: dense / collapsed | "
          "batch 128: dense / collapsed | collapsed latency ∝ FLOPs: batch 1 / 128 |")
    print("|---|---|---|---|---|")

    def m(t, k):
        return "—" if k not in t else (OK if t[k] else "✗")
    for s in latest:
        t = s["targets"]
        tr = s["ratios"].get("train_vs_pytorch")
        goal = TRAIN_TARGET.get(s["model"])
        train = f"{tr[0]:.2f}x / {goal}x {m(t, 'train')}" if tr and goal else (f"{tr[0]:.2f}x" if tr else "—")
        print(f"| {s['model']} | {train} | {m(t, 'b1_dense_below_ort')} / {m(t, 'b1_collapsed_below_ort')} | "
              f"{m(t, 'batch_dense_below_ort')} / {m(t, 'batch_collapsed_below_ort')} | "
              f"{m(t, 'collapse_infer_ms_batch1')} / {m(t, 'collapse_infer_ms_batch')} |")


def markdown_section(forced, latest):
    s0 = max(latest, key=lambda s: s["date"])
    title = ("AVX2 forced (`ISA=avx2`)" if forced == "avx2" else f"ISA: {forced} (each library's default)") \
        + f" — {s0['cpu']}"
    isa = s0.get("isa", {})
    flags = isa.get("flags", {})
    print(f"\n## {title}\n")
    print(f"- run: {s0['date']}, commit {s0.get('commit', '?')}, {threads(s0['threads'])}, {s0['rounds']} rounds"
          + (" (tables from other runs say so)" if len({(s['date'], s['threads'], s['rounds']) for s in latest}) > 1
             else ""))
    print(f"- CPU: {s0['cpu']}; ISA flags: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items()))
    print(f"- ISA forced: {forced}"
          + (" (ONEDNN_MAX_CPU_ISA=DNNL_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell, ATEN_CPU_CAPABILITY=avx2, "
             "nepenthe rebuilt with -mno-avx512f)" if forced == "avx2" else ""))
    for impl in ("nepenthe", "pytorch", "onnxruntime", "sgemm"):
        if impl in isa:
            name = {"sgemm": "sgemm peak"}.get(impl, NAMES.get(impl, impl))
            note = ""
            if impl == "onnxruntime" and forced != "native":
                note = " **ONNX Runtime ran with its default ISA: MLAS picks its kernels from cpuid and nothing caps it.**"
            print(f"  - {name}: {isa[impl]['label']} — {isa[impl]['detail']}.{note}")
    print(f"- sgemm peak (OpenBLAS, n = 2048, same threads): {s0['sgemm_gflops'].get('2048', '?')} GFLOP/s\n")
    print("Targets (✓ met, ✗ not; latency ratios are ORT's over nepenthe's, so > 1 means nepenthe is faster):")
    markdown_targets(latest)
    for s in latest:
        markdown_model(s)


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


def markdown_history(rows):
    print("\n## Earlier runs\n")
    print("Older summaries in this format; ratios of medians (training: nepenthe over PyTorch; "
          "latency: ORT's over nepenthe's).\n")
    print("| date | commit | ISA forced | threads | model | training | batch-1 dense | batch-1 collapsed | "
          "batch-128 dense | batch-128 collapsed | MFLOPs removed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def x(v):
        return f"{v[0]:.2f}x" if v else "—"
    for s in rows:
        r, c = s["ratios"], s.get("collapse") or {}
        fr = (f"{100 * (1 - c['after']['mflops'] / c['before']['mflops']):.0f}%" if "after" in c else "—")
        print(f"| {s['date']} | {s.get('commit', '?')} | {s.get('isa_forced', '?')} | {s['threads']} | {s['model']} | "
              f"{x(r.get('train_vs_pytorch'))} | {x(r.get('b1_ort_over_nepenthe_dense'))} | "
              f"{x(r.get('b1_ort_over_nepenthe_collapsed'))} | {x(r.get('batch_ort_over_nepenthe_dense'))} | "
              f"{x(r.get('batch_ort_over_nepenthe_collapsed'))} | {fr} |")


def markdown_old(rows):
    print("\n## Earlier runs, previous format (nepenthe against PyTorch only)\n")
    print("GFLOP/s counts 3 forward passes per training image; the sgemm column is OpenBLAS's square "
          "sgemm peak at n = 2048 on the same threads. Ratios > 1 mean nepenthe is faster.\n")
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


def ord_date(date):
    """A sortable number for a "YYYY-MM-DD HH:MM" date (later: larger)."""
    return int(re.sub(r"\D", "", date) or 0)


def markdown(path):
    every = [json.loads(line) for line in open(path) if line.strip()]
    new = [r for r in every if r.get("format") == 2]
    old = [r for r in every if r.get("format") is None and r.get("kind") != "decoder"]
    decoders = [r for r in every if r.get("kind") == "decoder"]
    print("# Benchmarks: nepenthe against PyTorch and ONNX Runtime on the same machine\n")
    print("Written by `make bench` (bench/run.sh, bench/summarize.py). Every cell is the median over "
          "alternating rounds, with the spread (min–max) in small print. Columns: nepenthe and PyTorch "
          "(training and inference, same model, same random batch; PyTorch runs conv nets in "
          "channels_last, its fastest CPU layout), ONNX Runtime (inference of `nepenthe export` of the "
          "model nepenthe timed; CPUExecutionProvider, ORT_ENABLE_ALL, sequential, the same threads), "
          "and the collapsed model: the same checkpoint with a few rectifier layers made constant "
          "and its BatchNorm statistics recomputed (bench/dead_layers.py; random weights have no dead "
          "layers), then `nepenthe collapse` on a "
          "tiny random image set, timed by nepenthe (`bench --ckpt`) and ORT (its ONNX); PyTorch has "
          "no collapsed twin. Ratios: training is nepenthe's img/s over PyTorch's; latency is the "
          "peer's over nepenthe's; > 1 means nepenthe is faster. GFLOP/s counts the model's forward "
          "FLOPs (3 forward passes per training image) over the measured OpenBLAS sgemm peak on the "
          "same threads and ISA; those are a direct convolution's multiply-adds, so where nepenthe "
          "runs Winograd convolutions (AVX-512, 3x3 of 32+ channels: fewer multiplications) the rate "
          "can pass the peak. Targets: training ≥ 1.5x PyTorch (ResNet-20, ResNet-18, MobileNetV2), "
          "≥ 1.25x (MLP); inference latency below ORT at batch 1 and 128, dense and collapsed; "
          "collapse: latency falls at least in proportion to the FLOPs removed.")
    shown = set()
    # one section per CPU and forced ISA (the machines differ: AVX-512 Xeons, AVX2 EPYCs),
    # the CPU of the latest run first
    last_run = {}
    for r in new:
        last_run[r.get("cpu", "?")] = max(last_run.get(r.get("cpu", "?"), ""), r["date"])
    keys = {(r.get("cpu", "?"), r.get("isa_forced", "?")) for r in new}
    for cpu, forced in sorted(keys, key=lambda k: (-ord_date(last_run[k[0]]), k[0], k[1] != "native", k[1])):
        latest = {}
        for i, r in enumerate(new):
            if (r.get("cpu", "?"), r.get("isa_forced", "?")) == (cpu, forced):
                latest[r["model"]] = i
        ids = sorted(latest.values(), key=lambda i: (ORDER.index(new[i]["model"]) if new[i]["model"] in ORDER
                                                     else len(ORDER), i))
        shown.update(ids)
        markdown_section(forced, [new[i] for i in ids])
    history = [r for i, r in enumerate(new) if i not in shown]
    if history:
        markdown_history(history)
    if decoders:
        markdown_decoder(decoders)
    if old:
        markdown_old(old)


if __name__ == "__main__":
    if sys.argv[1] == "--markdown":
        markdown(sys.argv[2])
    else:
        summarize(sys.argv[1], sys.argv[2])
