"""CT -> DWI synthesis networks (models/training/README.md "CT -> DWI synthesis").

Input  `input` [N, 4, 128, 128]: CT brain window of slices z-1, z, z+1 and the brain mask of slice z (from the CT).
Output `dwi`   [N, 1, 128, 128]: DWI at b = 1000 in units of normal white matter (>= 0, softplus).

- `JmmdaGenerator`: after JMMDA-GAN, small. Mask-guided feature fusion (the brain mask modulates the features of
  every encoder level: f * (1 + g(m)) + b(m)), a multi-frequency encoder (each downsampling is a Haar DWT: LL goes
  to a low-frequency path, LH/HL/HH to a high-frequency path), dual-path attention at the bottleneck (multi-head
  self-attention, 4 heads, one per path) and adaptive fusion weights (softmax weights from the pooled features of
  both paths, per channel) that merge the two paths at every level and at the bottleneck; a U-Net decoder.
- `UnetGenerator`: the pix2pix-style baseline (U-Net generator, strided conv down, transposed conv up), same inputs.
- `PatchDiscriminator`: pix2pix 70x70-style PatchGAN on concat(input, dwi), used for both generators.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2 if k % 2 else k // 2 - 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True))


class HaarDWT(nn.Module):
    """Orthonormal 2D Haar DWT as a fixed depthwise stride-2 conv: [N, C, H, W] -> LL, (LH, HL, HH) at H/2."""

    def __init__(self, c: int):
        super().__init__()
        ll = torch.tensor([[1.0, 1.0], [1.0, 1.0]]) / 2
        lh = torch.tensor([[1.0, 1.0], [-1.0, -1.0]]) / 2
        hl = torch.tensor([[1.0, -1.0], [1.0, -1.0]]) / 2
        hh = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) / 2
        w = torch.stack([ll, lh, hl, hh])[:, None].repeat(c, 1, 1, 1)  # [4C, 1, 2, 2], channel-major
        self.register_buffer("w", w)
        self.c = c

    def forward(self, x: torch.Tensor):
        y = F.conv2d(x, self.w, stride=2, groups=self.c)  # [N, 4C, H/2, W/2]: per channel LL, LH, HL, HH
        n, _, h, w = y.shape
        y = y.view(n, self.c, 4, h, w)
        return y[:, :, 0], y[:, :, 1:].reshape(n, self.c * 3, h, w)


class MaskFusion(nn.Module):
    """Mask-guided feature fusion: the brain mask (resized to the level) gives a per-pixel scale and shift."""

    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(8, 2 * c, 3, 1, 1))

    def forward(self, f: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        g, b = self.net(m).chunk(2, 1)
        return f * (1 + torch.tanh(g)) + b


class AdaptiveFusion(nn.Module):
    """Adaptive fusion weights: per-channel softmax weights over the two paths from their pooled features."""

    def __init__(self, c: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(2 * c, c), nn.ReLU(inplace=True), nn.Linear(c, 2 * c))
        self.c = c

    def forward(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        s = torch.cat([lo.mean((2, 3)), hi.mean((2, 3))], 1)
        w = self.fc(s).view(-1, 2, self.c)
        w = torch.softmax(w, 1)
        return lo * w[:, 0, :, None, None] + hi * w[:, 1, :, None, None]


class MHSA(nn.Module):
    """Pre-norm multi-head self-attention + MLP over the H*W tokens (written with matmul/softmax for ONNX)."""

    def __init__(self, c: int, heads: int = 4):
        super().__init__()
        self.h = heads
        self.n1 = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        self.n2 = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))
        self.pos = nn.Conv2d(c, c, 3, 1, 1, groups=c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, hh, ww = x.shape
        x = x + self.pos(x)
        t = x.flatten(2).transpose(1, 2)  # [N, T, C]
        q, k, v = self.qkv(self.n1(t)).chunk(3, -1)
        d = c // self.h
        q = q.reshape(n, -1, self.h, d).transpose(1, 2)
        k = k.reshape(n, -1, self.h, d).transpose(1, 2)
        v = v.reshape(n, -1, self.h, d).transpose(1, 2)
        a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (d ** -0.5), -1)
        o = torch.matmul(a, v).transpose(1, 2).reshape(n, -1, c)
        t = t + self.proj(o)
        t = t + self.mlp(self.n2(t))
        return t.transpose(1, 2).reshape(n, c, hh, ww)


class FreqDown(nn.Module):
    """One multi-frequency encoder level: Haar DWT, low path on LL, high path on LH/HL/HH, adaptive fusion,
    mask-guided fusion."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.dwt = HaarDWT(cin)
        self.lo = nn.Sequential(conv_bn(cin, cout), conv_bn(cout, cout))
        self.hi = nn.Sequential(conv_bn(3 * cin, cout), conv_bn(cout, cout))
        self.fuse = AdaptiveFusion(cout)
        self.mask = MaskFusion(cout)

    def forward(self, x, m):
        ll, hf = self.dwt(x)
        lo, hi = self.lo(ll), self.hi(hf)
        return self.mask(self.fuse(lo, hi), m), lo, hi


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(conv_bn(cin + cskip, cout), conv_bn(cout, cout))

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], 1))


