#!/usr/bin/python3
"""Held-out evaluation of missing-sequence synthesis (issue 15) on the 4 BraTS TEST cases, and its downstream use.

    # 1. pick the default number of DDIM steps on VAL (PSNR vs time) -> out/m2dn/steps.json
    /usr/bin/python3 models/training/eval_synthesis.py --select-steps
    # 2. per TEST case (2 processes, 2 cases each), then merge -> models/training/m2dn_metrics.json
    /usr/bin/python3 models/training/eval_synthesis.py --cases Brats18_2013_23_1,Brats18_CBICA_ALU_1
    /usr/bin/python3 models/training/eval_synthesis.py --merge

Grid: the model grid of the contract (every axial 1 mm slice of the BraTS volume, 240 -> 128 area, 1.875 mm),
`zscore-brain` per sequence over the 3D brain (brain = any sequence non-zero), as the node feeds the models. Slices:
every --z-stride-th slice with brain (offset z-stride // 2; default 8, about 17 slices a case, chosen for CPU time:
14 splits x DDIM steps per slice, and the segmentation model under ~4 masks per split) - the same slices for every
method and route.

For each of the 14 available/missing splits, each method synthesises the missing sequences:
- M2DN: the node's DDIM sampler (m2dn_nets.ddim_sample, eta 0, default steps from VAL), noise seeded per case/split;
- regression U-Net (brats-synth-unet): one pass, missing channels 0;
- mean: the voxel-wise mean of the acquired normalised sequences (inside the brain).
PSNR (dB) per case and synthesised sequence over the brain voxels of the evaluated slices (3D), data range L = 99.5th
minus 1st percentile of the TRUE normalised sequence inside the 3D brain of that case (all slices). SSIM: 2D per slice
(Gaussian window sigma 1.5, 11 x 11, K1 0.01, K2 0.03, the same L), the SSIM map averaged inside the brain of the
slice, then over the evaluated slices. Reported: mean over the 4 cases.

Downstream (the brain-tumour segmentation brats-shaspec, torch checkpoint out/brats/brats-shaspec.pt; there is no
Python onnxruntime here): per split, tumour Dice (WT/TC/ET) on the original 240x240 in-plane grid of the evaluated
slices (softmax resampled 128 -> 240 bilinear, argmax, as eval_brats.py) for
- "acquired-only": acquired sequences, missing channels 0, modality_mask = the split;
- "with-synthesis": acquired + M2DN-synthesised sequences, modality_mask all ones;
- "with-unet-synthesis": the same with the regression U-Net's images (for reference);
and the hallucination check: for every missing sequence, the segmentation of the synthesised image ALONE
(modality_mask = only that sequence), next to the same model on the TRUE image of that sequence alone.
"""
from __future__ import annotations

import argparse
import json
import math
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
import m2dn_nets as mn  # noqa: E402
from eval_brats import dice, regions3  # noqa: E402

RUN = HERE / "out" / "m2dn"
SEQ = bd.SEQ_NAMES
METHODS = ["m2dn", "unet", "mean"]
ONES = (1.0, 1.0, 1.0, 1.0)


def split_name(m) -> str:
    return "missing " + "+".join(n for n, v in zip(SEQ, m) if v == 0)


def psnr(y: np.ndarray, x: np.ndarray, brain: np.ndarray, L: float) -> float:
    mse = float(((y - x)[brain] ** 2).mean())
    return 10 * math.log10(L * L / max(mse, 1e-12))


def ssim2d(a: np.ndarray, b: np.ndarray, brain: np.ndarray, L: float) -> float:
    from scipy.ndimage import gaussian_filter
    g = lambda v: gaussian_filter(v.astype(np.float64), 1.5, truncate=3.5)  # noqa: E731  (11 x 11 window)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    ma, mb = g(a), g(b)
    va, vb, cab = g(a * a) - ma * ma, g(b * b) - mb * mb, g(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cab + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s[brain].mean())


