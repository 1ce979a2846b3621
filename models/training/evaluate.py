#!/usr/bin/python3
"""Evaluate lesion models on held-out TEST phantom studies, per 3D study on the acquisition grid (ISLES 2022 metrics).

For each study: the acquired DWI/ADC volumes are normalised and resampled to the 128x128 @ 2 mm model grid exactly
as models/README.md says, the model runs on every slice (three-slice context, edges replicated), the probability
is resampled back (bilinear) to each acquired slice and thresholded at 0.5. Subsets: DWI+ADC, DWI only, ADC only
(a missing modality's three channels are zero; modality_mask tells ShaSpec which are present).

Metrics (studies whose truth mask is non-empty on the acquisition grid):
  Dice (3D), lesion-wise F1 (3D connected components, 26-connectivity; a truth lesion is found when any predicted
  voxel overlaps it, a predicted component is false when it overlaps no truth lesion; F1 = TP / (TP + (FP + FN) / 2)),
  absolute lesion-volume difference in mL (voxel volume = pixel spacing^2 x slice spacing).
Studies with an empty truth: false-positive rate = fraction with any predicted voxel, and mean false volume (mL).

    /usr/bin/python3 models/training/evaluate.py --run models/training/out/run1 --test models/training/cache/data/test_80_0.npz
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import nets  # noqa: E402
import phantoms  # noqa: E402

SUBSETS = {"DWI+ADC": (1.0, 1.0), "DWI only": (1.0, 0.0), "ADC only": (0.0, 1.0)}
CONN = np.ones((3, 3, 3), bool)


def lesion_f1(pred: np.ndarray, gt: np.ndarray) -> float:
    lg, ng = ndimage.label(gt, CONN)
    lp, npr = ndimage.label(pred, CONN)
    tp = len(np.unique(lg[(lg > 0) & pred])) if ng else 0
    fn = ng - tp
    fp = npr - (len(np.unique(lp[(lp > 0) & gt])) if npr else 0)
    if tp + fp + fn == 0:
        return 1.0
    return tp / (tp + (fp + fn) / 2)


@torch.no_grad()
def predict_study(model: torch.nn.Module, name: str, dwi: np.ndarray, adc: np.ndarray, ps: float,
                  md: float, ma: float, bs: int = 16) -> np.ndarray:
    d, a = phantoms.normalise(dwi, adc)
    x2 = np.stack([phantoms.to_model_grid(d, ps, ps), phantoms.to_model_grid(a, ps, ps)], 1)
    x = torch.from_numpy(phantoms.six_channels(x2).astype(np.float32))
    x[:, 0:3] *= md
    x[:, 3:6] *= ma
    outs = []
    for s in range(0, len(x), bs):
        xb = x[s:s + bs]
        if name == "shaspec-missing":
            outs.append(model(xb, torch.tensor([[md, ma]] * len(xb), dtype=torch.float32)))
        else:
            outs.append(model(xb))
    prob = torch.sigmoid(torch.cat(outs)[:, 0]).numpy()
    S, R, C = dwi.shape
    return phantoms.from_model_grid(prob, R, C, ps, ps) > 0.5


def evaluate_file(name: str, model: torch.nn.Module, test_file: str, out_json: Path) -> Dict:
    model.eval()
    d = np.load(test_file)
    metas = json.loads(str(d["meta"]))
    res: Dict[str, Dict] = {}
    per_study: Dict[str, List] = {}
    t_total, n_runs = 0.0, 0
    for sub, (md, ma) in SUBSETS.items():
        dice, f1, avd, fp_any, fp_vol, rows = [], [], [], [], [], []
        for i, meta in enumerate(metas):
            dwi, adc, gt = d[f"dwi_{i}"], d[f"adc_{i}"], d[f"mask_{i}"] > 0
            ps, sp = meta["pixel_spacing"], meta["slice_spacing"]
            t0 = time.time()
            pred = predict_study(model, name, dwi, adc, ps, md, ma)
            t_total += time.time() - t0
            n_runs += 1
            vml = ps * ps * sp / 1000.0
            if gt.any():
                inter = float((pred & gt).sum())
                dc = 2 * inter / float(pred.sum() + gt.sum())
                lf = lesion_f1(pred, gt)
                vd = abs(float(pred.sum()) - float(gt.sum())) * vml
                dice.append(dc)
                f1.append(lf)
                avd.append(vd)
                rows.append({"seed": meta["seed"], "gtMl": round(float(gt.sum()) * vml, 3), "dice": round(dc, 4),
                             "lesionF1": round(lf, 4), "absVolDiffMl": round(vd, 3)})
            else:
                fp_any.append(bool(pred.any()))
                fp_vol.append(float(pred.sum()) * vml)
                rows.append({"seed": meta["seed"], "gtMl": 0.0, "predMl": round(float(pred.sum()) * vml, 3)})
        res[sub] = {
            "lesionStudies": len(dice), "noLesionStudies": len(fp_any),
            "dice": round(float(np.mean(dice)), 4), "diceMedian": round(float(np.median(dice)), 4),
            "lesionF1": round(float(np.mean(f1)), 4),
            "absVolumeDiffMl": round(float(np.mean(avd)), 3), "absVolumeDiffMlMedian": round(float(np.median(avd)), 3),
            "noLesionFalsePositiveRate": round(float(np.mean(fp_any)), 4) if fp_any else None,
            "noLesionMeanFalseVolumeMl": round(float(np.mean(fp_vol)), 3) if fp_vol else None,
        }
        per_study[sub] = rows
        print(f"[{name}] TEST {sub}: {res[sub]}", flush=True)
    out = {"model": name, "testFile": Path(test_file).name, "studies": len(metas), "metrics": res,
           "torchCpuSecondsPerStudy": round(t_total / max(1, n_runs), 3), "perStudy": per_study}
    out_json.write_text(json.dumps(out, indent=1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="train_all.py output dir (holds <name>.pt and <name>.train.json)")
    ap.add_argument("--test", required=True, help="test npz from phantoms.build_split('test', ..., keep_acq=True)")
    ap.add_argument("--models", default="unet2d-baseline,dual-encoder,shaspec-missing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--suffix", default="", help="write <name>.test<suffix>.json (e.g. -r1: another TEST set)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name in a.models.split(","):
        info = json.loads((Path(a.run) / f"{name}.train.json").read_text())
        m = nets.build(name, info["args"]["scale"])
        m.load_state_dict(torch.load(Path(a.run) / f"{name}.pt"))
        evaluate_file(name, m, a.test, Path(a.run) / f"{name}.test{a.suffix}.json")


if __name__ == "__main__":
    main()
