"""Held-out loss of a causal LM folder as transformers computes it, for
tests/lm_train_test.sh: LlamaForCausalLM.from_pretrained(folder) in float32 over the lines
of a text file packed exactly as `nepenthe lm-train` packs them (each line encoded by
the folder's tokenizer.json with its special tokens, then eos; all concatenated and cut
into rows of T tokens, the tail dropped); prints "loss <mean nats per predicted token>"
and "rows <n>".

usage: hf_eval_lm.py FOLDER TEXT_FILE T
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM


def main(folder, path, T):
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    with open(os.path.join(folder, "config.json")) as f:
        eos = json.load(f)["eos_token_id"]
    stream = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                stream += tok.encode(line).ids + [eos]
    n = len(stream) // T
    ids = torch.tensor(stream[: n * T]).reshape(n, T)
    model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, n, 16):
            x = ids[start:start + 16]
            logits = model(input_ids=x).logits
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).double(),
                                                     x[:, 1:].reshape(-1), reduction="sum")
            total += loss.item()
            count += x[:, 1:].numel()
    print("loss %.6f" % (total / count))
    print("rows %d" % n)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: hf_eval_lm.py FOLDER TEXT_FILE T")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
