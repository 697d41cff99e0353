"""Golden references for nepenthe's text encoders: Hugging Face transformers'
BertForSequenceClassification (hidden_act "gelu", the erf form, and "gelu_new", the tanh form)
and RobertaForSequenceClassification, tiny and random, on a padded batch: forward with every
layer's hidden states, cross-entropy loss, every parameter's gradient and one AdamW step, in
float64 and in float32.

Usage: build/venv/bin/python tests/golden/gen_text_encoders.py OUTDIR
       -> OUTDIR/text_encoders.safetensors
Needs PyPI's transformers (scripts/requirements-nodeps.txt, installed into build/venv by
scripts/install-py-deps.sh) over Debian's torch 1.13. Seeded and deterministic (about 3 s).

Models M (the tensor name prefix), each built from its config under torch.manual_seed(0):
  "bert"           BertForSequenceClassification, hidden_act "gelu"
  "bert_gelu_new"  the same with hidden_act "gelu_new" (same seed, so the same initial weights
                   and inputs as "bert": the two differ only by the activation)
  "roberta"        RobertaForSequenceClassification
Config (all): num_hidden_layers 2, hidden_size 32, num_attention_heads 4 (head size 8),
intermediate_size 37, vocab_size 99, max_position_embeddings 40, layer_norm_eps 1e-12,
num_labels 3 (single-label classification: the loss is torch's CrossEntropyLoss, mean over
the batch), hidden_dropout_prob 0, attention_probs_dropout_prob 0 (so training mode, used for
the forward and backward, is deterministic), initializer_range 0.1; BERT: type_vocab_size 2,
pad_token_id 0; RoBERTa: type_vocab_size 1, pad_token_id 1, bos_token_id 0, eos_token_id 2.
The exact config.json text is in the metadata "M/config" (transformers' to_json_string).

Initial weights: transformers' own init (Linear and Embedding weights N(0, 0.1^2), the
padding_idx rows of the word embeddings (and RoBERTa's position embeddings) zero), then every
bias and every LayerNorm weight and bias perturbed by N(0, 0.1^2) so that none of them is
constant and hides a bug. Drawn in float32; the float64 model holds exactly those values.

Inputs (shared by both precisions), batch B = 3, length T = 12; sequence 0 is unpadded,
sequence 1 has 9 real tokens, sequence 2 has 6 (padding at the end):
  "M/input_ids"       int64 [3, 12]  BERT: [CLS]=2 a.. [SEP]=3 b.. [SEP]=3 then [PAD]=0;
                                     RoBERTa: <s>=0 a.. </s>=2 </s>=2 b.. </s>=2 then <pad>=1;
                                     ordinary tokens drawn from 5..98
  "M/attention_mask"  int64 [3, 12]  1 on real tokens, 0 on padding
  "M/token_type_ids"  int64 [3, 12]  BERT: 0 on [CLS] a [SEP], 1 on b [SEP], 0 on padding
                                     (a sentence pair); RoBERTa: all 0
  "M/position_ids"    int64 [3, 12]  the position ids the model used: BERT 0..11 on every row;
                                     RoBERTa create_position_ids_from_input_ids: padding_idx+1
                                     = 2, 3, ... on tokens that are not <pad>, padding_idx = 1
                                     on <pad> tokens
  "M/labels"          int64 [3]      [0, 2, 1]
Results, P in {"f64", "f32"} (float64 / float32 tensors, computed in that precision):
  "M/P/weights/<name>"        every state_dict entry (Hugging Face's names, e.g.
                              "bert.encoder.layer.0.attention.self.query.weight" [32, 32] as
                              nn.Linear holds it, [out, in]; the non-persistent position_ids
                              and token_type_ids buffers are not in the state_dict: see
                              "M/position_ids")
  "M/P/hidden_states/<i>"     [3, 12, 32], i = 0 the embeddings' output (after their
                              LayerNorm), i = 1..2 the output of layer i-1 (output_hidden_states)
  "M/P/attentions/<i>"        [3, 4, 12, 12] layer i's attention probabilities (softmax over
                              the last axis; the padded keys get exactly 0)
  "M/P/pooled"                BERT: [3, 32] the pooler's output, tanh(dense(hidden[:, 0]))
  "M/P/classifier_hidden"     RoBERTa: [3, 32] tanh(classifier.dense(hidden[:, 0])), the
                              input of classifier.out_proj
  "M/P/logits"                [3, 3]
  "M/P/loss"                  [1] (a scalar) cross-entropy of logits against M/labels, mean over the batch
  "M/P/grads/<name>"          d loss / d parameter, every named parameter (same names as the
                              weights; the padding_idx rows of embeddings get 0 gradient, as
                              nn.Embedding(padding_idx=...) does)
  "M/P/after_step/<name>"     every state_dict entry after one torch.optim.AdamW step on those
                              gradients (lr 1e-3, betas (0.9, 0.999), eps 1e-8,
                              weight_decay 0.01 on every parameter, one param group: torch's
                              decoupled decay p *= 1 - lr * wd, then the bias-corrected Adam
                              update; after this first step that is, up to rounding,
                              p (1 - lr wd) - lr g / (|g| + eps), so a zero gradient moves p
                              only by the decay)
Metadata: "M/config" (JSON), "M/class" (the transformers class), "versions", "adamw".
"""
import os
import sys

import torch
import transformers
from transformers import (BertConfig, BertForSequenceClassification, RobertaConfig,
                          RobertaForSequenceClassification)
from transformers.models.roberta.modeling_roberta import create_position_ids_from_input_ids

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

