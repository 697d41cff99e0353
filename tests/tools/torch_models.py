"""PyTorch twins of nepenthe's conv-net builders (src/models/convnets.c): same structure,
same state_dict names, so weights move between the two by name. Used by the golden
generators and by the conversion script; imports torch only.

Models: cnn, resnet20, resnet18, resnet50, resnet152 (CIFAR variants: 3x3 stride-1 stem,
optional max-pool after it), mobilenetv2 (CIFAR: stem stride 1, 24-channel stage stride 1,
width multiplier)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_c, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
        self.downsample = None
        if stride != 1 or in_c != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_c, planes, 1, stride, 0, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_c, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(in_c, planes, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.downsample = None
        if stride != 1 or in_c != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_c, out, 1, stride, 0, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.relu2(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu3(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    def __init__(self, block, blocks, width0, in_c=3, classes=10, stem_pool=False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, width0, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width0)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem_pool else None
        c = width0
        for st, n in enumerate(blocks):
            planes = width0 << st
            layer = []
            for i in range(n):
                layer.append(block(c, planes, 2 if i == 0 and st > 0 else 1))
                c = planes * block.expansion
            setattr(self, f"layer{st + 1}", nn.Sequential(*layer))
        self.stages = len(blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for st in range(self.stages):
            x = getattr(self, f"layer{st + 1}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def divisible8(v):
    r = max(8, int(v + 4) // 8 * 8)
    return r + 8 if r < 0.9 * v else r


def conv_bn_relu6(in_c, out_c, k, stride, groups):
    return nn.Sequential(nn.Conv2d(in_c, out_c, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_c), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, in_c, out_c, stride, t):
        super().__init__()
        hidden = in_c * t
        layers = []
        if t != 1:
            layers.append(conv_bn_relu6(in_c, hidden, 1, 1, 1))
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, hidden),
                   nn.Conv2d(hidden, out_c, 1, 1, 0, bias=False), nn.BatchNorm2d(out_c)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_c == out_c

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width_mult=1.0, in_c=3, classes=10, dropout=0.2):
        super().__init__()
        c = divisible8(32 * width_mult)
        feats = [conv_bn_relu6(in_c, c, 3, 1, 1)]
        for t, ch, n, s in self.CFG:
            out = divisible8(ch * width_mult)
            for i in range(n):
                feats.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        last = divisible8(1280 * max(1.0, width_mult))
        feats.append(conv_bn_relu6(c, last, 1, 1, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class CNN(nn.Module):
    def __init__(self, in_c=3, classes=10):
        super().__init__()
        c = in_c
        for i in range(3):
            setattr(self, f"conv{i + 1}", nn.Conv2d(c, 32 << i, 3, 1, 1, bias=False))
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(32 << i))
            setattr(self, f"relu{i + 1}", nn.ReLU())
            c = 32 << i
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        for i in range(3):
            x = getattr(self, f"relu{i + 1}")(getattr(self, f"bn{i + 1}")(getattr(self, f"conv{i + 1}")(x)))
            if i < 2:
                x = F.max_pool2d(x, 2, 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(name, in_c=3, classes=10, width_mult=1.0, stem_pool=False):
    if name == "resnet20":
        return ResNet(BasicBlock, [3, 3, 3], 16, in_c, classes, stem_pool)
    if name == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], 64, in_c, classes, stem_pool)
    if name == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], 64, in_c, classes, stem_pool)
    if name == "resnet152":
        return ResNet(Bottleneck, [3, 8, 36, 3], 64, in_c, classes, stem_pool)
    if name == "mobilenetv2":
        return MobileNetV2(width_mult, in_c, classes)
    if name == "cnn":
        return CNN(in_c, classes)
    raise ValueError(f"unknown model {name}")
