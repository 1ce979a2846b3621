#!/usr/bin/python3
"""models/docs/brats-nslf-test.png: one TEST slice (the slice of largest whole-tumour area), model grid 128 x 128.

Row 1: FLAIR, T1, T1c, T2 (the normalised inputs, each windowed to its brain 1st-99th percentile).
Row 2: brats-nslf's weight maps for FLAIR, T1, T1c, T2 with all four present (black 0, white 1; they sum to 1).
Row 3: fused image with all four; fused image with FLAIR and T1c missing (T1 + T2 only); the plain-mean baseline
       with all four; the seg head's labels on the fused image (all four) over it (red = necrotic / non-enhancing
       core, green = oedema, yellow = enhancing). Each image panel 2x nearest upsampled.

    /usr/bin/python3 models/training/figure_nslf.py [--case Brats18_TCIA02_370_1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brats_data as bd  # noqa: E402
import nslf_nets as nn_  # noqa: E402
from figure_brats import COLOURS, write_png_palette  # noqa: E402


def gray(v: np.ndarray, brain: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(v[brain], [1, 99])
    return np.where(brain, np.clip((v - lo) / max(hi - lo, 1e-6), 0, 1), 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="Brats18_TCIA02_370_1")
    ap.add_argument("--run", default=str(HERE / "out" / "nslf"))
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "brats-nslf-test.png"))
    a = ap.parse_args()
    assert a.case in bd.splits()["test"]
    torch.set_num_threads(1)
    d = bd.normalised_case(a.case)
    z = int(np.argmax((d["lab"] > 0).reshape(d["lab"].shape[0], -1).sum(1)))
    x = torch.from_numpy(np.ascontiguousarray(d["x"][:, z][None]))
    brain = d["mask"][z]
    model = nn_.NSLF()
    model.load_state_dict(torch.load(Path(a.run) / "brats-nslf.pt"))
    model.eval()
    with torch.no_grad():
        m4 = torch.ones(1, 4)
        f4, w4, lg4 = model(x, m4)
        m2 = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
        f2, w2, _ = model(x * m2[:, :, None, None], m2)
    base = x[0].mean(0).numpy()
    lab = lg4.argmax(1)[0].numpy()
    panels = [gray(x[0, c].numpy(), brain) for c in range(4)]
    panels += [np.where(brain, w4[0, c].numpy(), 0) for c in range(4)]
    fg = gray(f4[0, 0].numpy(), brain)
    panels += [fg, gray(f2[0, 0].numpy(), brain), gray(base, brain)]
    idx = [(p * 239).astype(np.uint8) for p in panels]
    ov = idx[8].copy()
    for k in (1, 2, 3):
        ov[(lab == k) & brain] = 240 + k
    idx.append(ov)
    rr, cc = np.nonzero(brain)
    r0, r1 = max(0, rr.min() - 2), min(128, rr.max() + 3)
    c0, c1 = max(0, cc.min() - 2), min(128, cc.max() + 3)
    idx = [np.repeat(np.repeat(p[r0:r1, c0:c1], 2, 0), 2, 1) for p in idx]
    h, w = idx[0].shape
    gap = 4
    img = np.full((3 * h + 2 * gap, 4 * w + 3 * gap), 255, np.uint8)
    for i, p in enumerate(idx):
        r, c = divmod(i, 4)
        img[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = p
    pal = np.zeros((256, 3), np.uint8)
    pal[:240] = np.linspace(0, 255, 240)[:, None]
    for k, col in COLOURS.items():
        pal[240 + k] = col
    pal[255] = (255, 255, 255)
    write_png_palette(Path(a.out), img, pal)
    wm = {bd.SEQ_NAMES[c]: round(float(w4[0, c].numpy()[brain].mean()), 3) for c in range(4)}
    print(a.out, a.case, "slice", z, img.shape, Path(a.out).stat().st_size, "bytes", "mean weights (all four)", wm)


if __name__ == "__main__":
    main()