B, T = 3, 12
LENGTHS = (12, 9, 6)  # real tokens per sequence; the rest is padding
SPLIT = (5, 4, 1)     # tokens of sentence a per sequence (without specials)
LABELS = (0, 2, 1)
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
COMMON = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=37,
              vocab_size=99, max_position_embeddings=40, layer_norm_eps=1e-12, num_labels=3,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.1)


def make_inputs(kind, gen):
    """input_ids, attention_mask, token_type_ids for a sentence-pair batch with padding."""
    ids = torch.zeros((B, T), dtype=torch.long)
    types = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for r, (n, na) in enumerate(zip(LENGTHS, SPLIT)):
        if kind == "bert":  # [CLS] a [SEP] b [SEP]
            nb = n - na - 3
            seq = [2] + [None] * na + [3] + [None] * nb + [3]
            tt = [0] * (na + 2) + [1] * (nb + 1)
            pad = 0
        else:  # <s> a </s></s> b </s>
            nb = n - na - 4
            seq = [0] + [None] * na + [2, 2] + [None] * nb + [2]
            tt = [0] * n
            pad = 1
        assert nb >= 1 and len(seq) == n
        words = torch.randint(5, 99, (n,), generator=gen)
        ids[r, :n] = torch.tensor([w.item() if s is None else s for s, w in zip(seq, words)])
        ids[r, n:] = pad
        types[r, :n] = torch.tensor(tt)
        mask[r, :n] = 1
    return ids, mask, types


def perturb(model, gen):
    """Biases and LayerNorm parameters (constant after transformers' init) get N(0, 0.1^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "LayerNorm" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def out(t):
    return t.detach().cpu().numpy().copy()


def run(t, meta, prefix, cls, config, kind):
    meta[f"{prefix}/config"] = config.to_json_string()  # before a model adds its own keys
    meta[f"{prefix}/class"] = cls.__name__
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model32 = cls(config)  # float32, transformers' init under the seed
    perturb(model32, gen)
    ids, mask, types = make_inputs(kind, gen)
    labels = torch.tensor(LABELS)
    if kind == "bert":
        pos = torch.arange(T).expand(B, T).contiguous()
    else:
        pos = create_position_ids_from_input_ids(ids, config.pad_token_id)
    t[f"{prefix}/input_ids"], t[f"{prefix}/attention_mask"] = out(ids), out(mask)
    t[f"{prefix}/token_type_ids"], t[f"{prefix}/position_ids"] = out(types), out(pos)
    t[f"{prefix}/labels"] = out(labels)
    init = {k: v.clone() for k, v in model32.state_dict().items()}

    for p_name, dtype in (("f64", torch.float64), ("f32", torch.float32)):
        model = cls(config)
        model.load_state_dict(init)
        model.to(dtype)
        model.train()  # dropout probabilities are 0: training mode is deterministic
        base = getattr(model, model.base_model_prefix)
        captured = {}

        def keep(key, take_input):
            def hook(module, inputs, output):  # returns None: the output stays as it is
                captured[key] = inputs[0] if take_input else output
            return hook
        if kind == "bert":
            hook = base.pooler.register_forward_hook(keep("pooled", False))
        else:
            hook = model.classifier.out_proj.register_forward_hook(keep("classifier_hidden", True))
        res = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels,
                    output_hidden_states=True, output_attentions=True)
        hook.remove()
        pre = f"{prefix}/{p_name}"
        for name, v in model.state_dict().items():
            t[f"{pre}/weights/{name}"] = out(v)
        for i, h in enumerate(res.hidden_states):
            t[f"{pre}/hidden_states/{i}"] = out(h)
        for i, a in enumerate(res.attentions):
            t[f"{pre}/attentions/{i}"] = out(a)
        for k, v in captured.items():
            t[f"{pre}/{k}"] = out(v)
        t[f"{pre}/logits"], t[f"{pre}/loss"] = out(res.logits), out(res.loss)
        # The same loss, written out, so the file says what it is.
        ref = torch.nn.functional.cross_entropy(res.logits, labels)
        assert torch.equal(ref, res.loss), (prefix, p_name)
        res.loss.backward()
        for name, p in model.named_parameters():
            t[f"{pre}/grads/{name}"] = out(p.grad)
        opt = torch.optim.AdamW(model.parameters(), **ADAMW)
        opt.step()
        for name, v in model.state_dict().items():
            t[f"{pre}/after_step/{name}"] = out(v)

    # padding changes nothing for the real tokens (a check of the reference itself)
    model = cls(config)
    model.load_state_dict(init)
    model.double().eval()
    ids2 = ids.clone()
    for r, n in enumerate(LENGTHS):
        ids2[r, n:] = 7
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        b = model(input_ids=ids2, attention_mask=mask, token_type_ids=types,
                  position_ids=pos if kind != "bert" else None).logits
    assert torch.equal(a, b), (prefix, (a - b).abs().max())


def main(outdir):
    t = {}
    meta = {"versions": "torch %s transformers %s" % (torch.__version__, transformers.__version__),
            "adamw": "lr 1e-3 betas 0.9 0.999 eps 1e-8 weight_decay 0.01"}
    bert = dict(COMMON, type_vocab_size=2, pad_token_id=0)
    run(t, meta, "bert", BertForSequenceClassification, BertConfig(**bert, hidden_act="gelu"), "bert")
    run(t, meta, "bert_gelu_new", BertForSequenceClassification,
        BertConfig(**bert, hidden_act="gelu_new"), "bert")
    run(t, meta, "roberta", RobertaForSequenceClassification,
        RobertaConfig(**COMMON, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2),
        "roberta")
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "text_encoders.safetensors")
    safetensors_np.save(path, t, meta)
    print("%s: %d tensors" % (path, len(t)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gen_text_encoders.py OUTDIR")
    main(sys.argv[1])
