#!/usr/bin/python3
"""models/docs/liver-phantoms.png: CT phantoms (top row) and MRI phantoms (bottom row), independent draws.

Each panel is the slice of largest tumour area of one phantom on the model grid (256^2 @ 1.5 mm). CT in the
abdominal window (W 400 / L 60); MRI scaled to the 1st-99.5th percentile of its body. Outlines: green = liver
truth, red = tumour truth (cysts lie inside the liver outline, no red). 8-bit palette PNG (no imaging library).

    /usr/bin/python3 models/training/liver/figure_phantoms.py [--ct-seeds ...] [--mr-seeds ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from figure_brats import write_png_palette  # noqa: E402
import ct_phantoms as ctp  # noqa: E402
import mr_phantoms as mrp  # noqa: E402


def outline(m: np.ndarray) -> np.ndarray:
    return m & ~ndimage.binary_erosion(m)


def panel(gray: np.ndarray, y: np.ndarray, crop: int) -> np.ndarray:
    g = (np.clip(gray, 0, 1) * 239).astype(np.uint8)
    g[outline(y >= 1)] = 241
    g[outline(y == 2)] = 242
    c = (g.shape[0] - crop) // 2
    return g[c:c + crop, c:c + crop]


def pick(y: np.ndarray) -> int:
    t = (y == 2).reshape(len(y), -1).sum(1)
    return int(np.argmax(t)) if t.max() > 0 else int(np.argmax((y >= 1).reshape(len(y), -1).sum(1)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ct-seeds", type=int, nargs="+", default=[6, 3, 4, 0])
    ap.add_argument("--mr-seeds", type=int, nargs="+", default=[6, 12, 9, 11])
    ap.add_argument("--split", default="val")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--out", default=str(HERE.parent.parent / "docs" / "liver-phantoms.png"))
    a = ap.parse_args()
    panels, notes = [], []
    for s in a.ct_seeds:
        st = ctp.generate_ct(a.split, s, slice_subset=12)
        d = ctp.ct_model_inputs(st)
        z = pick(d["y"])
        panels.append(panel(d["x"][z], d["y"][z], a.crop))
        p = st.params
        notes.append(f"CT {a.split} {s}: {p.phase} {p.kernel} {p.slice_thickness} mm, {p.tumour_kind} x{len(p.lesions)},"
                     f" cysts {len(p.cysts)}")
    for s in a.mr_seeds:
        st = mrp.generate_mr(a.split, s, slice_subset=12)
        d = mrp.mr_model_inputs(st)
        z = pick(d["y"])
        x = d["x"][z]
        lo, hi = np.percentile(x[x > 0.05], [1, 99.5]) if (x > 0.05).any() else (0, 1)
        panels.append(panel((x - lo * 0) / max(hi, 1e-6), d["y"][z], a.crop))
        p = st.params
        notes.append(f"MR {a.split} {s}: {p.sequence}{' FS' if p.fat_sat else ''} {p.slice_thickness} mm,"
                     f" {p.tumour_kind} x{len(p.lesions)}, cysts {len(p.cysts)}")
    ncol = max(len(a.ct_seeds), len(a.mr_seeds))
    h = w = a.crop
    gap = 4
    img = np.full((2 * h + gap, ncol * w + (ncol - 1) * gap), 255, np.uint8)
    for i, p in enumerate(panels):
        r, c = (0, i) if i < len(a.ct_seeds) else (1, i - len(a.ct_seeds))
        img[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = p
    pal = np.zeros((256, 3), np.uint8)
    pal[:240] = np.linspace(0, 255, 240)[:, None]
    pal[241] = (40, 210, 60)
    pal[242] = (240, 40, 40)
    pal[255] = (255, 255, 255)
    write_png_palette(Path(a.out), img, pal)
    print("\n".join(notes))
    print(a.out, img.shape, Path(a.out).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