def data_range(x3: np.ndarray, brain3: np.ndarray) -> float:
    v = x3[brain3]
    return float(np.percentile(v, 99.5) - np.percentile(v, 1))


def load_synth(name: str, run: Path | None = None):
    net = mn.build(name)
    net.load_state_dict(torch.load((run or RUN) / f"{name}.pt"))
    net.eval()
    return net


@torch.no_grad()
def synthesise(method: str, net, x: torch.Tensor, m, brain: torch.Tensor, steps: int, noise: torch.Tensor,
               bs: int = 16) -> torch.Tensor:
    """x [n, 4, 128, 128] normalised, m a split (tuple), brain [n, 1, 128, 128] -> [n, 4, 128, 128]: acquired channels
    as given, missing channels synthesised, 0 outside the brain."""
    mk = torch.tensor([m] * x.shape[0], dtype=torch.float32)
    m4 = mk[:, :, None, None]
    if method == "mean":
        mean = (x * m4).sum(1, keepdim=True) / m4.sum(1, keepdim=True)
        return (m4 * x + (1 - m4) * mean) * brain
    outs = []
    for s in range(0, x.shape[0], bs):
        sl = slice(s, s + bs)
        if method == "m2dn":
            outs.append(mn.ddim_sample(net, x[sl], mk[sl], brain[sl], steps, noise[sl]))
        else:
            outs.append((m4[sl] * x[sl] + (1 - m4[sl]) * net(x[sl] * m4[sl], mk[sl])) * brain[sl])
    return torch.cat(outs)


@torch.no_grad()
def segment_multi(seg, x: torch.Tensor, masks, bs: int = 16) -> list:
    """brats-shaspec on x under each modality mask in `masks` -> class labels [n, 240, 240] per mask. Uses
    ShaSpec4.forward_subsets (encoders once; the same numbers as forward(x * m, m))."""
    outs = [[] for _ in masks]
    for s in range(0, x.shape[0], bs):
        for o, lg in zip(outs, seg.forward_subsets(x[s:s + bs], masks)):
            prob = F.interpolate(torch.softmax(lg, 1), size=(240, 240), mode="bilinear", align_corners=False)
            o.append(prob.argmax(1).numpy().astype(np.uint8))
    return [np.concatenate(o) for o in outs]


def dices(pred: np.ndarray, truth: np.ndarray) -> dict:
    rp, rt = regions3(pred), regions3(truth)
    d = {r: round(dice(rp[r], rt[r]), 4) for r in ("WT", "TC", "ET")}
    d["mean"] = round(float(np.mean([d["WT"], d["TC"], d["ET"]])), 4)
    return d


SEG_WEIGHTS = HERE / "out" / "brats" / "brats-shaspec.pt"


