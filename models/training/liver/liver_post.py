#!/usr/bin/python3
"""Post-processing and measurements of the liver-tumour model's label map (issue 16 contract; the node does the same).

postprocess(): (1) liver region = class >= 1, only its largest 26-connected 3-D component is kept (ties: the
component met first in (slice, row, column) raster order), the rest becomes background; (2) tumour = class 2 inside
it; 26-connected tumour components with volume < min_tumour_ml become liver; (3) shape rules on the remaining tumour
components (0 = off), each turning the component into liver:
  - flat end (end_c > 0): a tumour is a rounded body, so where the component ends inside the series (the slice
    beyond its first or last slice belongs to the series and holds none of it), its in-plane diameter d on that end
    slice must be small: a sphere of diameter D cut within one slice spacing s of its pole has d <= 2 sqrt(s D).
    The component is dropped when d > end_c * sqrt(s * D) at such an end (D = its longest axial diameter). A
    component on the series' first or last slice is not judged on that side: it may go on beyond the coverage.
  - tubular (min_fill > 0): on the component's largest-area slice (ties: the first), area / (pi d^2 / 4) with d
    that slice's diameter: a vessel running in-plane fills little of the circle over its length; dropped when the
    fill < min_fill.
  Diameters are measured as measure() does (longest distance between pixel centres on the slice + one pixel).

measure(): liver mL (liver + tumour voxels); per tumour (26-connected component of class 2): mL, longest axial
diameter (largest in-plane distance between two voxel centres of the component on any one slice, plus one pixel
spacing, as a caliper touches the voxel edges), centroid (voxel indices and, given the geometry, LPS mm).
Tumours are listed by volume, largest first (ties: raster order).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import ndimage

ST26 = np.ones((3, 3, 3), bool)


def postprocess(pred: np.ndarray, spacing_mm: Sequence[float], min_tumour_ml: float, end_c: float = 0.0,
                min_fill: float = 0.0) -> np.ndarray:
    """pred uint8 [S, R, C] 0/1/2; spacing (slice, row, column) mm -> post-processed uint8 [S, R, C]."""
    vml = float(np.prod(spacing_mm)) / 1000.0
    out = np.zeros_like(pred, dtype=np.uint8)
    lab, n = ndimage.label(pred >= 1, ST26)
    if n == 0:
        return out
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    keep = lab == (int(np.argmax(sizes)) + 1)  # argmax: first of equal sizes = first in raster order
    out[keep] = 1
    out[keep & (pred == 2)] = 2
    tl, nt = ndimage.label(out == 2, ST26)
    if nt:
        tsz = np.bincount(tl.ravel(), minlength=nt + 1)
        small = np.nonzero(tsz * vml < min_tumour_ml)[0]
        small = small[small != 0]
        out[np.isin(tl, small)] = 1
        if end_c > 0 or min_fill > 0:
            # each component within its in-plane bounding box over every slice (the series' ends stay visible)
            for k, box in enumerate(ndimage.find_objects(tl), start=1):
                if box is None or tsz[k] * vml < min_tumour_ml:
                    continue
                sl = (slice(None),) + box[1:]
                comp = tl[sl] == k
                if shape_rule(comp, spacing_mm, end_c, min_fill):
                    out[sl][comp] = 1
    return out


def manifest_params(post: Dict, modality: str) -> tuple:
    """(min_tumour_ml, end_c, min_fill) for 'CT' or 'MR' from a manifest's `postprocess` block (absent rules: 0)."""
    shape = post.get("tumourShape", {}).get(modality, {})
    return (float(post.get("minTumourMl", 0.065)), float(shape.get("flatEndFactor", 0)),
            float(shape.get("minAxialFill", 0)))


def slice_diameter_mm(m: np.ndarray, row_mm: float, col_mm: float) -> float:
    """m bool [R, C]: largest distance between two pixel centres of the 4-connected boundary, + one row spacing."""
    edge = m & ~ndimage.binary_erosion(m, np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool), border_value=0)
    p = np.argwhere(edge).astype(np.float64) * np.array([row_mm, col_mm])
    d = float(np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)).max()) if len(p) > 1 else 0.0
    return d + row_mm


def shape_rule(comp: np.ndarray, spacing_mm: Sequence[float], end_c: float, min_fill: float) -> Optional[str]:
    """Which shape rule (module comment) drops this tumour component: 'flat end', 'tubular' or None."""
    sp, pr, pc = (float(v) for v in spacing_mm)
    zs = np.nonzero(comp.reshape(comp.shape[0], -1).any(1))[0]
    diam = {int(z): slice_diameter_mm(comp[z], pr, pc) for z in zs}
    big = max(diam.values())
    if end_c > 0:
        for z, inside in ((int(zs[0]), zs[0] > 0), (int(zs[-1]), zs[-1] < comp.shape[0] - 1)):
            if inside and diam[z] > end_c * np.sqrt(sp * big):
                return "flat end"
    if min_fill > 0:
        areas = [int(comp[z].sum()) for z in zs]
        z = int(zs[int(np.argmax(areas))])
        if max(areas) * pr * pc / (np.pi * diam[z] ** 2 / 4) < min_fill:
            return "tubular"
    return None


def longest_axial_diameter_mm(comp: np.ndarray, row_mm: float, col_mm: float) -> float:
    """comp bool [S, R, C]: max over slices of the largest distance between two voxel centres, + one pixel spacing
    (the row spacing; the fixtures and the phantoms have square pixels)."""
    return max(slice_diameter_mm(comp[z], row_mm, col_mm) for z in np.nonzero(comp.reshape(comp.shape[0], -1).any(1))[0])


def measure(lab: np.ndarray, spacing_mm: Sequence[float], ipp_first: Optional[Sequence[float]] = None) -> Dict:
    """lab: post-processed uint8 [S, R, C]; spacing (slice, row, column) mm; ipp_first: LPS of voxel (0, 0, 0) of an
    axial [1,0,0,0,1,0] series (then centroids are also given in LPS mm)."""
    sp, pr, pc = (float(v) for v in spacing_mm)
    vml = sp * pr * pc / 1000.0
    tl, nt = ndimage.label(lab == 2, ST26)
    tumours: List[Dict] = []
    for k in range(1, nt + 1):
        comp = tl == k
        idx = np.argwhere(comp)
        c = idx.mean(0)
        t = {"ml": float(len(idx) * vml), "voxels": int(len(idx)),
             "longestAxialDiameterMm": longest_axial_diameter_mm(comp, pr, pc),
             "centroidVoxel": {"slice": float(c[0]), "row": float(c[1]), "column": float(c[2])}}
        if ipp_first is not None:
            t["centroidLpsMm"] = [float(ipp_first[0] + c[2] * pc), float(ipp_first[1] + c[1] * pr),
                                  float(ipp_first[2] + c[0] * sp)]
        tumours.append(t)
    tumours.sort(key=lambda t: -t["voxels"])  # stable: equal sizes keep raster order
    return {"liverMl": float((lab >= 1).sum() * vml), "tumourCount": nt,
            "tumourMl": float((lab == 2).sum() * vml), "tumours": tumours}
