#!/usr/bin/python3
"""Liver-tumour MRI phantoms (issue 16), made SEPARATELY from the CT phantoms. Every parameter: liver/README.md.

Anatomy: the same single real abdomen as the CT phantoms (anatomy.py: TotalSegmentator's example CT and its label
map, labelled slab only) -- there is no second real abdomen with an organ map in this repository or in Debian.
What makes the MRI set unpaired by construction: every draw (pose, scale, deformation, slab position, tumour
type/count/size/location/shape, cysts) comes from its own random stream [seed, 201..205, split], disjoint from the
CT streams [seed, 101..104, split], and the image is rendered from tissue classes, not from the CT's HU: no MRI
phantom is the twin of a CT phantom (no shared pose, no shared tumours). It is still one subject's anatomy (a real
limitation: see README).

Contrast: signal per tissue class and sequence (T1-weighted GRE, T2-weighted FSE with or without fat saturation,
T1 post-contrast portal-venous fat-saturated GRE), relative to liver = 1; tumour and cyst signals per sequence;
smooth coil bias field; Rician noise; no motion. Labels as the CT: 0 background, 1 liver (cysts included),
2 tumour.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from anatomy import (CLASSES, SPLIT_ID, choose_source, Lesion, Pose, Source, _smooth_field, bilinear, body_centre_ras,
                     draw_lesions, draw_pose, grid_points, lesion_fraction, load_source, map_to_source, sample,
                     slab_z_range)

SEQUENCES = ["T1", "T2", "T1post"]
# tissue signal relative to liver (uniform ranges) per sequence; T2 fat depends on fat saturation
TISSUE = {
    "T1": {"air": (0, 0), "lung": (0.02, 0.05), "fat": (1.3, 1.8), "muscle": (0.55, 0.7), "soft": (0.6, 0.8),
           "bone": (0.9, 1.3), "liver": (1, 1), "spleen": (0.7, 0.8), "kidney": (0.6, 0.8), "fluid": (0.15, 0.3),
           "vessel": (0.2, 0.5), "pancreas": (1.0, 1.2), "bowel_gas": (0.0, 0.03), "cord": (0.6, 0.7)},
    "T2": {"air": (0, 0), "lung": (0.03, 0.08), "fat": (0.8, 1.5), "muscle": (0.6, 0.8), "soft": (0.9, 1.3),
           "bone": (0.5, 0.9), "liver": (1, 1), "spleen": (1.6, 2.2), "kidney": (1.6, 2.2), "fluid": (4.0, 7.0),
           "vessel": (0.1, 0.4), "pancreas": (1.0, 1.3), "bowel_gas": (0.0, 0.03), "cord": (1.2, 1.6)},
    "T1post": {"air": (0, 0), "lung": (0.02, 0.05), "fat": (0.2, 0.4), "muscle": (0.5, 0.7), "soft": (0.6, 0.9),
               "bone": (0.4, 0.7), "liver": (1, 1), "spleen": (0.9, 1.1), "kidney": (1.3, 1.8),
               "fluid": (0.1, 0.25), "vessel": (1.3, 1.8), "pancreas": (0.9, 1.1), "bowel_gas": (0.0, 0.03),
               "cord": (0.5, 0.7)},
}
T2_FATSAT_FAT = (0.2, 0.4)
# lesion signal relative to liver: body, rim (post-contrast ring / capsule)
LESION = {
    "metastasis": {"T1": ((0.4, 0.7), (0, 0)), "T2": ((1.5, 2.5), (0, 0)), "T1post": ((0.45, 0.8), (0.2, 0.5))},
    "hcc": {"T1": ((0.6, 1.1), (0, 0)), "T2": ((1.2, 1.8), (0, 0)), "T1post": ((0.6, 0.85), (0.1, 0.35))},
    "cyst": {"T1": ((0.15, 0.3), (0, 0)), "T2": ((4.0, 7.0), (0, 0)), "T1post": ((0.1, 0.25), (0, 0))},
}
MODEL_SIZE = 256
MODEL_SPACING = 1.5


@dataclass
class MrLiverParams:
    sequence: str
    fat_sat: bool
    rows: int
    columns: int
    pixel_spacing: float
    slices: int
    slice_thickness: float
    slice_gap: float
    fov_centre_lps: List[float]
    pose: Pose
    tissue: Dict[str, float]
    texture: float
    bias_strength: float
    snr: float
    scale: float
    tumour_kind: str
    lesions: List[Lesion]
    cysts: List[Lesion]


@dataclass
class MrLiverStudy:
    params: MrLiverParams
    img: np.ndarray  # uint16 [S, R, C]
    label: np.ndarray  # uint8 0/1/2
    instances: np.ndarray  # uint8 tumour index (1-based)
    ipp_first: List[float]
    iop: List[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def _lesion_contrast(rng, kind: str, seq: str, d_mm: float) -> Dict[str, float]:
    (b0, b1), (r0, r1) = LESION[kind][seq]
    c = {"body": float(rng.uniform(b0, b1)), "rim": float(rng.uniform(r0, r1)) if r1 > 0 else 0.0,
         "necrosis": 0.0, "mosaic": 0.0 if kind == "cyst" else float(rng.uniform(0.03, 0.12))}
    if kind != "cyst" and d_mm > 30 and rng.random() < 0.6:  # necrotic/cystic core: fluid-like
        c["necrosis"] = float(rng.uniform(0.3, 0.6))
        c["necrosis_signal"] = {"T1": 0.3, "T2": 3.5, "T1post": 0.2}[seq]
    return c


def draw_mr_params(split: str, seed: int, src: Source, matrix_choices=(256, 320), max_slices: int = 40) -> MrLiverParams:
    rng = np.random.default_rng([seed, 201, SPLIT_ID[split]])
    seq = str(rng.choice(SEQUENCES, p=[0.3, 0.35, 0.35]))
    fat_sat = bool(seq == "T1post" or (seq == "T2" and rng.random() < 0.5))
    matrix = int(rng.choice(matrix_choices))
    fov = float(rng.uniform(340, 420))
    thick = float(rng.choice([3.0, 4.0, 5.0, 6.0, 7.0] if seq != "T1post" else [2.0, 2.5, 3.0, 4.0]))
    gap = float(rng.choice([0.0, 0.0, 0.5, 1.0])) if seq == "T2" else 0.0
    zlo, zhi = slab_z_range(src, 8.0)
    coverage = min(float(rng.uniform(40, zhi - zlo)), max_slices * (thick + gap))
    n = max(4, int(round(coverage / (thick + gap))))
    zc = float(rng.uniform(zlo + coverage / 2, max(zlo + coverage / 2, zhi - coverage / 2)))
    bc = body_centre_ras(src)
    centre = [float(-bc[0] + rng.uniform(-15, 15)), float(-bc[1] + rng.uniform(-15, 15)), zc]
    pose = draw_pose(rng)
    tissue = {k: float(rng.uniform(*v)) for k, v in TISSUE[seq].items()}
    if seq == "T2" and fat_sat:
        tissue["fat"] = float(rng.uniform(*T2_FATSAT_FAT))
    u = rng.random()
    kind = "none" if u < 0.1 else ("metastasis" if u < 0.65 else "hcc")
    if len(src.liver_idx) == 0:  # the liver-free lower slab: no tumour, no cyst
        kind = "none"
    lrng = np.random.default_rng([seed, 203, SPLIT_ID[split]])
    if kind == "metastasis":
        lesions = draw_lesions(lrng, src, "metastasis", int(min(10, lrng.geometric(0.35))), 5, 60, (0.1, 0.4))
    elif kind == "hcc":
        lesions = draw_lesions(lrng, src, "hcc", int(lrng.integers(1, 4)), 8, 100, (0.05, 0.25))
    else:
        lesions = []
    for les in lesions:
        les.contrast = _lesion_contrast(lrng, les.kind, seq, les.diameter_mm)
    cysts = draw_lesions(lrng, src, "cyst", int(lrng.integers(1, 5)), 5, 40, (0.0, 0.05)) if lrng.random() < 0.4 and len(src.liver_idx) else []
    for c in cysts:
        c.contrast = _lesion_contrast(lrng, "cyst", seq, c.diameter_mm)
    return MrLiverParams(sequence=seq, fat_sat=fat_sat, rows=matrix, columns=matrix, pixel_spacing=fov / matrix,
                         slices=n, slice_thickness=thick, slice_gap=gap, fov_centre_lps=centre, pose=pose,
                         tissue=tissue, texture=float(rng.uniform(0.02, 0.06)),
                         bias_strength=float(rng.uniform(0.1, 0.45)), snr=float(rng.uniform(12, 40)),
                         scale=float(np.exp(rng.uniform(np.log(300), np.log(3000)))), tumour_kind=kind,
                         lesions=lesions, cysts=cysts)


def _lesion_signal(les: Lesion, rho: np.ndarray, tex: np.ndarray) -> np.ndarray:
    c = les.contrast
    v = c["body"] * (1 + c["mosaic"] * tex) + c["rim"] * np.clip((rho - 0.75) / 0.2, 0, 1)
    if c["necrosis"] > 0:
        w = np.clip((c["necrosis"] - rho) / 0.15 + 0.5, 0, 1)
        v = v * (1 - w) + w * c["necrosis_signal"]
    return v


def generate_mr(split: str, seed: int, matrix_choices=(256, 320), max_slices: int = 40,
                slice_subset: Optional[int] = None) -> MrLiverStudy:
    src, negative = choose_source(split, seed, 205)
    p = draw_mr_params(split, seed, src, matrix_choices, max_slices)
    sid = SPLIT_ID[split]
    R, C, S = p.rows, p.columns, p.slices
    ps, sp = p.pixel_spacing, p.slice_thickness + p.slice_gap
    pts, ipp0 = grid_points(R, C, S, ps, sp, np.array(p.fov_centre_lps))
    if slice_subset is not None and slice_subset < S:
        pts = pts[np.unique(np.linspace(0, S - 1, slice_subset).round().astype(int))]
    inv = np.linalg.inv(src.affine)
    centre_ras = body_centre_ras(src)
    nsub = max(1, int(round(p.slice_thickness / 1.5)))
    offs = (np.arange(nsub) + 0.5) / nsub * p.slice_thickness - p.slice_thickness / 2
    frng = np.random.default_rng([seed, 204, sid])
    tex_seed, bias_seed = int(frng.integers(1 << 30)), int(frng.integers(1 << 30))
    les_tex_seed = int(frng.integers(1 << 30))
    signal = np.array([p.tissue[k] for k in CLASSES], np.float32)
    acc = np.zeros(pts.shape[:-1], np.float32)
    acc_liver = np.zeros_like(acc)
    acc_tum = np.zeros((max(1, len(p.lesions)),) + acc.shape, np.float32)
    for off in offs:
        q = pts.copy()
        q[..., 2] += off
        ras = map_to_source(q, p.pose, centre_ras, [seed, 202, sid])
        vox = ras @ inv[:3, :3].T.astype(np.float32) + inv[:3, 3].astype(np.float32)
        s = np.zeros_like(acc)
        for k in range(len(CLASSES)):
            if signal[k] > 0:
                s += signal[k] * np.clip(sample(src.classes[k], vox, 1.0 if CLASSES[k] == "air" else 0.0), 0, 1)
        tex = np.clip(_smooth_field(np.random.default_rng(tex_seed), ras, 6, (6, 25)), -2, 2)
        s *= 1 + p.texture * tex
        liv = np.clip(sample(src.liver, vox, 0.0), 0, 1)
        ltex = np.clip(_smooth_field(np.random.default_rng(les_tex_seed), ras, 6, (4, 15)), -2, 2)
        for les in p.cysts:
            f, rho = lesion_fraction(les, ras, ps)
            f *= liv
            s = s * (1 - f) + f * _lesion_signal(les, rho, ltex)
        for i, les in enumerate(p.lesions):
            f, rho = lesion_fraction(les, ras, ps)
            f *= np.clip(2 * liv - 0.2, 0, 1)
            s = s * (1 - f) + f * _lesion_signal(les, rho, ltex)
            acc_tum[i] += f
        acc += s
        acc_liver += liv
    acc /= nsub
    acc_liver /= nsub
    acc_tum /= nsub
    # coil bias (smooth multiplicative field over the body, same draw through the slab), Rician noise, no motion
    bias = np.exp(p.bias_strength * np.clip(_smooth_field(np.random.default_rng(bias_seed), pts, 3, (150, 400)), -2, 2))
    acc = ndimage.gaussian_filter(acc * bias, (0, 0.5, 0.5))  # k-space truncation (mild in-plane blur)
    nrng = np.random.default_rng([seed, 205, sid])
    sigma = 1.0 / p.snr  # liver = 1
    img = np.sqrt((acc + nrng.normal(0, sigma, acc.shape)) ** 2 + nrng.normal(0, sigma, acc.shape) ** 2)
    img = np.clip(np.round(img * p.scale), 0, 65535).astype(np.uint16)
    label = (acc_liver >= 0.5).astype(np.uint8)
    inst = np.zeros(label.shape, np.uint8)
    if p.lesions:
        tum = acc_tum.max(0) >= 0.5
        label[tum] = 2
        inst[tum] = acc_tum.argmax(0)[tum] + 1
    return MrLiverStudy(params=p, img=img, label=label, instances=inst, ipp_first=[float(x) for x in ipp0])


def mr_normalise(img: np.ndarray) -> np.ndarray:
    """Per-volume: divide by the median of the foreground (voxels above the volume mean), clip [0, 5]."""
    x = img.astype(np.float32)
    fg = x[x > x.mean()]
    return np.clip(x / max(float(np.median(fg)) if fg.size else 1.0, 1e-6), 0, 5)


def mr_model_inputs(st: MrLiverStudy, size: int = MODEL_SIZE, spacing: float = MODEL_SPACING) -> Dict[str, np.ndarray]:
    ps = st.params.pixel_spacing
    S, R, C = st.img.shape
    k = np.arange(size) - (size - 1) / 2
    g = lambda v: bilinear(v.astype(np.float32), (R - 1) / 2 + k * spacing / ps, (C - 1) / 2 + k * spacing / ps)  # noqa
    x = g(mr_normalise(st.img))
    liv = g(st.label >= 1) >= 0.5
    tum = g(st.label == 2) >= 0.5
    y = liv.astype(np.uint8)
    y[tum] = 2
    return {"x": x, "y": y}


def main():
    ap = argparse.ArgumentParser(description="render a few MRI liver phantoms and print their parameters")
    ap.add_argument("--split", default="train")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    a = ap.parse_args()
    for s in a.seeds:
        t = time.time()
        st = generate_mr(a.split, s)
        p = st.params
        liv = st.label >= 1
        print(f"seed {s}: {p.sequence}{' FS' if p.fat_sat else ''} {p.rows}x{p.columns}x{p.slices} @ {p.pixel_spacing:.2f}x"
              f"{p.slice_thickness}+{p.slice_gap} mm, {p.tumour_kind} x{len(p.lesions)} d={[round(l.diameter_mm) for l in p.lesions]}"
              f" cysts {len(p.cysts)}; liver median {np.median(st.img[liv]) / p.scale if liv.any() else float('nan'):.2f} x scale,"
              f" tumour voxels {int((st.label == 2).sum())}; {time.time() - t:.1f} s")


if __name__ == "__main__":
    main()
