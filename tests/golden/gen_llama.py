"""Golden references for nepenthe's Llama decoder: Hugging Face transformers'
LlamaForCausalLM, tiny and random, on a right-padded batch: every layer's hidden states, the
logits, the causal-LM loss and every parameter's gradient, in float64 and in float32.

Usage: build/venv/bin/python tests/golden/gen_llama.py OUTDIR -> OUTDIR/llama.safetensors
Needs PyPI's transformers (scripts/requirements-nodeps.txt) over Debian's torch 1.13 (eager
attention). Seeded and deterministic (about 2 s).

Two models, M = "llama" and M = "llama_tied" (the tensor name prefix), the same but for
tie_word_embeddings (false, true). Model "llama", built under torch.manual_seed(0): 2 layers,
hidden_size 64, 4 query heads and 2 key/value heads of head_dim 16 (grouped-query attention),
intermediate_size 96, vocab_size 101, max_position_embeddings 64, rms_norm_eps 1e-6,
rope_theta 10000, rope_scaling {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
"high_freq_factor": 4, "original_max_position_embeddings": 32} (wavelengths 2 pi / inv_freq of
6.3, 20, 63, 200, ... against the bands' 8 and 32: all three bands of Llama 3's rescaling
occur), hidden_act silu, tie_word_embeddings false, initializer_range 0.1, attention_dropout 0.
The exact config.json text is in the metadata "M/config". RMSNorm weights, initialized to
1 by transformers, are perturbed by N(0, 0.1^2) so that a wrong index shows. "llama_tied" is
built the same way under torch.manual_seed(1); its lm_head reads model.embed_tokens.weight, and
as save_pretrained does, its weights have no "lm_head.weight" entry (named_parameters() has
none either: the gradient of model.embed_tokens.weight sums both uses).

Inputs (the same for both models), batch B = 3, length T = 10, padding at the end (transformers' position_ids: 0..T-1):
  "llama/input_ids"       int64 [3, 10]  ids drawn from 3..100; 0 on padding; row 2's last real
                                         token (position 3) replaced by the float32 model's
                                         argmax there, so that one span is greedy
  "llama/attention_mask"  int64 [3, 10]  1 on the 10, 7 and 4 real tokens, 0 after
  "llama/labels"          int64 [3, 10]  input_ids, -100 on padding (ignored by the loss)
Results, P in {"f64", "f32"} (computed in that precision):
  "M/P/weights/<name>"    every state_dict entry (transformers' names:
                              "model.layers.0.self_attn.q_proj.weight" [64, 64] as nn.Linear
                              holds it, [out, in]; "lm_head.weight" [101, 64])
  "M/P/hidden_states/<i>" [3, 10, 64]: layer i's input (i = 0: the embeddings; i = 1:
                              layer 0's output), as output_hidden_states gives them
  "M/P/final_norm"        [3, 10, 64]: model.norm of the last layer's output (the last
                              entry of output_hidden_states in transformers 4.47)
  "M/P/logits"            [3, 10, 101]
  "M/P/loss"              [1] transformers' causal-LM loss: cross-entropy of logits[:, :-1]
                              against labels[:, 1:], mean over the labels that are not -100
                              (computed in P: transformers' own computes it in float32)
  "M/P/grads/<name>"      d loss / d parameter, every named parameter
  "llama/span_start", "llama/span_end"  int64 [3]: row r's scored continuation, tokens
                              [start, end) (the last real ones)
  "M/P/span_logprob"      [3] lm-evaluation-harness's loglikelihood of row r's span:
                              sum over t in the span of log_softmax(logits[r, t - 1])[ids[r, t]]
  "M/P/span_greedy"       [3] 1 when every span token is the argmax of its logits, else 0
Training, "llama_tied" only, in float32 from its weights above: 3 optimizer steps on the batch
above (the loss above), torch.optim.AdamW (lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight
decay 0.1 on parameters of 2 or more dimensions, 0 on the rest: Trainer's grouping), gradient
norm clipped to 1 before each step, the rate from transformers'
get_cosine_schedule_with_warmup(num_warmup_steps=1, num_training_steps=4) stepped after each:
  "llama_tied/train/loss"          [3] the loss before each step
  "llama_tied/train/weights/<name>" every parameter after the 3 steps
  "llama_tied/train/lr"            [8] that schedule's rate at steps 0..7 with lr 1, warm-up 3
                                   and 6 steps in all (a zero rate from step 6 on)
Generation, "llama_tied" in float32 from its weights above: greedy decoding of rows 1 and 2's
real tokens as prompts (7 and 4 tokens), each alone, as transformers' generate(do_sample=False,
max_new_tokens=6) with the config's eos (2) decodes: the argmax of the last logits, fed back
through the model's own key/value cache (past_key_values):
  "llama_tied/generate/<r>"        [6] the new tokens of row r's prompt, -1 after eos
Metadata: "M/config" (JSON), "versions".
"""
import os
import sys

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

B, T = 3, 10
LENGTHS = (10, 7, 4)
SPANS = ((6, 10), (4, 7), (3, 4))  # the scored continuation of each row: tokens [start, end)
CONFIG = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=96, vocab_size=101, max_position_embeddings=64, rms_norm_eps=1e-6,
              rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False, initializer_range=0.1,
              attention_dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2,
              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 32})


def out(t):
    return t.detach().cpu().numpy().copy()


def inputs(model32, gen):
    ids = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for r, n in enumerate(LENGTHS):
        ids[r, :n] = torch.randint(3, 101, (n,), generator=gen)
        mask[r, :n] = 1
    with torch.no_grad():  # row 2's last token becomes the model's own argmax: greedy there
        ids[2, 3] = model32(input_ids=ids, attention_mask=mask).logits[2, 2].argmax()
    return ids, mask


