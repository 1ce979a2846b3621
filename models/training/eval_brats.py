#!/usr/bin/python3
"""Held-out TEST evaluation of the brain-tumour models, per case in 3D on the original 240x240x155 @ 1 mm grid.

    # per case (can run in 2 processes, one per pair of cases)
    /usr/bin/python3 models/training/eval_brats.py --model brats-shaspec --cases Brats18_2013_23_1,Brats18_CBICA_ALU_1
    # then merge every per-case file into models/training/brats_metrics.json
    /usr/bin/python3 models/training/eval_brats.py --merge

Inference follows the contract exactly as the node would: model-grid slices (240 -> 128 area), brain = any sequence
non-zero, zscore-brain per sequence over the 3D brain, a missing sequence = zero channel + modality_mask 0; softmax;
the 4 probabilities resampled 128 -> 240 bilinear (pixel centres aligned, same field of view); argmax.
Regions: WT = classes 1+2+3, TC = 1+3, ET = 3. Dice; HD95 in mm = max of the two directed 95th percentiles of the
surface-to-surface distances (medpy's hd95). Conventions: empty prediction and empty truth -> Dice 1, HD95 0;
exactly one of them empty -> Dice 0, HD95 373.13 mm (the BraTS convention: the diagonal of the 240x240x155 volume).

Variants: "1mm" = the BraTS volume as is (every axial 1 mm slice is one model input). "5mm" = a clinical 5 mm
acquisition simulated from it: each 5 mm slice is the mean of 5 adjacent 1 mm slices (slices 0-4, 5-9, ..., 31 slices),
normalised over that thick volume, one model input each; its prediction is assigned to its 5 source slices and scored
against the 1 mm truth (what the node's SEG on the 5 mm series would mean for the tumour).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brats_data as bd  # noqa: E402
import brats_nets as bn  # noqa: E402

EMPTY_HD95 = 373.13
REGIONS = ["ET", "TC", "WT"]
ALL4 = (1.0, 1.0, 1.0, 1.0)


def regions3(lab: np.ndarray):
    return {"ET": lab == 3, "TC": (lab == 1) | (lab == 3), "WT": lab > 0}


def dice(p: np.ndarray, t: np.ndarray) -> float:
    s = int(p.sum()) + int(t.sum())
    return 1.0 if s == 0 else 2.0 * float(np.logical_and(p, t).sum()) / s


def hd95(p: np.ndarray, t: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> float:
    from scipy import ndimage
    pe, te = not p.any(), not t.any()
    if pe and te:
        return 0.0
    if pe or te:
        return EMPTY_HD95
    u = p | t  # crop to the union's bounding box (+2): every surface voxel of both lies inside it
    sl = tuple(slice(max(0, int(a.min()) - 2), int(a.max()) + 3) for a in np.nonzero(u))
    p, t = p[sl], t[sl]
    sp = p & ~ndimage.binary_erosion(p, border_value=0)
    st = t & ~ndimage.binary_erosion(t, border_value=0)
    dt_t = ndimage.distance_transform_edt(~st, sampling=spacing)
    dt_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return float(max(np.percentile(dt_t[sp], 95), np.percentile(dt_p[st], 95)))


def scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    rp, rt = regions3(pred), regions3(truth)
    return {r: {"dice": round(dice(rp[r], rt[r]), 4), "hd95": round(hd95(rp[r], rt[r]), 2)} for r in REGIONS}


@torch.no_grad()
def predict_multi(model, x128: np.ndarray, mask128: np.ndarray, subsets, bs: int = 16) -> list:
    """x128 [4, Z, 128, 128] normalised -> class labels [Z, 240, 240] for every subset (missing channels zeroed,
    modality_mask 0); slices without brain -> background. ShaSpec runs its encoders once per slice batch
    (ShaSpec4.forward_subsets: the same numbers as forward(x * m, m))."""
    Z = x128.shape[1]
    outs = [np.zeros((Z, 240, 240), np.uint8) for _ in subsets]
    zs = np.nonzero(mask128.reshape(Z, -1).any(1))[0]
    for s in range(0, len(zs), bs):
        z = zs[s:s + bs]
        x = torch.from_numpy(np.ascontiguousarray(x128[:, z].transpose(1, 0, 2, 3)))
        if hasattr(model, "forward_subsets"):
            logits = model.forward_subsets(x, subsets)
        else:
            logits = []
            for m in subsets:
                mk = torch.tensor(m, dtype=torch.float32)
                logits.append(model(x * mk[None, :, None, None], mk[None].repeat(len(z), 1)))
        for o, lg in zip(outs, logits):
            prob = F.interpolate(torch.softmax(lg, 1), size=(240, 240), mode="bilinear", align_corners=False)
            o[z] = prob.argmax(1).numpy().astype(np.uint8)
    return outs


def predict(model, x128: np.ndarray, mask128: np.ndarray, m, bs: int = 16) -> np.ndarray:
    return predict_multi(model, x128, mask128, [m], bs)[0]


def thick(raw: np.ndarray, k: int = 5) -> np.ndarray:
    """[4, 155, H, W] -> [4, 155 // k, H, W]: mean of k adjacent slices, every k-th (the last partial slab dropped)."""
    n = raw.shape[1] // k
    return raw[:, :n * k].reshape(raw.shape[0], n, k, *raw.shape[2:]).mean(2)


def eval_case(model, name: str, case: str) -> dict:
    raw, seg = bd.load_case_raw(case)
    truth = bd.labels_to_classes(seg)
    subsets = bd.SUBSETS if name == "brats-shaspec" else [ALL4]
    res = {"case": case, "1mm": {}, "5mm": {}}
    d = bd.load_case(case)  # the same 128 grid as training (area downsample of the raw volume)
    m128 = bd.brain_mask(d["raw"])
    x128 = bd.zscore_brain(d["raw"], m128)
    rt = thick(raw)
    r128 = bd.downsample_img(rt)
    tm = bd.brain_mask(r128)
    tx = bd.zscore_brain(r128, tm)
    n5 = rt.shape[1] * 5
    t = time.time()
    p1 = predict_multi(model, x128, m128, subsets)
    p5s = predict_multi(model, tx, tm, subsets)
    print(case, f"inference {time.time() - t:.0f}s", flush=True)
    for m, p, q in zip(subsets, p1, p5s):
        res["1mm"][bd.subset_name(m)] = scores(p, truth)
        p5 = np.zeros_like(truth)
        p5[:n5] = np.repeat(q, 5, axis=0)
        res["5mm"][bd.subset_name(m)] = scores(p5, truth)
        print(case, bd.subset_name(m), res["1mm"][bd.subset_name(m)], res["5mm"][bd.subset_name(m)], flush=True)
    return res


def mean_scores(items) -> dict:
    return {r: {k: round(float(np.mean([it[r][k] for it in items])), 4 if k == "dice" else 2) for k in ("dice", "hd95")}
            for r in REGIONS}


def merge(out_dir: Path, dst: Path) -> dict:
    sp = bd.splits()
    res = {
        "split": "test",
        "cases": sp["test"],
        "grid": "original BraTS grid 240x240x155 @ 1 mm, per case in 3D",
        "regions": {"WT": "classes 1+2+3 (BraTS labels 1, 2, 4)", "TC": "classes 1+3 (labels 1, 4)", "ET": "class 3 (label 4)"},
        "conventions": {"emptyBoth": "Dice 1, HD95 0 mm",
                        "emptyOne": f"Dice 0, HD95 {EMPTY_HD95} mm (BraTS convention)",
                        "hd95": "max of the two directed 95th percentiles of surface distances (medpy hd95), mm",
                        "missingSequence": "zero channel and modality_mask 0",
                        "5mm": "each 5 mm slice = mean of 5 adjacent 1 mm slices (31 slices), normalised over that "
                               "thick volume; its prediction is assigned to its 5 source slices and scored against the "
                               "1 mm truth"},
        "note": "4 TEST cases only: the means have very wide confidence intervals (one case moves a mean by a quarter)",
        "models": {},
    }
    for name in ("brats-shaspec", "brats-unet4"):
        files = sorted((out_dir / name).glob("*.json"))
        if not files:
            continue
        per = [json.loads(f.read_text()) for f in files]
        cases = [p["case"] for p in per]
        mres = {"casesEvaluated": cases}
        for var in ("1mm", "5mm"):
            subs = list(per[0][var].keys())
            v = {}
            for s in subs:
                v[s] = {"mean": mean_scores([p[var][s] for p in per]), "perCase": {p["case"]: p[var][s] for p in per}}
            if len(subs) > 1:
                v["meanOver15Subsets"] = mean_scores([v[s]["mean"] for s in subs])
            mres[var] = v
        res["models"][name] = mres
    dst.write_text(json.dumps(res, indent=1) + "\n")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["brats-shaspec", "brats-unet4"])
    ap.add_argument("--weights", default=None, help="default: <run>/<model>.pt")
    ap.add_argument("--run", default=str(HERE / "out" / "brats"))
    ap.add_argument("--cases", default=None, help="comma-separated TEST cases (default: all four)")
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--metrics", default=str(HERE / "brats_metrics.json"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    run = Path(a.run)
    if a.merge:
        r = merge(run / "eval", Path(a.metrics))
        for n, m in r["models"].items():
            print(n, json.dumps(m["1mm"].get("FLAIR+T1+T1c+T2", {}).get("mean")), json.dumps(m["1mm"].get("meanOver15Subsets")))
        return
    test = bd.splits()["test"]
    cases = a.cases.split(",") if a.cases else test
    assert all(c in test for c in cases), "TEST cases only"
    model = bn.build(a.model)
    model.load_state_dict(torch.load(a.weights or run / f"{a.model}.pt"))
    model.eval()
    od = run / "eval" / a.model
    od.mkdir(parents=True, exist_ok=True)
    for c in cases:
        (od / f"{c}.json").write_text(json.dumps(eval_case(model, a.model, c), indent=1))


if __name__ == "__main__":
    main()
