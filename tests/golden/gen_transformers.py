"""Golden references for nepenthe's vit and swin: torchvision 0.14's own VisionTransformer
and SwinTransformer, small, on one-channel 28x28 images (the stem conv made for 1 channel),
forward, cross-entropy loss and every parameter's gradient, in float64.

Usage: /usr/bin/python3 tests/golden/gen_transformers.py OUTDIR -> OUTDIR/transformers.safetensors

Per model M: "M.x" images [B, 1, 28, 28] and "M.target" labels (float32 / int64), "M.param.<name>"
every state_dict entry that is a parameter (float32, drawn N(0, 0.3^2) in float32 so that no
zero-initialized head hides the gradients), "M.logits", "M.loss", "M.grad.<name>" (float64,
computed from exactly those float32 values). Metadata "M.arch": the nep_model_spec JSON of the
same architecture, as nepenthe's checkpoints hold it.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

B = 4


def arch(model, width, patch, depths, heads, window, mlp_ratio, act="gelu"):
    return json.dumps({"model": model, "input": [1, 28, 28], "classes": 10, "hidden": [], "act": act,
                       "slope": 0.01, "dropout": 0, "width": width, "patch": patch, "depths": depths,
                       "heads": heads, "window": window, "mlp_ratio": mlp_ratio, "drop_path": 0})


def record(t, meta, name, module, arch_json, gen):
    module.double()
    params = dict(module.named_parameters())
    for p in params.values():
        with torch.no_grad():
            p.copy_((torch.randn(p.shape, generator=gen) * 0.3).double())
    x = torch.randn((B, 1, 28, 28), generator=gen)
    target = torch.randint(0, 10, (B,), generator=gen)
    logits = module(x.double())
    loss = F.cross_entropy(logits, target)
    grads = torch.autograd.grad(loss, list(params.values()))
    t[f"{name}.x"], t[f"{name}.target"] = x.numpy(), target.numpy()
    t[f"{name}.logits"], t[f"{name}.loss"] = logits.detach().numpy(), loss.detach().numpy().reshape(1)
    for (pname, p), g in zip(params.items(), grads):
        t[f"{name}.param.{pname}"] = p.detach().numpy().astype("float32")
        t[f"{name}.grad.{pname}"] = g.numpy()
    meta[f"{name}.arch"] = arch_json


def main(outdir):
    gen = torch.Generator().manual_seed(14)
    t, meta = {}, {"torch": torch.__version__}

    vit = VisionTransformer(image_size=28, patch_size=7, num_layers=2, num_heads=2, hidden_dim=16,
                            mlp_dim=32, num_classes=10)
    vit.conv_proj = torch.nn.Conv2d(1, 16, kernel_size=7, stride=7)
    record(t, meta, "vit", vit, arch("vit", 16, 7, [2], [2], 0, 2.0), gen)

    # 14x14 tokens in windows of 4 (padded to 16, shifted every second block), merged to 7x7
    # (padded to 8 for its windows)
    swin = SwinTransformer(patch_size=[2, 2], embed_dim=8, depths=[2, 2], num_heads=[2, 4],
                           window_size=[4, 4], mlp_ratio=2.0, stochastic_depth_prob=0.0, num_classes=10)
    swin.features[0][0] = torch.nn.Conv2d(1, 8, kernel_size=2, stride=2)
    record(t, meta, "swin", swin, arch("swin", 8, 2, [2, 2], [2, 4], 4, 2.0), gen)

    # the paper's rectifier swap: ReLU in every MLP
    swin_relu = SwinTransformer(patch_size=[2, 2], embed_dim=8, depths=[2, 2], num_heads=[2, 4],
                                window_size=[4, 4], mlp_ratio=2.0, stochastic_depth_prob=0.0, num_classes=10)
    swin_relu.features[0][0] = torch.nn.Conv2d(1, 8, kernel_size=2, stride=2)
    for m in swin_relu.modules():
        if hasattr(m, "mlp"):
            m.mlp[1] = torch.nn.ReLU()
    record(t, meta, "swin_relu", swin_relu, arch("swin", 8, 2, [2, 2], [2, 4], 4, 2.0, act="relu"), gen)

    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "transformers.safetensors"), t, meta)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