def model_case(t, meta, m, tied, seed, gen, ids_mask):
    config = LlamaConfig(**dict(CONFIG, tie_word_embeddings=tied))
    meta[f"{m}/config"] = config.to_json_string()
    torch.manual_seed(seed)
    model32 = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model32.named_parameters():
            if "norm" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    ids, mask = ids_mask if ids_mask else inputs(model32, gen)
    labels = ids.masked_fill(mask == 0, -100)
    init = {k: v.clone() for k, v in model32.state_dict().items()}
    for p_name, dtype in (("f64", torch.float64), ("f32", torch.float32)):
        model = LlamaForCausalLM(config)
        model.load_state_dict(init)
        model.to(dtype)
        model.train()  # no dropout in Llama's config: training mode is deterministic
        res = model(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
        pre = f"{m}/{p_name}"
        for name, v in model.state_dict().items():
            if not (tied and name == "lm_head.weight"):  # save_pretrained drops the tied copy
                t[f"{pre}/weights/{name}"] = out(v)
        for i, h in enumerate(res.hidden_states[:-1]):
            t[f"{pre}/hidden_states/{i}"] = out(h)
        t[f"{pre}/final_norm"] = out(res.hidden_states[-1])
        # transformers 4.47's ForCausalLMLoss upcasts the logits to float32 whatever the
        # model's dtype; the same loss in the model's precision keeps the f64 reference f64
        loss = torch.nn.functional.cross_entropy(res.logits[:, :-1].reshape(-1, config.vocab_size),
                                                 labels[:, 1:].reshape(-1), ignore_index=-100)
        assert torch.allclose(loss.float(), res.loss.float(), rtol=1e-5), p_name
        t[f"{pre}/logits"], t[f"{pre}/loss"] = out(res.logits), out(loss.reshape(1))
        # lm-evaluation-harness's loglikelihood of each row's span [start, end): the sum of
        # log_softmax(logits[t - 1])[ids[t]], and whether every such token is the argmax
        logp = torch.log_softmax(res.logits, dim=-1)
        sums, greedy = [], []
        for r in range(B):
            a, b = SPANS[r]
            sums.append(sum(logp[r, i - 1, ids[r, i]] for i in range(a, b)))
            greedy.append(float(all(res.logits[r, i - 1].argmax() == ids[r, i] for i in range(a, b))))
        t[f"{pre}/span_logprob"] = out(torch.stack(sums))
        t[f"{pre}/span_greedy"] = out(torch.tensor(greedy, dtype=dtype))
        loss.backward()
        for name, p in model.named_parameters():
            t[f"{pre}/grads/{name}"] = out(p.grad)
    return ids, mask, labels, config, init


def train_case(t, config, init, ids, mask, labels):
    model = LlamaForCausalLM(config)
    model.load_state_dict(init)
    model.train()
    params = list(model.named_parameters())
    opt = torch.optim.AdamW([{"params": [p for _, p in params if p.ndim >= 2], "weight_decay": 0.1},
                             {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    sched = transformers.get_cosine_schedule_with_warmup(opt, num_warmup_steps=1, num_training_steps=4)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.detach())
    t["llama_tied/train/loss"] = out(torch.stack(losses))
    for name, p in params:
        t[f"llama_tied/train/weights/{name}"] = out(p)
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = transformers.get_cosine_schedule_with_warmup(probe, num_warmup_steps=3, num_training_steps=6)
    rates = []
    for _ in range(8):
        rates.append(sched.get_last_lr()[0])
        probe.step()
        sched.step()
    t["llama_tied/train/lr"] = out(torch.tensor(rates, dtype=torch.float64))


def generate_case(t, config, init, ids, mask):
    model = LlamaForCausalLM(config)
    model.load_state_dict(init)
    model.eval()
    for r in (1, 2):
        n = int(mask[r].sum())
        # generate() itself imports torch.distributed.fsdp, which Debian's torch 1.13 cannot
        # import under Python 3.11; its greedy search is this loop over the model's own cache
        new = torch.full((6,), -1, dtype=torch.long)
        with torch.no_grad():
            res = model(input_ids=ids[r:r + 1, :n], use_cache=True)
            for k in range(6):
                tok = int(res.logits[0, -1].argmax())
                new[k] = tok
                if tok == config.eos_token_id:
                    break
                res = model(input_ids=torch.tensor([[tok]]), past_key_values=res.past_key_values, use_cache=True)
        t[f"llama_tied/generate/{r}"] = out(new)


def main(outdir):
    t = {}
    meta = {"versions": "torch %s transformers %s" % (torch.__version__, transformers.__version__)}
    gen = torch.Generator().manual_seed(1234)
    ids, mask, labels, _, _ = model_case(t, meta, "llama", False, 0, gen, None)
    _, _, _, config, init = model_case(t, meta, "llama_tied", True, 1, gen, (ids, mask))
    train_case(t, config, init, ids, mask, labels)
    generate_case(t, config, init, ids, mask)
    t["llama/input_ids"], t["llama/attention_mask"], t["llama/labels"] = out(ids), out(mask), out(labels)
    t["llama/span_start"] = out(torch.tensor([a for a, _ in SPANS]))
    t["llama/span_end"] = out(torch.tensor([b for _, b in SPANS]))
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "llama.safetensors")
    safetensors_np.save(path, t, meta)
    print("%s: %d tensors" % (path, len(t)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gen_llama.py OUTDIR")
    main(sys.argv[1])
