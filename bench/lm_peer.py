"""PyTorch's side of `nepenthe lm-bench`: a Llama-shaped decoder from a config.json with
random weights (transformers' LlamaForCausalLM, float32, eager attention on torch 1.13),
timed as nepenthe times it: the prompt of --prompt-len random tokens through the model
with use_cache=True (filling the key/value cache), then --new-tokens greedy steps at
batch 1, each the argmax of the last logits fed back with past_key_values (the loop
generate(do_sample=False) runs; generate() itself cannot be imported with Debian's torch
1.13 under Python 3.11). Medians over --repeats runs after one untimed run.

usage: build/venv/bin/python bench/lm_peer.py --config FILE [--prompt-len 512]
         [--new-tokens 64] [--repeats 5] [--threads 2] [--seed 0] [--json]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def run(model, prompt, new_tokens):
    with torch.no_grad():
        t0 = time.perf_counter()
        res = model(input_ids=prompt, use_cache=True)
        t1 = time.perf_counter()
        tok = res.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(new_tokens - 1):
            res = model(input_ids=tok, past_key_values=res.past_key_values, use_cache=True)
            tok = res.logits[:, -1].argmax(-1, keepdim=True)
        t2 = time.perf_counter()
    return prompt.shape[1] / (t1 - t0), (new_tokens - 1) / (t2 - t1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    config = LlamaConfig.from_json_file(a.config)
    model = LlamaForCausalLM(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, a.prompt_len))
    run(model, prompt, a.new_tokens)
    pre, gen = [], []
    for r in range(a.repeats):
        p, g = run(model, prompt, a.new_tokens)
        pre.append(p)
        gen.append(g)
        print(f"run {r + 1}/{a.repeats}: prompt {p:.0f} tokens/s, generation {g:.1f} tokens/s")
    if a.json:
        print(json.dumps({"impl": "pytorch", "model": "decoder", "kind": "decoder",
                          "params": sum(p.numel() for p in model.parameters()), "prompt_len": a.prompt_len,
                          "new_tokens": a.new_tokens, "prompt_tok_per_s": round(statistics.median(pre), 2),
                          "gen_tok_per_s": round(statistics.median(gen), 3)}))


if __name__ == "__main__":
    main()
