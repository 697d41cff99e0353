"""Golden references for nepenthe's ScaledDotProductAttention op: Hugging Face's eager
attention (transformers' BERT / Llama: scores q k^T / sqrt(hd) plus a mask of the dtype's
lowest value where a key is padding or, causal, in the future; softmax; times v; grouped
key/value heads repeated as repeat_kv does), written out in PyTorch, float64, forward and
backward by autograd.

Usage: /usr/bin/python3 tests/golden/gen_sdpa.py OUTDIR   -> OUTDIR/sdpa.safetensors

Per case: q [B, T, heads hd], k, v [B, T, kv_heads hd], mask [B, T] (1 token, 0 padding;
all ones when the case has none), gy (float32), and the references y, gq, gk, gv (float64).
Metadata "<case>.attrs": "heads kv_heads causal masked".
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402


def attention(q, k, v, mask, heads, kv_heads, causal):
    """transformers' eager attention on [B, T, C] tensors."""
    B, T, C = q.shape
    hd = C // heads
    q = q.view(B, T, heads, hd).transpose(1, 2)
    k = k.view(B, T, kv_heads, hd).transpose(1, 2)
    v = v.view(B, T, kv_heads, hd).transpose(1, 2)
    rep = heads // kv_heads  # repeat_kv
    k = k[:, :, None].expand(B, kv_heads, rep, T, hd).reshape(B, heads, T, hd)
    v = v[:, :, None].expand(B, kv_heads, rep, T, hd).reshape(B, heads, T, hd)
    scores = q @ k.transpose(2, 3) / hd ** 0.5
    kept = (mask[:, None, None, :] != 0).expand(B, 1, T, T)
    if causal:
        kept = kept & torch.ones(T, T, dtype=torch.bool).tril()
    lowest = torch.finfo(scores.dtype).min
    scores = scores + torch.where(kept, torch.zeros((), dtype=scores.dtype), torch.full((), lowest, dtype=scores.dtype))
    p = torch.softmax(scores, dim=-1)
    return (p @ v).transpose(1, 2).reshape(B, T, C)


def main(outdir):
    t, meta = {}, {"torch": torch.__version__}
    cases = (  # name, B, T, C, heads, kv_heads, causal, padding (tokens cut at the end; < 0: at the start)
        ("plain", 2, 5, 8, 2, 2, False, None),
        ("padded", 3, 6, 8, 2, 2, False, (0, 2, 4)),
        ("causal_gqa_left_padded", 2, 6, 8, 4, 2, True, (0, -2)),
        ("causal_one_head", 2, 4, 3, 1, 1, True, None),
    )
    for i, (name, B, T, C, heads, kv_heads, causal, pad) in enumerate(cases):
        gen = torch.Generator().manual_seed(100 + i)
        Ck = C // heads * kv_heads
        q32, k32, v32 = (torch.randn(B, T, c, generator=gen) * 1.5 for c in (C, Ck, Ck))
        mask = torch.ones(B, T)
        for b, n in enumerate(pad or ()):
            if n > 0:
                mask[b, T - n:] = 0
            elif n < 0:
                mask[b, :-n] = 0
        q, k, v = (a.double().requires_grad_(True) for a in (q32, k32, v32))
        y = attention(q, k, v, mask.double(), heads, kv_heads, causal)
        gy = torch.randn(y.shape, generator=gen)
        gq, gk, gv = torch.autograd.grad((y * gy.double()).sum(), [q, k, v])
        for key, val in (("q", q32), ("k", k32), ("v", v32), ("mask", mask), ("gy", gy), ("y", y), ("gq", gq),
                         ("gk", gk), ("gv", gv)):
            t[f"{name}.{key}"] = val.detach().numpy()
        meta[f"{name}.attrs"] = f"{heads} {kv_heads} {int(causal)} {int(pad is not None)}"
    safetensors_np.save(os.path.join(outdir, "sdpa.safetensors"), t, meta)


if __name__ == "__main__":
    main(sys.argv[1])
