#!/usr/bin/python3
"""BraTS 2018 cases -> the brain-tumour model grid (models/README.md "Brain tumour models"), split, augmentation.

Representation (the contract): every axial slice of the 240x240x155 @ 1 mm volume is area-downsampled in-plane to
128x128 @ 1.875 mm (same 240 mm field of view, same centre); brain = voxels where any sequence is non-zero;
`zscore-brain` per sequence per case over the 3D brain; labels 1/2/4 -> classes 1/2/3 (nearest).

The cache (models/training/cache/brats/, git-ignored) keeps the RAW downsampled intensities (float32) and the labels,
so that the augmentation can act before normalisation as a scanner change would (gamma, bias field, thick slices,
a brain mask that does not match BraTS's). Never commit the cache: it is derived from the BraTS cases.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
BRATS = Path("/work/shared/data/brats2018")
CACHE = HERE / "cache" / "brats"
SEQS = ["flair", "t1", "t1ce", "t2"]  # channel order FLAIR, T1, T1c, T2
SEQ_NAMES = ["FLAIR", "T1", "T1c", "T2"]
GRID = 128
SPLITS_FILE = HERE / "brats_splits.json"

# all 15 non-empty subsets of the four sequences, as 0/1 masks (bit i = sequence i present), full set last
SUBSETS = [tuple(float((s >> i) & 1) for i in range(4)) for s in range(1, 16)]
SUBSETS.sort(key=lambda m: (sum(m), [-v for v in m]))


def subset_name(m) -> str:
    return "+".join(n for n, v in zip(SEQ_NAMES, m) if v > 0)


def splits() -> Dict[str, List[str]]:
    return json.loads(SPLITS_FILE.read_text())["splits"]


def load_case_raw(case: str) -> Tuple[np.ndarray, np.ndarray]:
    """Full-resolution volumes: x [4, 155, 240, 240] float32 (z, row, col), seg [155, 240, 240] uint8 (BraTS labels).
    nibabel's array is (i, j, k) = (x, y, z); we keep the axial plane as (row=j, col=i) like the stroke models'
    conversion of NIfTI to slices (the contract's row/col convention is only about the node's DICOM order)."""
    import nibabel as nib
    vols = []
    for s in SEQS:
        v = np.asanyarray(nib.load(str(BRATS / case / f"{case}_{s}.nii.gz")).dataobj).astype(np.float32)
        vols.append(np.transpose(v, (2, 1, 0)))
    seg = np.asanyarray(nib.load(str(BRATS / case / f"{case}_seg.nii.gz")).dataobj).astype(np.uint8)
    return np.stack(vols), np.transpose(seg, (2, 1, 0)).copy()


def labels_to_classes(seg: np.ndarray) -> np.ndarray:
    out = np.zeros(seg.shape, np.uint8)
    out[seg == 1] = 1
    out[seg == 2] = 2
    out[seg == 4] = 3
    return out


def downsample_img(x: np.ndarray) -> np.ndarray:
    """[..., 240, 240] -> [..., 128, 128], area average (240 mm field of view kept, centre kept)."""
    sh = x.shape
    t = torch.from_numpy(np.ascontiguousarray(x.reshape(-1, 1, sh[-2], sh[-1])))
    return F.interpolate(t, size=(GRID, GRID), mode="area").numpy().reshape(*sh[:-2], GRID, GRID)


def downsample_lab(y: np.ndarray) -> np.ndarray:
    sh = y.shape
    t = torch.from_numpy(y.reshape(-1, 1, sh[-2], sh[-1]).astype(np.float32))
    return F.interpolate(t, size=(GRID, GRID), mode="nearest").numpy().reshape(*sh[:-2], GRID, GRID).astype(np.uint8)


def load_case(case: str) -> Dict[str, np.ndarray]:
    """Cached model-grid case: raw [4, Z, 128, 128] float32, lab [Z, 128, 128] uint8 (classes 0-3)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / f"{case}.npz"
    if not f.exists():
        x, seg = load_case_raw(case)
        np.savez(f, raw=downsample_img(x).astype(np.float32), lab=downsample_lab(labels_to_classes(seg)))
    d = np.load(f)
    return {"raw": d["raw"], "lab": d["lab"]}


