"""PyTorch's side of nepenthe's CPU benchmark: training and inference throughput.

Usage: /usr/bin/python3 bench/torch_peer.py --model mlp --hidden 1024,1024,1024 --act relu
         --input 784 --classes 10 --batch 128 --steps 50 --warmup 5 --threads 2 [--json]

Training step = forward, cross entropy, backward, SGD(momentum=0.9) step,
zero_grad(set_to_none=True), on one fixed pre-generated random batch; timed per step with
time.perf_counter, reporting the median. Inference runs under torch.no_grad() at batch 1
(median over max(steps, 50) calls) and at batch B (median over `steps` calls).
With --json the last line printed is a JSON object.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import median_times

ACTS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.1), "relu6": nn.ReLU6,
        "gelu": nn.GELU, "silu": nn.SiLU, "identity": nn.Identity}


def build_mlp(a):
    dims = [a.input] + [int(h) for h in a.hidden.split(",") if h] + [a.classes]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(ACTS[a.act]())
    return nn.Sequential(*layers), (a.input,)


def build_convnet(name):
    """The twins of nepenthe's conv nets, in PyTorch's fastest CPU layout (channels_last)."""
    def build(a):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
        import torch_models
        c, h, w = (int(v) for v in a.image.split(","))
        m = torch_models.build(name, in_c=c, classes=a.classes, width_mult=a.width_mult)
        return m.to(memory_format=torch.channels_last), (c, h, w)
    return build


def build_transformer(name):
    """torchvision's VisionTransformer / SwinTransformer, the stem conv made for the image's
    channels (as nepenthe's vit and swin have it)."""
    def build(a):
        from torchvision.models.swin_transformer import SwinTransformer
        from torchvision.models.vision_transformer import VisionTransformer
        c, h, w = (int(v) for v in a.image.split(","))
        depths, heads = [int(v) for v in a.depths.split(",")], [int(v) for v in a.heads.split(",")]
        if name == "vit":
            m = VisionTransformer(image_size=h, patch_size=a.patch, num_layers=depths[0], num_heads=heads[0],
                                  hidden_dim=a.width, mlp_dim=int(a.width * a.mlp_ratio), num_classes=a.classes)
            m.conv_proj = nn.Conv2d(c, a.width, kernel_size=a.patch, stride=a.patch)
        else:
            m = SwinTransformer(patch_size=[a.patch, a.patch], embed_dim=a.width, depths=depths, num_heads=heads,
                                window_size=[a.window, a.window], mlp_ratio=a.mlp_ratio,
                                stochastic_depth_prob=a.drop_path, num_classes=a.classes)
            m.features[0][0] = nn.Conv2d(c, a.width, kernel_size=a.patch, stride=a.patch)
        return m, (c, h, w)
    return build


# model name -> builder(args) returning (module, per-sample input shape); add more models here.
MODELS = {"mlp": build_mlp, **{n: build_convnet(n) for n in
                               ("cnn", "resnet18", "resnet20", "resnet50", "mobilenetv2")},
          "vit": build_transformer("vit"), "swin": build_transformer("swin")}
TRANSFORMERS = ("vit", "swin")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlp", choices=sorted(MODELS))
    p.add_argument("--hidden", default="1024,1024,1024")
    p.add_argument("--act", default="relu", choices=sorted(ACTS))
    p.add_argument("--input", type=int, default=784)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--image", default="3,32,32", help="conv nets: per-sample input C,H,W")
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--patch", type=int, default=4, help="vit, swin")
    p.add_argument("--width", type=int, default=64, help="vit, swin: embedding width")
    p.add_argument("--depths", default="2,2", help="vit, swin")
    p.add_argument("--heads", default="2,4", help="vit, swin")
    p.add_argument("--window", type=int, default=4, help="swin")
    p.add_argument("--mlp-ratio", type=float, default=4.0, help="vit, swin")
    p.add_argument("--drop-path", type=float, default=0.0, help="swin")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, in_shape = MODELS[a.model](a)
    x = torch.randn(a.batch, *in_shape)
    if len(in_shape) == 3 and a.model not in TRANSFORMERS:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, a.classes, (a.batch,))
    x1 = x[:1].clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    t_train = median_times(train_step, a.steps, a.warmup)
    model.eval()
    with torch.no_grad():
        t_b1 = median_times(lambda: model(x1), max(a.steps, 50), a.warmup)
        t_bb = median_times(lambda: model(x), a.steps, a.warmup)

    r = {"impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "model": a.model,
         "batch": a.batch, "train_img_per_s": a.batch / t_train, "train_ms_median": t_train * 1e3,
         "infer_ms_batch1": t_b1 * 1e3, "infer_img_per_s": a.batch / t_bb}
    print(f"pytorch {r['torch']} {a.model} threads={a.threads} batch={a.batch}: "
          f"train {r['train_img_per_s']:.0f} img/s ({r['train_ms_median']:.2f} ms/step), "
          f"infer b1 {r['infer_ms_batch1']:.3f} ms, infer b{a.batch} {r['infer_img_per_s']:.0f} img/s")
    if a.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