def eval_case(case: str, methods, steps: int, z_stride: int, downstream: bool, unet_route: bool = False) -> dict:
    d = bd.normalised_case(case)
    x3, b3 = d["x"], d["mask"]
    Z = x3.shape[1]
    zs = np.nonzero(b3.reshape(Z, -1).any(1))[0][z_stride // 2::z_stride]
    L = [data_range(x3[c], b3) for c in range(4)]
    x = torch.from_numpy(np.ascontiguousarray(x3[:, zs].transpose(1, 0, 2, 3)))
    brain = torch.from_numpy(b3[zs][:, None].astype(np.float32))
    bnp = b3[zs]
    nets = {"m2dn": load_synth("brats-m2dn") if "m2dn" in methods else None,
            "unet": load_synth("brats-synth-unet") if "unet" in methods else None, "mean": None}
    res = {"case": case, "slices": [int(z) for z in zs], "zStride": z_stride, "dataRange": dict(zip(SEQ, [round(v, 4) for v in L])),
           "steps": steps, "synthesis": {}, "seconds": {}}
    if downstream:
        seg = bn.build("brats-shaspec")
        seg.load_state_dict(torch.load(SEG_WEIGHTS))
        seg.eval()
        _, segraw = bd.load_case_raw(case)
        truth = bd.labels_to_classes(segraw)[zs]
        ds = {"acquired-only": {}, "with-synthesis": {}, "synthesisedAlone": {}, "trueAlone": {}}
        if unet_route:
            ds["with-unet-synthesis"] = {}
        ones = [tuple(float(i == c) for i in range(4)) for c in range(4)]
        preds = segment_multi(seg, x, list(mn.SPLITS14) + ones)
        for c in range(4):
            ds["trueAlone"][SEQ[c]] = dices(preds[14 + c], truth)
        for si, m in enumerate(mn.SPLITS14):
            ds["acquired-only"][split_name(m)] = dices(preds[si], truth)
        res["downstream"] = ds
    for si, m in enumerate(mn.SPLITS14):
        sn = split_name(m)
        res["synthesis"][sn] = {}
        gen = torch.Generator().manual_seed(1000 * (si + 1) + sum(map(ord, case)))
        noise = torch.randn(x.shape, generator=gen)
        ys = {}
        for meth in methods:
            t = time.time()
            y = synthesise(meth, nets[meth], x, m, brain, steps, noise)
            res["seconds"][meth] = res["seconds"].get(meth, 0.0) + time.time() - t
            ys[meth] = y
            yn = y.numpy()
            per = {}
            for c in range(4):
                if m[c] == 0:
                    ss = [ssim2d(yn[k, c], x3[c, z], bnp[k], L[c]) for k, z in enumerate(zs) if bnp[k].sum() >= 16]
                    per[SEQ[c]] = {"psnr": round(psnr(yn[:, c], x3[c, zs], bnp, L[c]), 3),
                                   "ssim": round(float(np.mean(ss)), 4)}
            res["synthesis"][sn][meth] = per
        if downstream:
            miss = [c for c in range(4) if m[c] == 0]
            if "m2dn" in ys:
                pr = segment_multi(seg, ys["m2dn"], [ONES] + [tuple(float(i == c) for i in range(4)) for c in miss])
                ds["with-synthesis"][sn] = dices(pr[0], truth)
                ds["synthesisedAlone"][sn] = {SEQ[c]: dices(p, truth) for c, p in zip(miss, pr[1:])}
            if unet_route and "unet" in ys:
                ds["with-unet-synthesis"][sn] = dices(segment_multi(seg, ys["unet"], [ONES])[0], truth)
        print(case, sn, json.dumps(res["synthesis"][sn]),
              json.dumps({k: v[sn]["mean"] for k, v in res.get("downstream", {}).items() if sn in v and "mean" in v[sn]}),
              flush=True)
    res["seconds"] = {k: round(v, 1) for k, v in res["seconds"].items()}
    return res


def select_steps(candidates, out: Path) -> dict:
    """VAL PSNR (train_m2dn.validate: every 12th brain slice of the 2 VAL cases, split k mod 14) and CPU time per
    slice per step for each candidate; default = the fewest steps within 0.1 dB of the best VAL PSNR."""
    from train_m2dn import SynthVal, validate
    net = load_synth("brats-m2dn")
    val = SynthVal(bd.splits()["val"], 12)
    x1, m1, b1, n1 = val.x[:1], val.mask[:1], val.brain[:1], val.noise[:1]
    with torch.no_grad():
        mn.ddim_sample(net, x1, m1, b1, 2, n1)
        t = time.time()
        for _ in range(3):
            mn.ddim_sample(net, x1, m1, b1, 10, n1)
        per_step = (time.time() - t) / 30
    rows = []
    for s in candidates:
        t = time.time()
        p = validate(net, val, s)
        rows.append({"steps": s, "valPSNR": round(p, 3), "valSeconds": round(time.time() - t, 1)})
        print(rows[-1], flush=True)
    best = max(r["valPSNR"] for r in rows)
    pick = min(r["steps"] for r in rows if r["valPSNR"] >= best - 0.1)
    res = {"candidates": rows, "default": pick, "rule": "fewest steps within 0.1 dB of the best VAL PSNR",
           "cpuSecondsPerSlicePerStep": round(per_step, 4),
           "timing": "one 128 x 128 slice (batch 1), torch 1.13, 1 thread, on this shared 2-core machine (other jobs "
                     "running)", "timesteps": mn.ddim_timesteps(pick)}
    (out / "steps.json").write_text(json.dumps(res, indent=1))
    return res


def _mean(v):
    return round(float(np.mean(v)), 4)


def merge(run: Path, dst: Path) -> dict:
    per = [json.loads(f.read_text()) for f in sorted((run / "eval").glob("*.json"))]
    steps = json.loads((run / "steps.json").read_text())
    res = {"split": "test", "cases": [p["case"] for p in per],
           "grid": "model grid (128 x 128 @ 1.875 mm, zscore-brain per sequence over the 3D brain); every "
                   f"{per[0]['zStride']}th slice "
                   "with brain (the same slices for every method)",
           "psnr": "dB over the brain voxels of the evaluated slices per case and sequence; data range L = 99.5th - "
                   "1st percentile of the TRUE normalised sequence inside the 3D brain of that case",
           "ssim": "2D per slice (Gaussian sigma 1.5, 11 x 11, K1 0.01, K2 0.03, same L), map averaged inside the "
                   "brain, then over slices",
           "methods": {"m2dn": f"brats-m2dn, DDIM eta 0, {per[0]['steps']} steps, seeded noise",
                       "unet": "brats-synth-unet (regression U-Net, same inputs without noise/t, one pass)",
                       "mean": "mean of the acquired normalised sequences"},
           "stepsSelection": steps,
           "published": {"M2DN BraTS 2023 re-run": {"psnr": 24.3, "ssim": 0.897}, "M2DN IXI": {"psnr": 28.1},
                         "comparability": "not comparable: different data (BraTS 2023 / IXI, hundreds of training "
                                          "subjects vs 9 here), 3D/2D and resolution differences, and PSNR/SSIM "
                                          "depend on the intensity normalisation and data range, which differ"},
           "note": "4 TEST cases only: wide confidence intervals",
           "bySplit": {}, "bySequence": {}, "overall": {}}
    splits = list(per[0]["synthesis"].keys())
    meths = list(per[0]["synthesis"][splits[0]].keys())
    acc = {k: {s: [] for s in SEQ} for k in meths}
    for sn in splits:
        res["bySplit"][sn] = {}
        for k in meths:
            seqs = list(per[0]["synthesis"][sn][k].keys())
            row = {}
            for s in seqs:
                ps = [p["synthesis"][sn][k][s]["psnr"] for p in per]
                ss = [p["synthesis"][sn][k][s]["ssim"] for p in per]
                row[s] = {"psnr": _mean(ps), "ssim": _mean(ss)}
                acc[k][s].append(row[s])
            row["mean"] = {"psnr": _mean([row[s]["psnr"] for s in seqs]), "ssim": _mean([row[s]["ssim"] for s in seqs])}
            res["bySplit"][sn][k] = row
    for k in meths:
        res["bySequence"][k] = {s: {"psnr": _mean([r["psnr"] for r in acc[k][s]]),
                                    "ssim": _mean([r["ssim"] for r in acc[k][s]])} for s in SEQ}
        allr = [r for s in SEQ for r in acc[k][s]]
        res["overall"][k] = {"psnr": _mean([r["psnr"] for r in allr]), "ssim": _mean([r["ssim"] for r in allr]),
                             "over": "all 28 (split, synthesised sequence) pairs, each the mean over the 4 cases"}
    if all("downstream" in p for p in per):
        ds = {"model": f"brats-shaspec, torch weights {SEG_WEIGHTS.relative_to(HERE)} (default: out/brats/brats-shaspec.pt "
                       "= version 0.1.0, the ONNX committed with sha256 fdaec8c6...; rerun with --seg-weights for "
                       "another version)",
              "grid": "original 240 x 240 in-plane grid of the evaluated slices, Dice per case over those slices, "
                      "mean over the 4 cases; 'mean' = mean of WT, TC, ET",
              "bySplit": {}, "synthesisedAlone": {}, "trueAlone": {}}
        routes = [r for r in ("acquired-only", "with-synthesis", "with-unet-synthesis") if r in per[0]["downstream"]]
        tot = {r: [] for r in routes}
        for sn in splits:
            row = {}
            for r in routes:
                row[r] = {k: _mean([p["downstream"][r][sn][k] for p in per]) for k in ("WT", "TC", "ET", "mean")}
                tot[r].append(row[r]["mean"])
            row["better"] = ("with-synthesis" if row["with-synthesis"]["mean"] > row["acquired-only"]["mean"]
                             else "acquired-only")
            ds["bySplit"][sn] = row
        for s in SEQ:
            items = [p["downstream"]["synthesisedAlone"][sn][s] for p in per for sn in splits
                     if s in p["downstream"]["synthesisedAlone"][sn]]
            ds["synthesisedAlone"][s] = {k: _mean([it[k] for it in items]) for k in ("WT", "TC", "ET", "mean")}
            ds["synthesisedAlone"][s]["over"] = "the 7 splits where it is missing x 4 cases"
            ds["trueAlone"][s] = {k: _mean([p["downstream"]["trueAlone"][s][k] for p in per])
                                  for k in ("WT", "TC", "ET", "mean")}
        ds["overall"] = {r: _mean(tot[r]) for r in routes}
        ds["overall"]["over"] = "mean Dice (WT/TC/ET averaged) over the 14 splits"
        ds["bestRoute"] = ("with-synthesis" if ds["overall"]["with-synthesis"] > ds["overall"]["acquired-only"]
                           else "acquired-only")
        ds["splitsWhereSynthesisBetter"] = [sn for sn in splits if ds["bySplit"][sn]["better"] == "with-synthesis"]
        res["downstream"] = ds
    res["perCase"] = {p["case"]: {"synthesis": p["synthesis"], "downstream": p.get("downstream"),
                                  "slices": len(p["slices"]), "seconds": p["seconds"]} for p in per}
    dst.write_text(json.dumps(res, indent=1) + "\n")
    return res


def main():
    global RUN, SEG_WEIGHTS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=None)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=None, help="default: out/m2dn/steps.json")
    ap.add_argument("--z-stride", type=int, default=8)
    ap.add_argument("--unet-route", action="store_true", help="also segment with the U-Net's synthesised images")
    ap.add_argument("--no-downstream", action="store_true")
    ap.add_argument("--select-steps", default=None, help="e.g. 10,15,25")
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--metrics", default=str(HERE / "m2dn_metrics.json"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run", default=str(RUN))
    ap.add_argument("--seg-weights", default=str(SEG_WEIGHTS), help="brats-shaspec torch weights for the downstream part")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    RUN = Path(a.run)
    SEG_WEIGHTS = Path(a.seg_weights).resolve()
    if a.select_steps:
        print(json.dumps(select_steps([int(s) for s in a.select_steps.split(",")], RUN)))
        return
    if a.merge:
        r = merge(RUN, Path(a.metrics))
        print(json.dumps(r["overall"]), json.dumps(r.get("downstream", {}).get("overall")),
              r.get("downstream", {}).get("bestRoute"))
        return
    test = bd.splits()["test"]
    cases = a.cases.split(",") if a.cases else test
    assert all(c in test for c in cases), "TEST cases only"
    steps = a.steps or json.loads((RUN / "steps.json").read_text())["default"]
    (RUN / "eval").mkdir(parents=True, exist_ok=True)
    for c in cases:
        r = eval_case(c, a.methods.split(","), steps, a.z_stride, not a.no_downstream, a.unet_route)
        (RUN / "eval" / f"{c}.json").write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
