#!/usr/bin/python3
"""Held-out phantom evaluation per 3D series on its acquisition grid (issue 16). Metrics: metrics.py.

    evaluate_liver.py --ckpt out/liver/aqcf.pt [out/liver/unet-ct.pt] --model aqcf [unet-ct] --modality ct
                      --split test --n 40 [--base 16] [--size 256 --spacing 1.5] [--max-slices 40]
                      [--min-tumour-ml 0.065[,0.25,...]] [--shape 0:0,3:0.3,...] --out out/liver/ct-test.json

Several models are scored on the same generated series (one generation per series). Every model's label map is
scored raw and after the contract's post-processing (liver_post.postprocess) for each --min-tumour-ml candidate
and --shape candidate (end_c:min_fill of the shape rules, liver_post.py; summary keys "raw", "post<value>" for 0:0,
else "post<value>_e<end_c>_f<min_fill>"); choose the values on VAL, report them on TEST.

Each TEST series is generated whole (every slice), windowed/normalised as in training, put on the model grid
slice by slice, predicted, and the class probabilities are resampled back to the acquisition grid (bilinear)
before the argmax; truth lesions are the phantom's tumour instances.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import aqcf_net  # noqa: E402
import ct_phantoms as ctp  # noqa: E402
import liver_post  # noqa: E402
import metrics as mt  # noqa: E402
import mr_phantoms as mrp  # noqa: E402
from anatomy import bilinear  # noqa: E402


def softmax_probs(model, x_model: np.ndarray, modality: float, device: str, batch: int = 8) -> np.ndarray:
    """The model's softmax [S, 3, size, size] on the model grid, in batches of slices."""
    probs = []
    with torch.no_grad():
        for i in range(0, len(x_model), batch):
            x = torch.from_numpy(x_model[i:i + batch]).float()[:, None].to(device)
            m = torch.full((len(x),), modality, device=device)
            probs.append(torch.softmax(model(x, m), 1).cpu().numpy())
    return np.concatenate(probs)


def predict_series(model, x_model: np.ndarray, modality: float, rows: int, cols: int, ps: float, spacing: float,
                   device: str, batch: int = 8) -> np.ndarray:
    return labels_from_probs(softmax_probs(model, x_model, modality, device, batch), rows, cols, ps, spacing)


def probs_on_source(p: np.ndarray, rows: int, cols: int, ps: float, spacing: float) -> np.ndarray:
    """p: softmax [S, 3, size, size] on the model grid -> [S, 3, rows, cols] on the source grid (bilinear,
    edge-clamped; source pixels outside the model grid: all to background)."""
    size = p.shape[-1]
    ys = (np.arange(rows) - (rows - 1) / 2) * ps / spacing + (size - 1) / 2
    xs = (np.arange(cols) - (cols - 1) / 2) * ps / spacing + (size - 1) / 2
    back = bilinear(p.reshape(-1, size, size), ys, xs).reshape(p.shape[0], 3, rows, cols)
    back[:, 0] += (back.sum(1) < 0.5)  # outside the model grid: background
    return back


def labels_from_probs(p: np.ndarray, rows: int, cols: int, ps: float, spacing: float) -> np.ndarray:
    """p: softmax [S, 3, size, size] on the model grid -> argmax labels uint8 [S, rows, cols] on the source grid."""
    return probs_on_source(p, rows, cols, ps, spacing).argmax(1).astype(np.uint8)


def post_key(min_ml: float, end_c: float, min_fill: float) -> str:
    return f"post{min_ml:g}" if end_c == 0 and min_fill == 0 else f"post{min_ml:g}_e{end_c:g}_f{min_fill:g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", nargs="+", required=True, help="one checkpoint per --model (same order)")
    ap.add_argument("--model", nargs="+", choices=["aqcf", "unet-ct", "unet-mr"], required=True)
    ap.add_argument("--tag", nargs="*", default=[], help="a name per --model (default: the model names; needed "
                    "when two checkpoints of one architecture are compared on the same generated series)")
    ap.add_argument("--modality", choices=["ct", "mr"], required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--spacing", type=float, default=1.5)
    ap.add_argument("--max-slices", type=int, default=40)
    ap.add_argument("--min-tumour-ml", default="0.065",
                    help="comma-separated candidates of the post-processing's minTumourMl (VAL: choose; TEST: report)")
    ap.add_argument("--shape", default="0:0",
                    help="comma-separated end_c:min_fill candidates of the shape rules (liver_post.py; 0 = off)")
    ap.add_argument("--vessel-p", type=float, default=None,
                    help="CT: ct_phantoms.VESSEL_P for this run (0 = the generator 0.1.0's TEST tables were made with)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True, help="JSON; with several models, <out> gets -<model> before .json")
    a = ap.parse_args()
    assert len(a.ckpt) == len(a.model)
    torch.set_num_threads(1)
    if a.vessel_p is not None:
        ctp.VESSEL_P = a.vessel_p
    mins = [float(v) for v in a.min_tumour_ml.split(",")]
    shapes = [tuple(float(x) for x in v.split(":")) for v in a.shape.split(",")]
    posts = {post_key(v, c, f): (v, c, f) for v in mins for c, f in shapes}
    models = {}
    tags = a.tag or a.model
    assert len(tags) == len(a.model) and len(set(tags)) == len(tags)
    for tag, name, ck in zip(tags, a.model, a.ckpt):
        m = aqcf_net.build(name, a.base, a.depth)
        m.load_state_dict(torch.load(ck, map_location="cpu"))
        models[tag] = m.to(a.device).eval()
    cases = {name: {"raw": [], **{k: [] for k in posts}} for name in models}
    t0 = time.time()
    for s in range(a.seed0, a.seed0 + a.n):
        if a.modality == "ct":
            st = ctp.generate_ct(a.split, s, max_slices=a.max_slices)
            d = ctp.ct_model_inputs(st, a.size, a.spacing)
            ps, sp = st.params.pixel_spacing, st.params.slice_thickness
        else:
            st = mrp.generate_mr(a.split, s, max_slices=a.max_slices)
            d = mrp.mr_model_inputs(st, a.size, a.spacing)
            ps, sp = st.params.pixel_spacing, st.params.slice_thickness + st.params.slice_gap
        msg = []
        for name, model in models.items():
            pred = predict_series(model, d["x"], 1.0 if a.modality == "ct" else 0.0, st.label.shape[1],
                                  st.label.shape[2], ps, a.spacing, a.device)
            for key, lab in [("raw", pred)] + [(k, liver_post.postprocess(pred, [sp, ps, ps], *p)) for k, p in posts.items()]:
                r = mt.case_metrics(lab, st.label, [sp, ps, ps], st.instances)
                r["seed"] = s
                cases[name][key].append(r)
            r0, r1 = cases[name]["raw"][-1], cases[name][next(iter(posts))][-1]
            msg.append(f"{name} liver Dice {r0['liver_dice']} / {r1['liver_dice']}, tumour Dice {r0['tumour_dice']} / "
                       f"{r1['tumour_dice']}")
        print(f"{a.modality} {a.split} {s} ({time.time() - t0:.0f} s; raw / post {mins[0]:g}): " + "; ".join(msg), flush=True)
    for name in models:
        out = {"model": name, "modality": a.modality, "split": a.split, "seed0": a.seed0, "n": a.n,
               "summary": {k: mt.summarise(v) for k, v in cases[name].items()}, "cases": cases[name],
               "seconds": time.time() - t0, "args": vars(a)}
        path = Path(a.out) if len(models) == 1 else Path(a.out).with_name(Path(a.out).stem + f"-{name}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        print(name, json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
