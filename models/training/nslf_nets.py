"""brats-nslf: segmentation-driven fusion of FLAIR/T1/T1c/T2 into one image (contract: models/README.md "Fusion (NSLF)").

In the spirit of NSLF (nested self-supervised fusion driven by segmentation; in its released code the fused image is
a voxel-wise weighted average of the sequences, one sigmoid weight map per sequence, normalised):

  weight net  : a small 2D U-Net on [x * mask (4 channels), mask broadcast (4 channels)] -> 4 logits maps
  weights     : s_i = (sigmoid(logit_i) + 1e-3) * mask_i ; w_i = s_i / sum_j s_j   (missing -> exactly 0, sum 1 over the
                acquired ones; the 1e-3 floor keeps the sum > 0 for every non-empty subset)
  fused       : sum_i w_i x_i   (a convex combination of the acquired normalised sequences, voxel by voxel)
  seg net     : a 2D U-Net on the fused image ALONE (1 channel) -> 4 tumour class logits. It is nested: its loss
                flows back through the fused image into the weights, so the weights learn to keep what the tumour
                segmentation needs; its Dice measures how much of the tumour the fused image itself keeps.

No control flow on the subset: one ONNX graph serves all 15 subsets.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn

from brats_nets import Decoder, N_CLASSES, N_SEQ
from nets import Encoder

FLOOR = 1e-3


class NSLF(nn.Module):
    def __init__(self, fw: Sequence[int] = (8, 16, 32, 64), sw: Sequence[int] = (12, 24, 48, 96, 128)):
        super().__init__()
        self.fenc = Encoder(2 * N_SEQ, fw)
        self.fdec = Decoder(fw, fw[-1], n_out=N_SEQ)
        self.senc = Encoder(1, sw)
        self.sdec = Decoder(sw, sw[-1], n_out=N_CLASSES)

    def fuse(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        m = mask[:, :, None, None]
        xm = x * m
        f = self.fenc(torch.cat([xm, m * torch.ones_like(x)], 1))
        s = (torch.sigmoid(self.fdec(f[-1], f)) + FLOOR) * m
        w = s / s.sum(1, keepdim=True)
        fused = (w * xm).sum(1, keepdim=True)
        return fused, w

    def segment(self, fused: torch.Tensor) -> torch.Tensor:
        f = self.senc(fused)
        return self.sdec(f[-1], f)

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        fused, w = self.fuse(x, mask)
        return fused, w, self.segment(fused)


class SegOnly(nn.Module):
    """Adapter for eval_brats.predict_multi: (input, modality_mask) -> logits of the seg head on the fused image."""

    def __init__(self, m: NSLF):
        super().__init__()
        self.m = m

    def forward(self, x, mask):
        return self.m(x, mask)[2]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