class JmmdaGenerator(nn.Module):
    def __init__(self, ch=(12, 16, 24, 40, 64), heads: int = 4):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(4, ch[0]), conv_bn(ch[0], ch[0]))
        self.stem_mask = MaskFusion(ch[0])
        self.downs = nn.ModuleList([FreqDown(ch[i], ch[i + 1]) for i in range(len(ch) - 1)])
        c = ch[-1]
        self.att_lo = MHSA(c, heads)  # dual-path attention at the 8x8 bottleneck
        self.att_hi = MHSA(c, heads)
        self.att_fuse = AdaptiveFusion(c)
        self.ups = nn.ModuleList([Up(ch[i + 1], ch[i], ch[i]) for i in reversed(range(len(ch) - 1))])
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, 3:4]
        f = self.stem_mask(self.stem(x), m)
        skips = [f]
        lo = hi = f
        for i, d in enumerate(self.downs):
            m = F.avg_pool2d(m, 2)
            f, lo, hi = d(f, m)
            if i < len(self.downs) - 1:
                skips.append(f)
        f = f + self.att_fuse(self.att_lo(lo), self.att_hi(hi))
        for u in self.ups:
            f = u(f, skips.pop())
        return F.softplus(self.head(f))


class UnetGenerator(nn.Module):
    """pix2pix-style U-Net generator (strided conv encoder, transposed conv decoder, skips)."""

    def __init__(self, ch=(12, 20, 32, 48, 80)):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(4, ch[0]), conv_bn(ch[0], ch[0]))
        self.downs = nn.ModuleList([nn.Sequential(conv_bn(ch[i], ch[i + 1], 4, 2), conv_bn(ch[i + 1], ch[i + 1])) for i in range(len(ch) - 1)])
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        for i in reversed(range(len(ch) - 1)):
            self.ups.append(nn.Sequential(nn.ConvTranspose2d(ch[i + 1], ch[i], 4, 2, 1, bias=False), nn.BatchNorm2d(ch[i]), nn.ReLU(inplace=True)))
            self.convs.append(conv_bn(2 * ch[i], ch[i]))
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, x):
        f = self.stem(x)
        skips = [f]
        for d in self.downs:
            f = d(f)
            skips.append(f)
        skips.pop()
        for up, cv in zip(self.ups, self.convs):
            f = cv(torch.cat([up(f), skips.pop()], 1))
        return F.softplus(self.head(f))


class PatchDiscriminator(nn.Module):
    def __init__(self, ch=(16, 32, 64)):
        super().__init__()
        layers = [nn.Conv2d(5, ch[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.InstanceNorm2d(b, affine=True), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(ch[-1], 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x, y):
        return self.net(torch.cat([x, y / 3.0], 1))


def build(name: str) -> nn.Module:
    return {"ct2dwi": JmmdaGenerator, "ct2dwi-pix2pix": UnetGenerator}[name]()


if __name__ == "__main__":
    import time
    torch.set_num_threads(1)
    for n in ("ct2dwi", "ct2dwi-pix2pix"):
        g = build(n)
        print(n, sum(p.numel() for p in g.parameters()) / 1e6, "M")
        x = torch.rand(8, 4, 128, 128)
        g(x).mean().backward()
        t = time.time()
        y = g(x)
        y.mean().backward()
        print(" fwd+bwd batch 8:", round(time.time() - t, 2), "s", tuple(y.shape))
    print("D", sum(p.numel() for p in PatchDiscriminator().parameters()) / 1e6, "M")
