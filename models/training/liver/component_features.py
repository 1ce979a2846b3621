#!/usr/bin/python3
"""Per tumour component features of a liver checkpoint (why a component-level rule was NOT adopted; README).

For every post-processed tumour component (minTumourMl 0.25) of the checkpoint's output: volume (mL), peak and mean
tumour probability (softmax bilinear back on the source grid, as the node), mean HU (CT; MRI: stored value) of the
component and of a 6 mm in-plane ring of liver around it, their difference, slices spanned, on its largest-area slice
the diameter and the fill of that diameter's circle (the tubular rule's measure, liver_post.shape_rule), and on
phantoms whether it overlaps a truth tumour (tp) and the phantom's CT phase.

    component_features.py --ckpt ../out/liver-cpu-ft/aqcf.pt --what real             # the two real CTs
    component_features.py --ckpt ../out/liver-cpu-ft/aqcf.pt --what ct --split val --n 40
No patient attribute is read or printed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import aqcf_net  # noqa: E402
import ct_phantoms as ctp  # noqa: E402
import liver_post  # noqa: E402
import mr_phantoms as mrp  # noqa: E402
from check_real import load_3slice, load_totalseg  # noqa: E402
from evaluate_liver import probs_on_source, softmax_probs  # noqa: E402

SIZE, SP = 128, 3.0


def probs_back(model, x, mod, rows, cols, ps):
    return probs_on_source(softmax_probs(model, x, mod, "cpu"), rows, cols, ps, SP)


def features(img, back, sp, ps, truth_inst=None):
    post = liver_post.postprocess(back.argmax(1).astype(np.uint8), [sp, ps, ps], 0.25)
    lab, k = ndimage.label(post == 2, np.ones((3, 3, 3), bool))
    liver = post == 1
    r = max(1, int(round(6 / ps)))
    st = ndimage.generate_binary_structure(2, 1)
    out = []
    for j in range(1, k + 1):
        c = lab == j
        ring = np.zeros_like(c)
        for z in np.flatnonzero(c.any((1, 2))):
            ring[z] = ndimage.binary_dilation(c[z], st, iterations=r) & liver[z] & ~c[z]
        pt = back[:, 2][c]
        zs = np.flatnonzero(c.any((1, 2)))
        za = zs[int(np.argmax([c[z].sum() for z in zs]))]
        d = liver_post.longest_axial_diameter_mm(c[za:za + 1], ps, ps)
        fill = float(c[za].sum() * ps * ps / (np.pi * d * d / 4))
        out.append({"ml": float(c.sum() * ps * ps * sp / 1000), "pmax": float(pt.max()), "pmean": float(pt.mean()),
                    "value": float(img[c].mean()), "ring": float(img[ring].mean()) if ring.any() else None,
                    "contrast": float(img[c].mean() - img[ring].mean()) if ring.any() else None,
                    "slices": int(c.any((1, 2)).sum()), "diamMaxSlice": d, "fill": fill,
                    "tp": None if truth_inst is None else bool((truth_inst[c] > 0).any())})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--what", choices=["real", "ct", "mr"], required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = aqcf_net.build("aqcf", a.base, 4)
    model.load_state_dict(torch.load(a.ckpt, map_location="cpu"))
    model.eval()
    res = {}
    if a.what == "real":
        for name, load in (("dcmqi_3slice", load_3slice), ("totalseg", load_totalseg)):
            hu, _, ps, sp = load()
            x = ctp.to_model_grid(ctp.ct_window(hu), ps, SIZE, SP)
            res[name] = features(hu, probs_back(model, x, 1.0, hu.shape[1], hu.shape[2], ps), sp, ps)
    else:
        rows = []
        for s in range(a.n):
            if a.what == "ct":
                st = ctp.generate_ct(a.split, s, max_slices=40)
                d, img = ctp.ct_model_inputs(st, SIZE, SP), st.hu
                ps, sp, mod, phase = st.params.pixel_spacing, st.params.slice_thickness, 1.0, st.params.phase
            else:
                st = mrp.generate_mr(a.split, s, max_slices=40)
                d, img = mrp.mr_model_inputs(st, SIZE, SP), st.img
                ps, sp, mod, phase = st.params.pixel_spacing, st.params.slice_thickness + st.params.slice_gap, 0.0, None
            f = features(img.astype(np.float32), probs_back(model, d["x"], mod, st.label.shape[1], st.label.shape[2], ps),
                         sp, ps, st.instances)
            for q in f:
                q.update(seed=s, phase=phase)
            rows += f
            print(s, phase, len(f), "components,", sum(1 for q in f if not q["tp"]), "false", flush=True)
        res[f"{a.what}_{a.split}"] = rows
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
