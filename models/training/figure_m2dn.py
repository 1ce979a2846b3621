#!/usr/bin/python3
"""models/docs/brats-m2dn-test.png: one TEST case slice (largest whole-tumour area) with T1c and FLAIR missing.

Layout (model grid, 128 x 128 @ 1.875 mm, 2x enlarged, cropped to the brain), columns:
acquired T1 | acquired T2 | true FLAIR / T1c | M2DN | regression U-Net | mean of the acquired;
top row FLAIR, bottom row T1c (the acquired columns show T1 and T2 on both rows). Each sequence is windowed to the
1st-99th percentile of its TRUE normalised image inside the brain of that slice, the same window for every method.
M2DN: the node's sampler (m2dn_nets.ddim_sample, default steps, seeded noise).

    /usr/bin/python3 models/training/figure_m2dn.py [--case Brats18_TCIA02_370_1]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brats_data as bd  # noqa: E402
from eval_synthesis import load_synth, synthesise  # noqa: E402
from figure_brats import write_png_palette  # noqa: E402

RUN = HERE / "out" / "m2dn"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="Brats18_TCIA02_370_1")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "brats-m2dn-test.png"))
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--run", default=str(RUN))
    a = ap.parse_args()
    import eval_synthesis
    eval_synthesis.RUN = Path(a.run)
    assert a.case in bd.splits()["test"]
    torch.set_num_threads(1)
    steps = a.steps or json.loads((Path(a.run) / "steps.json").read_text())["default"]
    d = bd.normalised_case(a.case)
    z = int(np.argmax((d["lab"] > 0).reshape(d["lab"].shape[0], -1).sum(1)))
    x = torch.from_numpy(np.ascontiguousarray(d["x"][:, z:z + 1].transpose(1, 0, 2, 3)))
    brain = torch.from_numpy(d["mask"][z:z + 1, None].astype(np.float32))
    m = (0.0, 1.0, 0.0, 1.0)  # FLAIR and T1c missing
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(15))
    ys = {k: synthesise(k, load_synth(n) if n else None, x, m, brain, steps, noise)[0].numpy()
          for k, n in (("m2dn", "brats-m2dn"), ("unet", "brats-synth-unet"), ("mean", None))}
    xt = x[0].numpy()
    b = d["mask"][z]
    rr, cc = np.nonzero(b)
    r0, r1, c0, c1 = max(0, rr.min() - 3), min(128, rr.max() + 4), max(0, cc.min() - 3), min(128, cc.max() + 4)

    def win(v, c):
        lo, hi = np.percentile(xt[c][b], [1, 99])
        g = (np.clip((v - lo) / max(hi - lo, 1e-6), 0, 1) * 254).astype(np.uint8)
        g = np.where(b, g, 0)[r0:r1, c0:c1]
        return np.kron(g, np.ones((2, 2), np.uint8))

    rows = []
    for c in (0, 2):  # FLAIR, T1c
        rows.append([win(xt[1], 1), win(xt[3], 3), win(xt[c], c)] + [win(ys[k][c], c) for k in ("m2dn", "unet", "mean")])
    h, w = rows[0][0].shape
    gap = 4
    img = np.full((2 * h + gap, 6 * w + 5 * gap), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, p in enumerate(row):
            img[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = p
    pal = np.zeros((256, 3), np.uint8)
    pal[:255] = np.linspace(0, 255, 255)[:, None]
    pal[255] = (255, 255, 255)
    write_png_palette(Path(a.out), img, pal)
    print(a.out, a.case, "slice", z, img.shape, Path(a.out).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
