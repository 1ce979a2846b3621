"""The three lesion networks. Every model takes the contract's 6-channel `input` [N, 6, 128, 128]
(DWI z-1, z, z+1, ADC z-1, z, z+1) and returns `logits` [N, 1, 128, 128]; ShaSpec also takes `modality_mask` [N, 2].

BatchNorm (not InstanceNorm): with eval-mode running statistics it folds into the convolutions in ONNX and makes a
slice's output independent of the rest of its batch, so the node may batch slices freely.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """Conv blocks with 2x2 max-pool between levels; returns the feature map of every level (finest first)."""

    def __init__(self, cin: int, widths: Sequence[int]):
        super().__init__()
        self.blocks = nn.ModuleList()
        c = cin
        for w in widths:
            self.blocks.append(block(c, w))
            c = w

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = []
        for i, b in enumerate(self.blocks):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = b(x)
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """U-Net decoder: from the deepest map, upsample x2 (transposed conv), concat the skip, conv block; 1x1 head."""

    def __init__(self, widths: Sequence[int], bottom: int):
        super().__init__()
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        c = bottom
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.blocks.append(block(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, bottom: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        x = bottom
        for up, b, s in zip(self.ups, self.blocks, reversed(skips[:-1])):
            x = b(torch.cat([up(x), s], 1))
        return self.head(x)


class UNet2DBaseline(nn.Module):
    """(a) Plain 2D U-Net on [DWI(z), ADC(z)]: it receives the contract's 6 channels and uses only 1 and 4."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128, 256)):
        super().__init__()
        self.enc = Encoder(2, widths)
        self.dec = Decoder(widths, widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, 1:5:3]  # channels 1 (DWI z) and 4 (ADC z)
        f = self.enc(x)
        return self.dec(f[-1], f)


class TransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer written out (plain matmul/softmax), so the ONNX export never meets
    torch's fused fast-path kernels."""

    def __init__(self, c: int, heads: int):
        super().__init__()
        self.h = heads
        self.n1 = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.o = nn.Linear(c, c)
        self.n2 = nn.LayerNorm(c)
        self.ff = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        n, l, c = t.shape
        q, k, v = self.qkv(self.n1(t)).reshape(n, l, 3, self.h, c // self.h).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / float(c // self.h) ** 0.5, -1)
        t = t + self.o((a @ v).transpose(1, 2).reshape(n, l, c))
        return t + self.ff(self.n2(t))


class TransformerBottleneck(nn.Module):
    """A couple of pre-norm transformer layers over the deepest feature map (8x8 = 64 tokens for 128x128 input).
    Position: a depthwise 3x3 conv added before the layers (conditional positional encoding), so no fixed-size
    table is baked into the graph."""

    def __init__(self, c: int, layers: int = 2, heads: int = 4):
        super().__init__()
        self.pos = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.layers = nn.ModuleList([TransformerLayer(c, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x + self.pos(x)
        t = x.flatten(2).transpose(1, 2)
        for layer in self.layers:
            t = layer(t)
        return t.transpose(1, 2).reshape(n, c, h, w)


class DualEncoder(nn.Module):
    """(b) One encoder per modality (DWI 3 slices, ADC 3 slices), skips fused per level by concat + 1x1 conv,
    transformer bottleneck on the fused deepest map (TransUNet-style), one U-Net decoder."""

    def __init__(self, widths: Sequence[int] = (12, 24, 48, 96, 192), layers: int = 2, heads: int = 4):
        super().__init__()
        self.enc_dwi = Encoder(3, widths)
        self.enc_adc = Encoder(3, widths)
        self.fuse = nn.ModuleList([nn.Sequential(nn.Conv2d(2 * w, w, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
                                   for w in widths])
        self.bottleneck = TransformerBottleneck(widths[-1], layers, heads)
        self.dec = Decoder(widths, widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fd = self.enc_dwi(x[:, 0:3])
        fa = self.enc_adc(x[:, 3:6])
        f = [fu(torch.cat([d, a], 1)) for fu, d, a in zip(self.fuse, fd, fa)]
        return self.dec(self.bottleneck(f[-1]), f)


class ShaSpec(nn.Module):
    """(c) ShaSpec (Wang et al., CVPR 2023) for 2 modalities on a U-Net.
    Shared encoder (same weights for DWI and ADC, each 3 slices) + one specific encoder per modality. At every level,
    modality m's feature h_m = W_m[shared_m, specific_m] + shared_m (residual fusion); a missing modality's feature is
    the mean of the shared features of the available ones. The decoder sees concat(h_DWI, h_ADC) (1x1 to width).
    Auxiliary outputs (training only): domain logits from the pooled deepest specific features, and the deepest
    shared features for the distribution-alignment loss."""

    def __init__(self, widths: Sequence[int] = (12, 24, 48, 96, 192), spec_widths: Sequence[int] = (8, 16, 32, 64, 128)):
        super().__init__()
        self.shared = Encoder(3, widths)
        self.spec = nn.ModuleList([Encoder(3, spec_widths), Encoder(3, spec_widths)])
        self.proj = nn.ModuleList([nn.ModuleList([nn.Conv2d(w + sw, w, 1) for w, sw in zip(widths, spec_widths)])
                                   for _ in range(2)])
        self.merge = nn.ModuleList([nn.Sequential(nn.Conv2d(2 * w, w, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
                                    for w in widths])
        self.domain = nn.Linear(spec_widths[-1], 2)
        self.dec = Decoder(widths, widths[-1])

    def features(self, x: torch.Tensor, mask: torch.Tensor):
        n = x.shape[0]
        xs = torch.cat([x[:, 0:3], x[:, 3:6]], 0)
        sh = self.shared(xs)  # each level [2N, C, h, w]: first N DWI, then ADC
        sp = [self.spec[0](x[:, 0:3]), self.spec[1](x[:, 3:6])]
        fused = []
        md = mask[:, 0].reshape(n, 1, 1, 1)
        ma = mask[:, 1].reshape(n, 1, 1, 1)
        denom = torch.clamp(md + ma, min=1.0)
        for lvl in range(len(sh)):
            s_d, s_a = sh[lvl][:n], sh[lvl][n:]
            h_d = self.proj[0][lvl](torch.cat([s_d, sp[0][lvl]], 1)) + s_d
            h_a = self.proj[1][lvl](torch.cat([s_a, sp[1][lvl]], 1)) + s_a
            mean_sh = (md * s_d + ma * s_a) / denom
            h_d = md * h_d + (1 - md) * mean_sh
            h_a = ma * h_a + (1 - ma) * mean_sh
            fused.append(self.merge[lvl](torch.cat([h_d, h_a], 1)))
        return fused, sh, sp

    def forward(self, x: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        fused, _, _ = self.features(x, modality_mask)
        return self.dec(fused[-1], fused)

    def forward_train(self, x: torch.Tensor, modality_mask: torch.Tensor):
        fused, sh, sp = self.features(x, modality_mask)
        logits = self.dec(fused[-1], fused)
        n = x.shape[0]
        dom = self.domain(torch.cat([sp[0][-1].mean((2, 3)), sp[1][-1].mean((2, 3))], 0))  # [2N, 2]
        return logits, dom, sh[-1][:n], sh[-1][n:]


def build(name: str, scale: float = 1.0) -> nn.Module:
    def w(ws):
        return tuple(max(4, int(round(c * scale / 4)) * 4) for c in ws)
    if name == "unet2d-baseline":
        return UNet2DBaseline(w((16, 32, 64, 128, 256)))
    if name == "dual-encoder":
        return DualEncoder(w((12, 24, 48, 96, 192)))
    if name == "shaspec-missing":
        return ShaSpec(w((12, 24, 48, 96, 192)), w((8, 16, 32, 64, 128)))
    raise ValueError(name)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
