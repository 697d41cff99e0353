"""transformers' greedy continuation of each prompt (one per line of a file) with a Llama
folder, for tests/lm_train_test.sh to hold `nepenthe generate` to: the prompt encoded by
the folder's tokenizer.json with its special tokens, then the argmax of the last logits
fed back through the model's own cache (past_key_values), as generate(do_sample=False)
decodes (generate() itself cannot be imported with Debian's torch 1.13 under Python
3.11), stopping at eos. Prints one line of ids per prompt.

usage: hf_generate.py FOLDER PROMPTS_FILE MAX_NEW_TOKENS
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM


def main(folder, path, max_new):
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "config.json")) as f:
        eos = json.load(f)["eos_token_id"]
    model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            continue
        new = []
        with torch.no_grad():
            res = model(input_ids=torch.tensor([tok.encode(line).ids]), use_cache=True)
            for _ in range(max_new):
                t = int(res.logits[0, -1].argmax())
                new.append(t)
                if t == eos:
                    break
                res = model(input_ids=torch.tensor([[t]]), past_key_values=res.past_key_values, use_cache=True)
        print(" ".join(map(str, new)))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: hf_generate.py FOLDER PROMPTS_FILE MAX_NEW_TOKENS")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
