#!/usr/bin/python3
"""Evaluation metrics of the liver-tumour task (issue 16), per 3D study on its acquisition grid.

- liver Dice (labels >= 1: the liver including its tumours, as LiTS), tumour Dice per case (label 2) and the
  global tumour Dice (sums of intersections and volumes over all cases, as LiTS' "Dice global");
- lesion-wise detection: truth lesions are the phantom's tumour instances (params.lesions; on real data the 3D
  26-connected components of the truth), predicted lesions the 26-connected components of the prediction; a truth
  lesion is detected when a predicted component overlaps it; a predicted component with no truth overlap is a false
  positive; F1 per truth size bin by the lesion's equivalent diameter (< 10, 10-20, > 20 mm; false positives are
  binned by their own equivalent diameter);
- volume error (mL and %) of liver and tumour burden;
- liver Dice averaged over cases with a liver; the liver-free negatives are reported apart (false liver and tumour mL).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

BINS = [("<10", 0.0, 10.0), ("10-20", 10.0, 20.0), (">20", 20.0, 1e9)]


def dice(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    s = int(a.sum()) + int(b.sum())
    return None if s == 0 else 2.0 * int((a & b).sum()) / s


def eq_diameter(n_vox: int, voxel_ml: float) -> float:
    v_mm3 = n_vox * voxel_ml * 1000.0
    return float((6 * v_mm3 / np.pi) ** (1 / 3))


def case_metrics(pred: np.ndarray, truth: np.ndarray, spacing_mm: List[float],
                 truth_instances: Optional[np.ndarray] = None) -> Dict:
    """pred, truth: uint8 [S, R, C] labels 0/1/2; spacing (slice, row, column) mm."""
    vml = float(np.prod(spacing_mm)) / 1000.0
    pl, tl = pred >= 1, truth >= 1
    pt, tt = pred == 2, truth == 2
    st26 = np.ones((3, 3, 3), bool)
    if truth_instances is None:
        truth_instances, _ = ndimage.label(tt, st26)
    plab, npred = ndimage.label(pt, st26)
    lesions = []
    matched_pred = set()
    for k in [int(v) for v in np.unique(truth_instances) if v != 0]:
        m = truth_instances == k
        hit = np.unique(plab[m])
        hit = [int(h) for h in hit if h != 0]
        matched_pred.update(hit)
        lesions.append({"diameter_mm": eq_diameter(int(m.sum()), vml), "detected": bool(hit)})
    fps = []
    for j in range(1, npred + 1):
        if j not in matched_pred:
            fps.append(eq_diameter(int((plab == j).sum()), vml))
    return {
        "liver_dice": dice(pl, tl), "tumour_dice": dice(pt, tt),
        "tumour_inter": int((pt & tt).sum()), "tumour_sum": int(pt.sum()) + int(tt.sum()),
        "liver_ml": float(tl.sum() * vml), "liver_ml_pred": float(pl.sum() * vml),
        "tumour_ml": float(tt.sum() * vml), "tumour_ml_pred": float(pt.sum() * vml),
        "lesions": lesions, "false_positives_mm": fps,
    }


def summarise(cases: List[Dict]) -> Dict:
    def mean(v):
        v = [x for x in v if x is not None]
        return None if not v else float(np.mean(v))
    inter = sum(c["tumour_inter"] for c in cases)
    tot = sum(c["tumour_sum"] for c in cases)
    neg = [c for c in cases if c["liver_ml"] == 0]
    out = {"cases": len(cases), "liver_dice_mean": mean([c["liver_dice"] for c in cases if c["liver_ml"] > 0]),
           "negative_cases": len(neg), "negative_false_liver_ml_mean": mean([c["liver_ml_pred"] for c in neg]),
           "negative_false_tumour_ml_mean": mean([c["tumour_ml_pred"] for c in neg]),
           "tumour_dice_per_case_mean": mean([c["tumour_dice"] for c in cases if c["tumour_ml"] > 0]),
           "tumour_dice_global": None if tot == 0 else 2.0 * inter / tot,
           "liver_volume_error_pct_mean": mean([abs(c["liver_ml_pred"] - c["liver_ml"]) / c["liver_ml"] * 100
                                                for c in cases if c["liver_ml"] > 0]),
           "tumour_volume_error_ml_mean": mean([abs(c["tumour_ml_pred"] - c["tumour_ml"]) for c in cases]),
           "detection": {}}
    for name, lo, hi in BINS:
        les = [l for c in cases for l in c["lesions"] if lo <= l["diameter_mm"] < hi]
        tp = sum(l["detected"] for l in les)
        fn = len(les) - tp
        fp = sum(1 for c in cases for d in c["false_positives_mm"] if lo <= d < hi)
        f1 = None if tp + fn + fp == 0 else 2 * tp / (2 * tp + fn + fp)
        out["detection"][name] = {"truth": len(les), "tp": tp, "fn": fn, "fp": fp, "f1": f1}
    return out
