"""A new Llama-shaped decoder's folder for `nepenthe lm-train`: a byte-level BPE tokenizer
trained on a corpus with PyPI's tokenizers (Llama 3's pre-tokenizer: Split on its regex,
then ByteLevel; <|begin_of_text|> before every text, <|end_of_text|> as eos) and a
config.json of LlamaForCausalLM, without weights (lm-train initializes them from its
seed as transformers' _init_weights does).

Usage: build/venv/bin/python scripts/decoder_model.py CORPUS OUTDIR [--vocab 4096]
       [--layers 6] [--hidden 256] [--heads 8] [--kv-heads 2] [--intermediate 768]
       [--max-positions 512]
Deterministic for a given corpus and arguments (tokenizers' BPE trainer is).
"""
import argparse
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

# Llama 3's pre-tokenizer pattern, as in its tokenizer.json
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def train_tokenizer(corpus, vocab):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=[BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    with open(corpus, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    tok.train_from_iterator(lines, trainer)
    bos = tok.token_to_id(BOS)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS}:1 $B:1",
                                      special_tokens=[(BOS, bos)])])
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("outdir")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=768)
    ap.add_argument("--max-positions", type=int, default=512)
    a = ap.parse_args()
    if a.hidden % a.heads or a.heads % a.kv_heads:
        sys.exit("decoder_model.py: --hidden must divide by --heads, and --heads by --kv-heads")
    os.makedirs(a.outdir, exist_ok=True)
    tok = train_tokenizer(a.corpus, a.vocab)
    tok.save(os.path.join(a.outdir, "tokenizer.json.tmp"))
    os.replace(os.path.join(a.outdir, "tokenizer.json.tmp"), os.path.join(a.outdir, "tokenizer.json"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": tok.get_vocab_size(), "hidden_size": a.hidden, "intermediate_size": a.intermediate,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
        "head_dim": a.hidden // a.heads, "hidden_act": "silu", "max_position_embeddings": a.max_positions,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None, "attention_bias": False,
        "mlp_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02, "tie_word_embeddings": True,
        "bos_token_id": tok.token_to_id(BOS), "eos_token_id": tok.token_to_id(EOS), "pad_token_id": None,
        "torch_dtype": "float32",
    }
    write_atomic(os.path.join(a.outdir, "config.json"), json.dumps(config, indent=2) + "\n")
    print(f"{a.outdir}: tokenizer of {tok.get_vocab_size()} ids, config of a {a.layers}-layer decoder "
          f"(width {a.hidden}, {a.heads}:{a.kv_heads} heads, intermediate {a.intermediate})")


if __name__ == "__main__":
    main()
