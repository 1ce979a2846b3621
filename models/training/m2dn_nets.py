"""Networks and diffusion schedule for missing brain MRI sequence synthesis (issue 15, contract in models/README.md
"Sequence synthesis (M2DN)").

M2DN (multi-modal modality-masked diffusion network): one conditional 2D U-Net that sees x_t [N, 4, 128, 128]
(FLAIR, T1, T1c, T2; acquired channels = the clean normalised images, missing channels = the noisy sample at step t),
the modality mask [N, 4] (1 = acquired) and t [N] (float, 0..T-1), and predicts the clean images of all four
(x0-prediction, not noise). The mask enters twice: as 4 constant input planes and, with the sinusoidal embedding of t,
through an MLP whose output modulates every conv block (FiLM scale/shift after the first GroupNorm).

The regression baseline (brats-synth-unet) is the same network with the time input removed (one pass; missing
channels 0 instead of noise).

GroupNorm, not BatchNorm: the statistics of a diffusion input change with t, and eval-mode running statistics would
average over noise levels.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

N_SEQ = 4
T_TRAIN = 1000
COSINE_S = 0.008
WIDTHS = (12, 24, 48, 96, 192)
EMB = 64


# ---------------------------------------------------------------------------------------------------------------------
# schedule (cosine, Nichol & Dhariwal 2021), written so the node can compute it exactly:
#   f(u) = cos(((u / T) + s) / (1 + s) * pi / 2) ** 2,   alphas_cumprod[t] = f(t + 1) / f(0),   t = 0..T-1
# (the product form 1 - beta with beta clipped at 0.999 differs from this only in the last steps; we use this closed
# form directly, in training and sampling, so there is nothing to reproduce but this line). alphas_cumprod[T-1] = 0
# to float precision: the sample at t = T-1 is pure noise.

def alphas_cumprod(T: int = T_TRAIN, s: float = COSINE_S) -> np.ndarray:
    u = np.arange(1, T + 1, dtype=np.float64)
    f = np.cos(((u / T) + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return np.clip(f / f0, 0.0, 1.0)


def ddim_timesteps(steps: int, T: int = T_TRAIN) -> List[int]:
    """The t values of a `steps`-step DDIM sampler, high to low: round(linspace(T-1, 0, steps))."""
    return [int(v) for v in np.round(np.linspace(T - 1, 0, steps)).astype(np.int64)]


def ddim_sample(net: nn.Module, x_acq: torch.Tensor, mask: torch.Tensor, brain: torch.Tensor, steps: int,
                noise: torch.Tensor, ab: np.ndarray | None = None) -> torch.Tensor:
    """The node's sampler (models/README.md), eta = 0. x_acq [N, 4, H, W] normalised (missing channels ignored),
    mask [N, 4], brain [N, 1, H, W] (0/1), noise [N, 4, H, W] ~ N(0, 1) (only its missing channels are used).
    x_T = noise on missing channels; each step t (high to low): x0 = net(x_t with acquired channels replaced by the
    acquired images, mask, t); on missing channels eps = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t),
    x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps with ab_prev = ab of the next t in the list;
    the result is x0 of the last step (t = 0), acquired channels = the acquired images, times the brain mask."""
    ab = alphas_cumprod() if ab is None else ab
    ts = ddim_timesteps(steps)
    m = mask[:, :, None, None]
    x = noise.clone()
    x0 = None
    for i, t in enumerate(ts):
        xin = m * x_acq + (1 - m) * x
        x0 = net(xin, mask, torch.full((x.shape[0],), float(t)))
        if i + 1 < len(ts):
            a_t, a_p = float(ab[t]), float(ab[ts[i + 1]])
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(max(1 - a_t, 1e-12))
            x = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * eps
    out = m * x_acq + (1 - m) * x0
    return out * brain


# ---------------------------------------------------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int = EMB) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(a), torch.cos(a)], 1)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.n1 = nn.GroupNorm(4, cout)
        self.film = nn.Linear(emb, 2 * cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.n2 = nn.GroupNorm(4, cout)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.n1(self.c1(x))
        sc, sh = self.film(e)[:, :, None, None].chunk(2, 1)
        h = F.silu(h * (1 + sc) + sh)
        return F.silu(self.n2(self.c2(h)))


class CondUNet(nn.Module):
    """M2DN denoiser (use_t=True) or the regression baseline (use_t=False). forward(x, mask, t) -> x0 [N, 4, H, W]."""

    def __init__(self, widths: Sequence[int] = WIDTHS, use_t: bool = True):
        super().__init__()
        self.use_t = use_t
        e = 4 * EMB
        self.emb = nn.Sequential(nn.Linear((EMB if use_t else 0) + N_SEQ, e), nn.SiLU(), nn.Linear(e, e), nn.SiLU())
        self.enc = nn.ModuleList()
        c = 2 * N_SEQ
        for w in widths:
            self.enc.append(Block(c, w, e))
            c = w
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.dec.append(Block(2 * w, w, e))
            c = w
        self.head = nn.Conv2d(c, N_SEQ, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        cond = torch.cat([timestep_embedding(t), mask], 1) if self.use_t else mask
        e = self.emb(cond)
        h = torch.cat([x, mask[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1)
        skips = []
        for i, b in enumerate(self.enc):
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = b(h, e)
            skips.append(h)
        for up, b, s in zip(self.ups, self.dec, reversed(skips[:-1])):
            h = b(torch.cat([up(h), s], 1), e)
        return self.head(h)


def build(name: str) -> CondUNet:
    if name == "brats-m2dn":
        return CondUNet(use_t=True)
    if name == "brats-synth-unet":
        return CondUNet(use_t=False)
    raise ValueError(name)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# the 14 available/missing splits (>= 1 acquired, >= 1 missing), as 0/1 masks (1 = acquired)
SPLITS14 = [tuple(float((s >> i) & 1) for i in range(4)) for s in range(1, 15)]
SPLITS14.sort(key=lambda m: (sum(m), [-v for v in m]))
