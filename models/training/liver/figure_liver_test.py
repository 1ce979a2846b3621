#!/usr/bin/python3
"""models/docs/liver-test.png: held-out TEST phantoms, one CT (top) and one MRI (bottom) series:
input | truth | A-QCF-Net | same-budget single-modality U-Net (unet-ct on CT, unet-mr on MRI).

Each model runs the whole series through the contract pipeline (model grid 128^2 @ 3 mm, back to the source grid,
post-processing of liver_post.py); the panel is the slice with the largest truth tumour area, shown on a 1.5 mm
display grid (bilinear image, nearest labels), centre crop. Outlines: green = liver, red = tumour. 8-bit palette PNG.

    figure_liver_test.py --ckpt-dir ../out/liver-cpu --ct-seed 3 --mr-seed 5 [--min-tumour-ml 0.065]
                         [--manifest ../../liver-aqcf.json] [--vessel-p 0]
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
sys.path.insert(0, str(HERE.parent))
from figure_brats import write_png_palette  # noqa: E402
from figure_phantoms import outline  # noqa: E402
import aqcf_net  # noqa: E402
import ct_phantoms as ctp  # noqa: E402
import liver_post  # noqa: E402
import mr_phantoms as mrp  # noqa: E402
from anatomy import bilinear  # noqa: E402
from evaluate_liver import predict_series  # noqa: E402

DISP = 1.5  # mm


def to_display(img: np.ndarray, ps: float, size: int) -> np.ndarray:
    R, C = img.shape
    k = np.arange(size) - (size - 1) / 2
    return bilinear(img[None].astype(np.float32), (R - 1) / 2 + k * DISP / ps, (C - 1) / 2 + k * DISP / ps)[0]


def lab_display(lab: np.ndarray, ps: float, size: int) -> np.ndarray:
    R, C = lab.shape
    k = np.arange(size) - (size - 1) / 2
    ys = np.clip(np.round((R - 1) / 2 + k * DISP / ps).astype(int), 0, R - 1)
    xs = np.clip(np.round((C - 1) / 2 + k * DISP / ps).astype(int), 0, C - 1)
    return lab[ys[:, None], xs[None, :]]


def panel(gray: np.ndarray, lab) -> np.ndarray:
    g = (np.clip(gray, 0, 1) * 239).astype(np.uint8)
    if lab is not None:
        g[outline(lab >= 1)] = 241
        g[outline(lab == 2)] = 242
    return g


def row(split, seed, mod, models, post_args, size, crop):
    if mod == "ct":
        st = ctp.generate_ct(split, seed)
        d = ctp.ct_model_inputs(st, 128, 3.0)
        src = ctp.ct_window(st.hu)
        sp = st.params.slice_thickness
    else:
        st = mrp.generate_mr(split, seed)
        d = mrp.mr_model_inputs(st, 128, 3.0)
        src = mrp.mr_normalise(st.img)
        sp = st.params.slice_thickness + st.params.slice_gap
    ps = st.params.pixel_spacing
    R, C = st.label.shape[1:]
    preds = [liver_post.postprocess(predict_series(m, d["x"], 1.0 if mod == "ct" else 0.0, R, C, ps, 3.0, "cpu"),
                                    [sp, ps, ps], *pa) for m, pa in zip(models, post_args)]
    t = (st.label == 2).reshape(len(st.label), -1).sum(1)
    z = int(np.argmax(t)) if t.max() else int(np.argmax((st.label >= 1).reshape(len(st.label), -1).sum(1)))
    gray = to_display(src[z], ps, size)
    if mod == "mr":
        gray = gray / max(float(np.percentile(gray[gray > 0.05], 99.5)), 1e-6) if (gray > 0.05).any() else gray
    pans = [panel(gray, None), panel(gray, lab_display(st.label[z], ps, size))]
    pans += [panel(gray, lab_display(p[z], ps, size)) for p in preds]
    c = (size - crop) // 2
    p = st.params
    note = (f"{mod.upper()} {split} {seed} slice {z}: {getattr(p, 'phase', getattr(p, 'sequence', ''))} "
            f"{p.tumour_kind} x{len(p.lesions)}, truth tumour {int(t[z])} px on this slice")
    return [q[c:c + crop, c:c + crop] for q in pans], note


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt-dir", required=True)
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--ct-seed", type=int, default=0)
    ap.add_argument("--mr-seed", type=int, default=0)
    ap.add_argument("--split", default="test")
    ap.add_argument("--min-tumour-ml", type=float, default=0.065)
    ap.add_argument("--manifest", default="", help="post-process the A-QCF-Net column as this manifest says "
                    "(minTumourMl and its shape rules per modality); the baselines get --min-tumour-ml only")
    ap.add_argument("--vessel-p", type=float, default=None, help="CT generator's VESSEL_P (0 = 0.1.0's TEST set)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--crop", type=int, default=176)
    ap.add_argument("--out", default=str(HERE.parent.parent / "docs" / "liver-test.png"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.vessel_p is not None:
        ctp.VESSEL_P = a.vessel_p
    pp = json.loads(Path(a.manifest).read_text())["postprocess"] if a.manifest else None

    def load(name):
        m = aqcf_net.build(name, a.base)
        m.load_state_dict(torch.load(Path(a.ckpt_dir) / f"{name}.pt", map_location="cpu"))
        return m.eval()
    aq = load("aqcf")
    rows, notes = [], []
    for mod, seed, base in (("ct", a.ct_seed, "unet-ct"), ("mr", a.mr_seed, "unet-mr")):
        aq_args = liver_post.manifest_params(pp, mod.upper()) if pp else (a.min_tumour_ml,)
        r, n = row(a.split, seed, mod, [aq, load(base)], [aq_args, (a.min_tumour_ml,)], a.size, a.crop)
        rows.append(r)
        notes.append(n)
    h = w = a.crop
    gap = 4
    img = np.full((2 * h + gap, 4 * w + 3 * gap), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, p in enumerate(r):
            img[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = p
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