def zscore_brain(raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The contract's normalisation: per sequence, mean/std over the 3D brain mask, clip +-5 inside, 0 outside."""
    out = np.zeros_like(raw, dtype=np.float32)
    for c in range(raw.shape[0]):
        v = raw[c][mask]
        if v.size == 0:
            continue
        mu, sd = float(v.mean()), float(v.std())
        out[c] = np.where(mask, np.clip((raw[c] - mu) / max(sd, 1e-6), -5, 5), 0)
    return out


def brain_mask(raw: np.ndarray) -> np.ndarray:
    return (raw != 0).any(0)


def normalised_case(case: str) -> Dict[str, np.ndarray]:
    d = load_case(case)
    m = brain_mask(d["raw"])
    return {"x": zscore_brain(d["raw"], m), "lab": d["lab"], "mask": m}


# ---------------------------------------------------------------------------------------------------------------------
# training sampler with augmentation for unseen scanners


def _disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= r * r + 0.5


class TrainCase:
    """One training case: raw model-grid volume, labels, and, for every brain-mask perturbation r in -3..3 (2D
    erosion r<0 / dilation r>0 of every slice, in 1.875 mm pixels), a fixed random subsample of the 3D mask's raw
    values per sequence, from which the 3D zscore statistics after a random gamma are computed cheaply."""

    def __init__(self, case: str, rng: np.random.Generator, n_sub: int = 20000):
        from scipy import ndimage
        d = load_case(case)
        self.case = case
        self.raw, self.lab = d["raw"], d["lab"]
        self.mask = brain_mask(self.raw)
        self.vmax = np.array([float(np.percentile(self.raw[c][self.mask], 99.5)) for c in range(4)], np.float32)
        self.sub: Dict[int, np.ndarray] = {}
        for r in range(-3, 4):
            if r == 0:
                m = self.mask
            else:
                st = _disk(abs(r))[None]
                m = (ndimage.binary_dilation if r > 0 else ndimage.binary_erosion)(self.mask, st)
            idx = np.flatnonzero(m)
            idx = rng.choice(idx, min(n_sub, idx.size), replace=False)
            self.sub[r] = self.raw.reshape(4, -1)[:, idx]  # [4, n]
        area = self.mask.reshape(self.mask.shape[0], -1).sum(1)
        self.brain_z = np.nonzero(area > 0.02 * GRID * GRID)[0]
        self.tumour_z = np.nonzero(self.lab.reshape(self.lab.shape[0], -1).any(1))[0]
        self.tumour_z = np.intersect1d(self.tumour_z, self.brain_z)
        self.et_z = np.intersect1d(np.nonzero((self.lab == 3).reshape(self.lab.shape[0], -1).any(1))[0], self.brain_z)


def bias_field(rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative field on the 128 grid: exp of a random low-order 2D polynomial/cosine mix, mean ~1."""
    yy, xx = np.mgrid[-1:1:GRID * 1j, -1:1:GRID * 1j].astype(np.float32)
    f = np.zeros((GRID, GRID), np.float32)
    for (a, b) in [(1, 0), (0, 1), (1, 1), (2, 0), (0, 2)]:
        f += rng.normal() * np.cos(a * math.pi * (xx + rng.uniform(-1, 1)) / 2) * np.cos(b * math.pi * (yy + rng.uniform(-1, 1)) / 2)
    f = f / (np.abs(f).max() + 1e-6) * strength
    return np.exp(f - f.mean()).astype(np.float32)


def sample_slice(tc: TrainCase, z: int, rng: np.random.Generator, aug: bool) -> Tuple[np.ndarray, np.ndarray]:
    """One augmented training slice: x [4, 128, 128] (normalised, 0 outside the perturbed mask), y [128, 128]."""
    from scipy import ndimage
    Z = tc.raw.shape[1]
    if aug and rng.random() < 0.5:  # clinical thick slice: mean of k adjacent 1 mm slices around z
        k = int(rng.integers(3, 6))
        z0 = int(np.clip(z - k // 2, 0, Z - k))
        raw = tc.raw[:, z0:z0 + k].mean(1)
        m = (tc.raw[:, z0:z0 + k] != 0).any(0).any(0)
    else:
        raw = tc.raw[:, z].copy()
        m = tc.mask[z]
    y = tc.lab[z]
    r = int(rng.integers(-3, 4)) if aug and rng.random() < 0.7 else 0
    if r > 0:
        m = ndimage.binary_dilation(m, _disk(r))
    elif r < 0:
        m = ndimage.binary_erosion(m, _disk(-r))
    x = np.zeros((4, GRID, GRID), np.float32)
    for c in range(4):
        v = raw[c]
        s = tc.sub[r][c]
        if aug:
            g = float(np.exp(rng.uniform(-0.4, 0.4)))  # gamma 0.67-1.5 on intensities scaled by the 99.5th pct
            vm = tc.vmax[c]
            v = np.power(np.clip(v, 0, None) / vm, g) * vm
            s = np.power(np.clip(s, 0, None) / vm, g) * vm
            if rng.random() < 0.7:
                v = v * bias_field(rng, float(rng.uniform(0.1, 0.5)))
        mu, sd = float(s.mean()), float(s.std())
        if aug:  # the node's 3D statistics come from another mask, other slices, another field of view
            mu += rng.normal(0, 0.05) * sd
            sd *= float(np.exp(rng.normal(0, 0.05)))
        xc = np.clip((v - mu) / max(sd, 1e-6), -5, 5)
        if aug and rng.random() < 0.5:
            xc = xc + rng.normal(0, rng.uniform(0, 0.15), xc.shape).astype(np.float32)
        x[c] = np.where(m, xc, 0)
    return x, y


def geometric(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random rotation (+-15 deg), isotropic scale 0.85-1.15, left-right flip, shift +-8 px; x bilinear, y nearest."""
    n = x.shape[0]
    th = np.zeros((n, 2, 3), np.float32)
    for k in range(n):
        a = math.radians(rng.uniform(-15, 15))
        s = float(np.exp(rng.uniform(math.log(0.85), math.log(1.15))))
        fl = -1.0 if rng.random() < 0.5 else 1.0
        c, si = math.cos(a) / s, math.sin(a) / s
        th[k] = [[c * fl, -si, rng.uniform(-1, 1) * 8 / 64], [si * fl, c, rng.uniform(-1, 1) * 8 / 64]]
    grid = F.affine_grid(torch.from_numpy(th), list(x.shape), align_corners=False)
    xo = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    yo = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0].long()
    return xo, yo


def random_subsets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Modality masks drawn uniformly over the 15 non-empty subsets."""
    return np.array([SUBSETS[i] for i in rng.integers(0, 15, n)], np.float32)


T1C = SEQ_NAMES.index("T1c")


def biased_subsets(rng: np.random.Generator, n: int, p_all: float, p_t1c: float) -> np.ndarray:
    """Fine-tuning modality masks: all four with probability p_all, one of the 7 other subsets with T1c (uniform) with
    p_t1c, else uniform over the 15 (so every subset keeps being drawn). With p_all 0.25, p_t1c 0.25: T1c present in
    77 % of slices, all four in 28 %, each T1c-less subset in 3.3 %."""
    with_t1c = [i for i, m in enumerate(SUBSETS) if m[T1C] > 0 and sum(m) < 4]
    full = SUBSETS.index((1.0, 1.0, 1.0, 1.0))
    out = []
    for _ in range(n):
        u = rng.random()
        i = full if u < p_all else (with_t1c[int(rng.integers(len(with_t1c)))] if u < p_all + p_t1c else int(rng.integers(15)))
        out.append(SUBSETS[i])
    return np.array(out, np.float32)


class Sampler:
    def __init__(self, cases: List[str], seed: int):
        self.rng = np.random.default_rng(seed)
        self.cases = [TrainCase(c, self.rng) for c in cases]

    def batch(self, bs: int, aug: bool = True, tumour_frac: float = 0.6,
              et_frac: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
        """et_frac > 0 (fine-tuning): that fraction of slices is drawn from the slices with enhancing tumour, the
        rest as before (tumour_frac of them from tumour slices). et_frac 0 leaves the random stream unchanged."""
        xs, ys = [], []
        for _ in range(bs):
            tc = self.cases[int(self.rng.integers(len(self.cases)))]
            if et_frac > 0 and len(tc.et_z) and self.rng.random() < et_frac:
                zs = tc.et_z
            else:
                zs = tc.tumour_z if (len(tc.tumour_z) and self.rng.random() < tumour_frac) else tc.brain_z
            z = int(zs[self.rng.integers(len(zs))])
            x, y = sample_slice(tc, z, self.rng, aug)
            xs.append(x)
            ys.append(y)
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys).astype(np.int64))
        if aug:
            x, y = geometric(x, y, self.rng)
        return x.contiguous(), y.contiguous()


if __name__ == "__main__":  # build the cache (about 10 s a case)
    import sys
    import time
    sp = splits()
    for c in (sys.argv[1:] or sp["train"] + sp["val"] + sp["test"]):
        t = time.time()
        d = load_case(c)
        print(c, d["raw"].shape, np.bincount(d["lab"].ravel(), minlength=4), f"{time.time() - t:.1f}s", flush=True)
