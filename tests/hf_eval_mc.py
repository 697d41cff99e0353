"""lm-evaluation-harness's multiple-choice scoring of a causal LM folder, written out from
the harness's source (v0.4: HFLM._encode_pair and _loglikelihood_tokens, the MMLU
template), on transformers' LlamaForCausalLM, for tests/lm_train_test.sh to hold
`nepenthe lm-eval --predictions` to: prints one JSON line per question with the four
continuations' log-likelihoods.

usage: hf_eval_mc.py FOLDER CSV SUBJECT MODE T     (MODE: letter (0-shot) or cloze)
"""
import csv
import json
import os
import sys

import torch
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM


def encode_pair(tok, context, continuation):
    # HFLM._encode_pair: trailing whitespace of the context moves to the continuation
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation, add_special_tokens=False).ids
    ctx = tok.encode(context, add_special_tokens=False).ids
    return ctx, whole[len(ctx):]


def main(folder, path, subject, mode, T):
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
    model.eval()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    description = "The following are multiple choice questions (with answers) about %s.\n\n" % " ".join(subject.split("_"))
    for i, (q, a, b, c, d, answer) in enumerate(rows):
        choices = [a, b, c, d]
        if mode == "letter":
            context = description + q.strip() + "\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:" % tuple(choices)
            requests = [(context, " " + L) for L in "ABCD"]
        else:
            requests = [(q, " " + ch) for ch in choices]
        lps = []
        for context, continuation in requests:
            ctx, cont = encode_pair(tok, context, continuation)
            inp = (ctx + cont)[-(T + 1):][:-1]
            # a continuation longer than the window: the harness's slice would run out of
            # range; nepenthe scores its last len(inp) tokens (lm_score.h), and so does this
            cont = cont[-len(inp):]
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([inp])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            n = len(inp)
            lps.append(sum(logp[n - len(cont) + k, cont[k]].item() for k in range(len(cont))))
        print(json.dumps({"i": i, "logprob": lps}))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit("usage: hf_eval_mc.py FOLDER CSV SUBJECT MODE T")
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
