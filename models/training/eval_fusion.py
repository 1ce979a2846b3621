#!/usr/bin/python3
"""Held-out TEST evaluation of brats-nslf (fusion): image similarity of the fused image to each source, and the tumour
Dice of its segmentation head, next to a trivial fusion baseline and brats-shaspec.

    /usr/bin/python3 models/training/eval_fusion.py            # all 4 TEST cases, writes models/training/nslf_metrics.json

Per TEST case, on the model grid (128 x 128 @ 1.875 mm, every axial slice with brain, normalised as the contract
says), for every non-empty subset of the four sequences (missing channels zeroed, modality_mask 0):
  fused    = brats-nslf's `fused` output;   baseline = the plain mean of the acquired normalised sequences.
  For each ACQUIRED source s, inside the 3D brain mask (BraTS: any sequence non-zero):
    both volumes min-max scaled to [0, 1] over the brain voxels (each its own min/max, the usual fusion-paper
    convention), then
    PSNR = 10 log10(1 / MSE) over brain voxels;
    SSIM = mean over brain voxels of the 2D SSIM map (Gaussian 11x11, sigma 1.5, K 0.01/0.03, data range 1) per slice;
    NMI  = (H(A) + H(B)) / H(A, B) with 100-bin histograms over [0, 1] of the brain voxels (scikit-image's
           normalized_mutual_information definition and default bins); 1 = independent, 2 = identical.
  The per-case value is the mean over the acquired sources; the table reports the mean over the 4 cases.
Segmentation: the seg head's logits (on the fused image alone) -> softmax -> bilinear 128 -> 240 -> argmax, scored in
3D on the original 240 x 240 x 155 @ 1 mm grid exactly as eval_brats.py does (1 mm variant): Dice of WT, TC, ET (HD95
left out to fit the time budget). Subsets with one sequence are scored for Dice only: their fused image IS that
sequence (weight 1), so image similarity is trivially perfect and is left out of the means (11 multi-sequence subsets).
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
import nslf_nets as nn_  # noqa: E402
from eval_brats import REGIONS, dice, regions3  # noqa: E402
from train_nslf import ssim_map  # noqa: E402,F401


def _gauss1(ws: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-(torch.arange(ws, dtype=torch.float32) - ws // 2) ** 2 / (2 * sigma ** 2))
    return g / g.sum()

ALL4 = "FLAIR+T1+T1c+T2"


def scores(pred, truth) -> dict:
    rp, rt = regions3(pred), regions3(truth)
    return {r: {"dice": round(dice(rp[r], rt[r]), 4)} for r in REGIONS}


def mean_scores(items) -> dict:
    return {r: {"dice": round(float(np.mean([it[r]["dice"] for it in items])), 4)} for r in REGIONS}


PUBLISHED = {"ssim": 0.931, "psnr": 27.9, "nmi": 1.54,
             "source": "NSLF paper, BraTS 2021, all four sequences, 3D network, its own protocol (not comparable: "
                       "different cases, 3D volumes at 1 mm, its own scaling of intensities)"}


def scale01(v: np.ndarray, brain: np.ndarray) -> np.ndarray:
    lo, hi = float(v[brain].min()), float(v[brain].max())
    return np.where(brain, (v - lo) / max(hi - lo, 1e-6), 0).astype(np.float32)


G1 = _gauss1()


def ssim_sep(a: torch.Tensor, b: torch.Tensor, L: float = 1.0) -> torch.Tensor:
    """The same SSIM map as train_nslf.ssim_map (Gaussian 11, sigma 1.5, zero padding), separable convolutions."""
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    f = lambda t: F.conv2d(F.conv2d(t, G1.view(1, 1, 11, 1), padding=(5, 0)), G1.view(1, 1, 1, 11), padding=(0, 5))  # noqa: E731
    ma, mb = f(a), f(b)
    saa, sbb, sab = f(a * a) - ma * ma, f(b * b) - mb * mb, f(a * b) - ma * mb
    return ((2 * ma * mb + c1) * (2 * sab + c2)) / ((ma * ma + mb * mb + c1) * (saa + sbb + c2))


def nmi(a: np.ndarray, b: np.ndarray, bins: int = 100) -> float:
    h, _, _ = np.histogram2d(a, b, bins=bins, range=[[0, 1], [0, 1]])
    p = h / h.sum()
    ent = lambda q: -float((q[q > 0] * np.log(q[q > 0])).sum())  # noqa: E731
    return (ent(p.sum(1)) + ent(p.sum(0))) / ent(p)


def similarity(f: np.ndarray, s: np.ndarray, brain: np.ndarray) -> dict:
    """f, s [Z, H, W] raw (normalised) volumes, brain [Z, H, W] bool -> {ssim, psnr, nmi} inside the brain."""
    a, b = scale01(f, brain), scale01(s, brain)
    mse = float(((a - b)[brain] ** 2).mean())
    with torch.no_grad():
        sm = ssim_sep(torch.from_numpy(a)[:, None], torch.from_numpy(b)[:, None])[:, 0].numpy()
    return {"ssim": float(sm[brain].mean()), "psnr": 10 * np.log10(1.0 / max(mse, 1e-12)), "nmi": nmi(a[brain], b[brain])}


def load(case: str) -> dict:
    _, seg = bd.load_case_raw(case)
    d = bd.normalised_case(case)
    Z = d["x"].shape[1]
    zs = np.nonzero(d["mask"].reshape(Z, -1).any(1))[0]
    return {"truth": bd.labels_to_classes(seg), "Z": Z, "zs": zs, "br": d["mask"][zs],
            "X": torch.from_numpy(np.ascontiguousarray(d["x"][:, zs].transpose(1, 0, 2, 3)))}


@torch.no_grad()
def eval_subset(model, c: dict, m) -> dict:
    """One case (load()), one subset m -> {nslf, meanBaseline: {perSource, mean}, seg}."""
    X, zs, br, Z = c["X"], c["zs"], c["br"], c["Z"]
    mk = torch.tensor([m] * len(zs), dtype=torch.float32)
    xm = X * mk[:, :, None, None]
    fused, lab = [], np.zeros((Z, 240, 240), np.uint8)
    for s in range(0, len(zs), 16):
        f, w, lg = model(xm[s:s + 16], mk[s:s + 16])
        fused.append(f[:, 0])
        prob = F.interpolate(torch.softmax(lg, 1), size=(240, 240), mode="bilinear", align_corners=False)
        lab[zs[s:s + 16]] = prob.argmax(1).numpy().astype(np.uint8)
    fused = torch.cat(fused).numpy()
    base = (xm.sum(1) / mk.sum(1)[:, None, None]).numpy()
    srcs = [i for i in range(4) if m[i] > 0]
    per = {"nslf": {}, "meanBaseline": {}}
    for i in (srcs if len(srcs) > 1 else []):
        per["nslf"][bd.SEQ_NAMES[i]] = similarity(fused, X[:, i].numpy(), br)
        per["meanBaseline"][bd.SEQ_NAMES[i]] = similarity(base, X[:, i].numpy(), br)
    out = {k: {"perSource": v, "mean": {q: float(np.mean([v[s][q] for s in v])) for q in ("ssim", "psnr", "nmi")}}
           for k, v in per.items() if v}
    out["seg"] = scores(lab, c["truth"])
    return out


def shaspec_reference(cases) -> dict:
    """brats-shaspec's TEST Dice (1 mm, eval_brats.py) on the same cases: brats_metrics.json if merged, else the
    per-case files of the issue-14 run."""
    per = {}
    mfile = HERE / "brats_metrics.json"
    if mfile.exists():
        mm = json.loads(mfile.read_text())["models"].get("brats-shaspec", {}).get("1mm", {})
        for s, v in mm.items():
            if s == "meanOver15Subsets":
                continue
            for c, sc in v.get("perCase", {}).items():
                per.setdefault(c, {})[s] = sc
    for f in sorted((HERE / "out" / "brats" / "eval" / "brats-shaspec").glob("*.json")):
        j = json.loads(f.read_text())
        per.setdefault(j["case"], j["1mm"])
    have = [c for c in cases if c in per]
    if not have:
        return {"cases": [], "note": "brats-shaspec TEST evaluation not available"}
    subs = list(per[have[0]].keys())
    out = {"cases": have, "source": "eval_brats.py 1 mm (brats_metrics.json or out/brats/eval/brats-shaspec/*.json)"}
    out["bySubset"] = {s: mean_scores([per[c][s] for c in have]) for s in subs}
    out["meanOver15Subsets"] = mean_scores([out["bySubset"][s] for s in subs])
    return out


def merge(files, dst: Path) -> dict:
    per = [json.loads(f.read_text()) for f in files]
    cases = [p["case"] for p in per]
    subs = [s for s in bd.SUBSETS[::-1] if all(bd.subset_name(s) in p["subsets"] for p in per)]
    subs = [bd.subset_name(s) for s in subs]
    multi = [s for s in subs if "+" in s]

    def mean_sim(method: str, s: str) -> dict:
        return {q: round(float(np.mean([p["subsets"][s][method]["mean"][q] for p in per])), 4) for q in ("ssim", "psnr", "nmi")}
    table = {}
    for s in subs:
        table[s] = {"segDice": mean_scores([p["subsets"][s]["seg"] for p in per])}
        if s in multi:
            table[s].update({"nslf": mean_sim("nslf", s), "meanBaseline": mean_sim("meanBaseline", s)})
    per_src = {m: {src: {q: round(float(np.mean([p["subsets"][ALL4][m]["perSource"][src][q] for p in per])), 4)
                         for q in ("ssim", "psnr", "nmi")} for src in bd.SEQ_NAMES} for m in ("nslf", "meanBaseline")}
    over = {m: {q: round(float(np.mean([table[s][m][q] for s in multi])), 4) for q in ("ssim", "psnr", "nmi")}
            for m in ("nslf", "meanBaseline")}
    over["similaritySubsets"] = len(multi)
    over["segDice"] = mean_scores([table[s]["segDice"] for s in subs])
    over["segDiceSubsets"] = len(subs)
    res = {
        "split": "test", "cases": cases, "model": "brats-nslf",
        "similarity": "fused vs each ACQUIRED source inside the brain on the 128 model grid, both min-max scaled to "
                      "[0,1] over the brain; SSIM 2D Gaussian 11/1.5 mean over brain voxels; PSNR 10log10(1/MSE); "
                      "NMI (H(A)+H(B))/H(A,B) with 100 bins; mean over the acquired sources, then over the 4 cases",
        "seg": "Dice/HD95 of the seg head on the fused image, 3D on the 240x240x155 @ 1 mm grid (eval_brats.py 1 mm)",
        "published": PUBLISHED,
        "all4": table[ALL4], "all4PerSource": per_src, "meanOverSubsets": over, "bySubset": table,
        "brats-shaspec": shaspec_reference(cases),
        "note": "4 TEST cases only; 2D slices on a 1.875 mm grid, trained ~20 min on 1 CPU thread with 9 cases",
        "perCase": {p["case"]: p for p in per},
    }
    dst.write_text(json.dumps(res, indent=1) + "\n")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(HERE / "out" / "nslf"))
    ap.add_argument("--cases", default=None)
    ap.add_argument("--merge-only", action="store_true")
    ap.add_argument("--subsets", default=None, help="comma-separated subset names, e.g. T1+T2,FLAIR+T1+T2")
    ap.add_argument("--min-seqs", type=int, default=1, help="only subsets with at least this many sequences")
    ap.add_argument("--metrics", default=str(HERE / "nslf_metrics.json"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    run = Path(a.run)
    od = run / "eval"
    od.mkdir(parents=True, exist_ok=True)
    test = bd.splits()["test"]
    if not a.merge_only:
        cases = a.cases.split(",") if a.cases else test
        assert all(c in test for c in cases), "TEST cases only"
        model = nn_.NSLF()
        model.load_state_dict(torch.load(run / "brats-nslf.pt"))
        model.eval()
        data = {c: load(c) for c in cases}
        res = {c: {"case": c, "slices": int(len(data[c]["zs"])), "subsets": {}} for c in cases}
        for c in cases:  # resume: keep subsets already evaluated
            if (od / f"{c}.json").exists():
                res[c]["subsets"].update(json.loads((od / f"{c}.json").read_text())["subsets"])
        subsets = [s for s in bd.SUBSETS[::-1] if sum(s) >= a.min_seqs]  # all four first, then 3, 2, (1)
        if a.subsets:
            subsets = [s for s in bd.SUBSETS if bd.subset_name(s) in a.subsets.split(",")]
        subsets = [s for s in subsets if not all(bd.subset_name(s) in res[c]["subsets"] for c in cases)]
        t0 = time.time()
        for m in subsets:  # subset-major: every case gets the important subsets first
            for c in cases:
                out = eval_subset(model, data[c], m)
                res[c]["subsets"][bd.subset_name(m)] = out
                (od / f"{c}.json").write_text(json.dumps(res[c], indent=1))
                print(c, bd.subset_name(m), {k: {q: round(out[k]["mean"][q], 3) for q in out[k]["mean"]}
                                             for k in ("nslf", "meanBaseline") if k in out},
                      {r: out["seg"][r]["dice"] for r in REGIONS}, f"{time.time() - t0:.0f}s", flush=True)
    files = [od / f"{c}.json" for c in test if (od / f"{c}.json").exists()]
    r = merge(files, Path(a.metrics))
    print(json.dumps({"all4": r["all4"], "meanOverSubsets": r["meanOverSubsets"], "shaspec": r["brats-shaspec"]}, indent=1))


if __name__ == "__main__":
    main()
