"""The two brain-tumour networks (contract: models/README.md "Brain tumour models").

Both take `input` [N, 4, 128, 128] (FLAIR, T1, T1c, T2; a missing sequence's channel is 0) and `modality_mask`
[N, 4] (1 = present) and return `logits` [N, 4, 128, 128] (background, necrotic/non-enhancing core, oedema,
enhancing). Building blocks (conv block, encoder, BatchNorm rationale) are those of the stroke models in nets.py.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from nets import Encoder, block  # noqa: F401  (shared with the stroke models)
from nets import Decoder as _Decoder1

N_SEQ = 4
N_CLASSES = 4


class Decoder(_Decoder1):
    """nets.Decoder with an n-class 1x1 head."""

    def __init__(self, widths: Sequence[int], bottom: int, n_out: int = N_CLASSES):
        super().__init__(widths, bottom)
        self.head = nn.Conv2d(widths[0], n_out, 1)


class UNet4(nn.Module):
    """brats-unet4: plain 2D U-Net on the four sequences; `modality_mask` is accepted and ignored (one node path)."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128, 192)):
        super().__init__()
        self.enc = Encoder(N_SEQ, widths)
        self.dec = Decoder(widths, widths[-1])

    def forward(self, x: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        # + 0 * mask: numerically nothing, but keeps `modality_mask` a graph input of the ONNX export (an unused
        # input is dropped by torch.onnx), so the node feeds every brain-tumour model the same two tensors
        x = x + 0.0 * modality_mask[:, :, None, None]
        f = self.enc(x)
        return self.dec(f[-1], f)


class ShaSpec4(nn.Module):
    """brats-shaspec: ShaSpec (Wang et al., CVPR 2023) for FLAIR/T1/T1c/T2 on a 2D U-Net.

    One shared encoder (same weights for every sequence, 1 channel in) + one specific encoder per sequence. At every
    level, sequence m's feature h_m = W_m[shared_m, specific_m] + shared_m (residual fusion); a missing sequence's
    feature is the mean of the shared features of the present ones, written with the mask as arithmetic (no control
    flow on the subset, so one ONNX graph serves all 15 subsets). The decoder sees concat(h_1..h_4) -> 1x1 conv.
    Training-only outputs: domain logits (which sequence) from the pooled deepest specific features, and the deepest
    shared features for the distribution-alignment loss."""

    def __init__(self, widths: Sequence[int] = (8, 16, 32, 64, 128), spec_widths: Sequence[int] = (4, 8, 16, 32, 64)):
        super().__init__()
        self.shared = Encoder(1, widths)
        self.spec = nn.ModuleList([Encoder(1, spec_widths) for _ in range(N_SEQ)])
        self.proj = nn.ModuleList([nn.ModuleList([nn.Conv2d(w + sw, w, 1) for w, sw in zip(widths, spec_widths)])
                                   for _ in range(N_SEQ)])
        self.merge = nn.ModuleList([nn.Sequential(nn.Conv2d(N_SEQ * w, w, 1, bias=False), nn.BatchNorm2d(w),
                                                  nn.ReLU(inplace=True)) for w in widths])
        self.domain = nn.Linear(spec_widths[-1], N_SEQ)
        self.dec = Decoder(widths, widths[-1])

    def features(self, x: torch.Tensor, mask: torch.Tensor):
        n = x.shape[0]
        xs = torch.cat([x[:, m:m + 1] for m in range(N_SEQ)], 0)  # [4N, 1, H, W], sequence-major
        sh = self.shared(xs)
        sp = [self.spec[m](x[:, m:m + 1]) for m in range(N_SEQ)]
        ms = [mask[:, m].reshape(n, 1, 1, 1) for m in range(N_SEQ)]
        denom = torch.clamp(ms[0] + ms[1] + ms[2] + ms[3], min=1.0)
        fused = []
        for lvl in range(len(sh)):
            s = [sh[lvl][m * n:(m + 1) * n] for m in range(N_SEQ)]
            mean_sh = (ms[0] * s[0] + ms[1] * s[1] + ms[2] * s[2] + ms[3] * s[3]) / denom
            hs = []
            for m in range(N_SEQ):
                h = self.proj[m][lvl](torch.cat([s[m], sp[m][lvl]], 1)) + s[m]
                hs.append(ms[m] * h + (1 - ms[m]) * mean_sh)
            fused.append(self.merge[lvl](torch.cat(hs, 1)))
        return fused, sh, sp

    def forward(self, x: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        fused, _, _ = self.features(x, modality_mask)
        return self.dec(fused[-1], fused)

    @torch.no_grad()
    def forward_subsets(self, x: torch.Tensor, masks) -> list:
        """Evaluation shortcut, same numbers as forward(x * m, m) for every subset m in `masks` (eval mode):
        a present sequence's shared and specific features depend only on its own channel, and a missing one's are
        replaced through the mask, so the encoders run once on the full input and only fusion + decoder per subset."""
        n = x.shape[0]
        sh = self.shared(torch.cat([x[:, m:m + 1] for m in range(N_SEQ)], 0))
        sp = [self.spec[m](x[:, m:m + 1]) for m in range(N_SEQ)]
        outs = []
        for mk in masks:
            ms = [torch.full((n, 1, 1, 1), float(mk[m])) for m in range(N_SEQ)]
            denom = torch.clamp(ms[0] + ms[1] + ms[2] + ms[3], min=1.0)
            fused = []
            for lvl in range(len(sh)):
                s = [sh[lvl][m * n:(m + 1) * n] for m in range(N_SEQ)]
                mean_sh = (ms[0] * s[0] + ms[1] * s[1] + ms[2] * s[2] + ms[3] * s[3]) / denom
                hs = [ms[m] * (self.proj[m][lvl](torch.cat([s[m], sp[m][lvl]], 1)) + s[m]) + (1 - ms[m]) * mean_sh
                      for m in range(N_SEQ)]
                fused.append(self.merge[lvl](torch.cat(hs, 1)))
            outs.append(self.dec(fused[-1], fused))
        return outs

    def forward_train(self, x: torch.Tensor, modality_mask: torch.Tensor):
        fused, sh, sp = self.features(x, modality_mask)
        logits = self.dec(fused[-1], fused)
        n = x.shape[0]
        dom = self.domain(torch.cat([sp[m][-1].mean((2, 3)) for m in range(N_SEQ)], 0))  # [4N, 4], sequence-major
        deep = sh[-1].reshape(N_SEQ, n, *sh[-1].shape[1:])  # [4, N, C, h, w]
        return logits, dom, deep


def build(name: str) -> nn.Module:
    if name == "brats-shaspec":
        return ShaSpec4()
    if name == "brats-unet4":
        return UNet4()
    raise ValueError(name)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
