#!/usr/bin/python3
"""Liver-tumour CT phantoms on real abdominal anatomy (issue 16). Every parameter: liver/README.md.

The base image is the real CT itself (TotalSegmentator's example, labelled slab k = 82..111, see anatomy.py):
each organ's HU is shifted to the draw's contrast phase (its real texture and partial volumes kept), lobulated
tumours and cysts are drawn inside the liver in mm, then the body is posed/scaled/deformed and resampled to an
axial acquisition grid (512^2 over 320-420 mm, 1-5 mm slices, slice profile integrated), blurred by the kernel's
PSF and given kernel-shaped noise, as the head-CT phantoms in ../phantoms.py.

Labels: 0 background, 1 liver (cysts included, as in LiTS), 2 tumour (metastasis or HCC). Cysts are mimics
(hypodense, not tumour). A study is a pure function of (split, seed); the random stream is [seed, 101, split].
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, asdict, field
from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from anatomy import (SPLIT_ID, TS, choose_source, Lesion, Pose, Source, body_centre_ras, draw_lesions, draw_pose, grid_points,
                     lesion_fraction, load_source, map_to_source, sample, slab_z_range, bilinear)

PHASES = ["native", "arterial", "portal"]
PHASE_P = [0.15, 0.30, 0.55]
# organ HU targets per phase (uniform ranges); organs not listed keep their real (non-contrast) HU
ORGAN_HU = {
    "native": {"liver": (45, 65), "spleen": (40, 50), "kidney": (28, 40), "aorta": (35, 50), "ivc": (35, 50),
               "portal": (35, 50), "pancreas": (35, 50)},
    "arterial": {"liver": (60, 85), "spleen": (80, 130), "kidney": (140, 220), "aorta": (220, 380),
                 "ivc": (50, 90), "portal": (90, 160), "pancreas": (90, 130)},
    "portal": {"liver": (95, 130), "spleen": (100, 130), "kidney": (150, 210), "aorta": (130, 190),
               "ivc": (110, 160), "portal": (150, 210), "pancreas": (80, 110)},
}
CT_KERNELS = {  # name: (in-plane PSF sigma mm, noise-correlation sigma mm, noise sigma range HU at 5 mm)
    "SOFT": (0.9, 1.0, (6.0, 10.0)),
    "STANDARD": (0.6, 0.7, (8.0, 14.0)),
    "SHARP": (0.35, 0.4, (15.0, 25.0)),
}
CT_WINDOW = (60.0, 400.0)  # centre, width: x = clip((HU + 140) / 400, 0, 1) (abdominal soft-tissue window)
MODEL_SIZE = 256
MODEL_SPACING = 1.5  # mm: 384 mm model field of view, the liver about a third of it


@dataclass
class CtLiverParams:
    phase: str
    kernel: str
    rows: int
    columns: int
    pixel_spacing: float
    slices: int
    slice_thickness: float
    fov_centre_lps: List[float]
    pose: Pose
    organ_hu: Dict[str, float]
    steatosis_hu: float
    liver_texture_hu: float
    noise_hu: float
    hu_offset: float
    tumour_kind: str  # none | metastasis | hcc
    lesions: List[Lesion]
    cysts: List[Lesion]


@dataclass
class CtLiverStudy:
    params: CtLiverParams
    hu: np.ndarray  # int16 [S, R, C]
    label: np.ndarray  # uint8 0/1/2 [S, R, C]
    instances: np.ndarray  # uint8 tumour index (1-based, params.lesions order) where the tumour is >= 50 % [S, R, C]
    ipp_first: List[float]
    iop: List[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def _tumour_contrast(rng: np.random.Generator, kind: str, phase: str, d_mm: float) -> Dict[str, float]:
    """HU relative to the enhanced liver: core/body, rim (metastasis ring, HCC capsule), necrosis for large ones."""
    if kind == "metastasis":
        body = {"native": -rng.uniform(8, 25), "arterial": -rng.uniform(10, 40), "portal": -rng.uniform(30, 70)}[phase]
        rim = {"native": 0.0, "arterial": rng.uniform(10, 40), "portal": rng.uniform(0, 25)}[phase]
    elif kind == "hcc":
        body = {"native": -rng.uniform(3, 15), "arterial": rng.uniform(15, 60), "portal": -rng.uniform(8, 30)}[phase]
        rim = {"native": 0.0, "arterial": 0.0, "portal": rng.uniform(5, 25)}[phase]  # capsule in the portal phase
    else:  # cyst: absolute HU, no rim
        return {"abs": float(rng.uniform(0, 20)), "rim": 0.0, "necrosis": 0.0, "mosaic": 0.0}
    necrosis = float(rng.uniform(0.3, 0.6)) if d_mm > 30 and rng.random() < 0.6 else 0.0
    return {"body": float(body), "rim": float(rim), "necrosis": necrosis,
            "mosaic": float(rng.uniform(3, 15)) if kind == "hcc" else float(rng.uniform(2, 6))}


def draw_ct_params(split: str, seed: int, src: Source, matrix_choices=(512,), max_slices: int = 40) -> CtLiverParams:
    rng = np.random.default_rng([seed, 101, SPLIT_ID[split]])
    phase = str(rng.choice(PHASES, p=PHASE_P))
    kernel = str(rng.choice(["SOFT", "STANDARD", "STANDARD", "SHARP"]))
    matrix = int(rng.choice(matrix_choices))
    fov = float(rng.uniform(320, 420))
    thick = float(rng.choice([1.0, 1.25, 2.0, 2.5, 3.0, 5.0, 5.0]))
    zlo, zhi = slab_z_range(src, 8.0)  # margin for pose and slice profile: never outside the labelled slab
    coverage = min(float(rng.uniform(40, zhi - zlo)), max_slices * thick)
    n = max(4, int(round(coverage / thick)))
    zc = float(rng.uniform(zlo + coverage / 2, max(zlo + coverage / 2, zhi - coverage / 2)))
    bc = body_centre_ras(src)
    centre = [float(-bc[0] + rng.uniform(-15, 15)), float(-bc[1] + rng.uniform(-15, 15)), zc]
    pose = draw_pose(rng)
    organ_hu = {k: float(rng.uniform(*v)) for k, v in ORGAN_HU[phase].items()}
    steat = float(rng.uniform(15, 40)) if rng.random() < 0.2 else 0.0  # fatty liver: lower parenchymal HU
    u = rng.random()
    kind = "none" if u < 0.1 else ("metastasis" if u < 0.65 else "hcc")
    if len(src.liver_idx) == 0:  # the liver-free lower slab: no tumour, no cyst
        kind = "none"
    if kind == "metastasis":
        nles = int(min(10, 1 + rng.geometric(0.35) - 1))
        lesions = draw_lesions(rng, src, "metastasis", nles, 5, 60, (0.1, 0.4))
    elif kind == "hcc":
        lesions = draw_lesions(rng, src, "hcc", int(rng.integers(1, 4)), 8, 100, (0.05, 0.25))
    else:
        lesions = []
    for les in lesions:
        les.contrast = _tumour_contrast(rng, les.kind, phase, les.diameter_mm)
    cysts = draw_lesions(rng, src, "cyst", int(rng.integers(1, 5)), 5, 40, (0.0, 0.05)) if rng.random() < 0.4 and len(src.liver_idx) else []
    for c in cysts:
        c.contrast = _tumour_contrast(rng, "cyst", phase, c.diameter_mm)
    nlo, nhi = CT_KERNELS[kernel][2]
    return CtLiverParams(
        phase=phase, kernel=kernel, rows=matrix, columns=matrix, pixel_spacing=fov / matrix, slices=n,
        slice_thickness=thick, fov_centre_lps=centre, pose=pose, organ_hu=organ_hu, steatosis_hu=steat,
        liver_texture_hu=float(rng.uniform(2, 6)),
        noise_hu=float(min(40.0, rng.uniform(nlo, nhi) * np.sqrt(5.0 / thick))), hu_offset=float(rng.normal(0, 3)),
        tumour_kind=kind, lesions=lesions, cysts=cysts)


def _phase_hu(src: Source, p: CtLiverParams) -> np.ndarray:
    """The real HU with each organ moved to the phase's level (median shift, texture and edges kept)."""
    hu = src.hu.copy()
    for organ, target in p.organ_hu.items():
        m = np.isin(src.labels, TS[organ])
        if not m.any():
            continue
        t = target - (p.steatosis_hu if organ == "liver" else 0.0)
        hu += ndimage.gaussian_filter(m.astype(np.float32), 0.6) * (t - float(np.median(src.hu[m])))
    return hu


# intrahepatic vessel mimics (label liver): a portal tree from the hilum and a hepatic-vein tree from the IVC,
# own stream [seed, 107, split] so every other draw keeps its value. Parameters: liver/README.md.
VESSEL_P = 0.9
VESSEL_RADII = (6.0, 4.0, 2.5, 1.5)  # mm per generation (x U(0.85, 1.15))
VESSEL_LEN = ((30, 55), (25, 50), (20, 40), (15, 30))  # mm per generation
VESSEL_DELTA = {  # HU vs the (non-fatty) liver parenchyma: portal tree, hepatic tree
    "native": ((-25, -8), (-25, -8)), "arterial": ((0, 40), (-20, -5)), "portal": ((20, 70), (20, 70))}


def _grow_tree(rng: np.random.Generator, src: Source, root: np.ndarray, gens: int, centre: np.ndarray):
    """Centre-line points [N, 3] (source RAS mm) and radii [N] of a branching tree of smooth curved tubes that
    stays inside the liver (paths steer back towards the liver centre at its edge; a branch that cannot ends)."""
    inv = np.linalg.inv(src.affine)
    depth_map = _liver_depth(src)

    def depth(q):
        v = np.round(inv[:3, :3] @ q + inv[:3, 3]).astype(int)
        if np.any(v < 0) or np.any(v >= np.array(depth_map.shape)):
            return 0.0
        return float(depth_map[tuple(v)])

    pts, rad = [], []
    d0 = centre - root
    d0 = d0 / max(np.linalg.norm(d0), 1e-6) + rng.normal(0, 0.3, 3)
    stack = [(root.astype(np.float64), d0 / np.linalg.norm(d0), 0)]
    while stack:
        p, d, g = stack.pop()
        r0 = VESSEL_RADII[g] * rng.uniform(0.85, 1.15)
        r1 = (VESSEL_RADII[g + 1] if g + 1 < gens else VESSEL_RADII[g] * 0.7) * rng.uniform(0.85, 1.15)
        L = rng.uniform(*VESSEL_LEN[g])
        n = int(L / 0.5)
        grown = 0
        for i in range(n):
            d = d + rng.normal(0, 0.04, 3)
            d = d / np.linalg.norm(d)
            q = p + 0.5 * d
            if depth(q) < 3.0:  # near the liver edge: take the deepest of a few turned directions
                cand = [d] + [d + rng.normal(0, 0.6, 3) for _ in range(8)]
                cand = [c / np.linalg.norm(c) for c in cand]
                dep = [depth(p + 0.5 * c) for c in cand]
                j = int(np.argmax(dep))
                if dep[j] <= 0.5:
                    break
                d = cand[j]
                q = p + 0.5 * d
            p = q
            pts.append(p.copy())
            rad.append(r0 + (r1 - r0) * i / max(n - 1, 1))
            grown += 1
        ok = grown * 0.5 >= 5.0
        if ok and g + 1 < gens:
            for sgn in ((1, -1, 0) if rng.random() < 0.3 else (1, -1)):
                ax = np.cross(d, rng.normal(0, 1, 3))
                ax /= max(np.linalg.norm(ax), 1e-6)
                a = np.deg2rad(rng.uniform(20, 45)) * sgn if sgn else np.deg2rad(rng.uniform(-10, 10))
                nd = d * np.cos(a) + np.cross(ax, d) * np.sin(a) + ax * np.dot(ax, d) * (1 - np.cos(a))
                stack.append((p.copy(), nd, g + 1))
    return np.array(pts, np.float32).reshape(-1, 3), np.array(rad, np.float32)


_DEPTH = {}


def _liver_depth(src: Source) -> np.ndarray:
    """Distance (mm) to the liver edge on the source grid (memoised per source)."""
    k = id(src)
    if k not in _DEPTH:
        _DEPTH[k] = ndimage.distance_transform_edt(src.liver >= 0.5) * float(abs(src.affine[0, 0]))
    return _DEPTH[k]


def draw_vessels(split: str, seed: int, src: Source, phase: str):
    """[(centre-line points, radii, HU delta vs liver)] for the portal and hepatic trees, or [] (p 1 - VESSEL_P, or
    a liver-free source)."""
    rng = np.random.default_rng([seed, 107, SPLIT_ID[split]])
    if len(src.liver_idx) == 0 or rng.random() >= VESSEL_P:
        return []
    liv_vox = src.liver_idx.astype(np.float64)
    to_ras = lambda v: src.affine[:3, :3] @ v + src.affine[:3, 3]  # noqa: E731
    centre = to_ras(liv_vox.mean(0))
    out = []
    for t, organ in enumerate(("portal", "ivc")):
        m = np.argwhere(np.isin(src.labels, TS[organ]))
        target = m.mean(0) if len(m) else liv_vox.mean(0)
        root = to_ras(liv_vox[int(np.argmin(((liv_vox - target) ** 2).sum(1)))])
        gens = 4 if rng.random() < 0.7 else 3
        pts, rad = _grow_tree(rng, src, root, gens, centre)
        delta = float(rng.uniform(*VESSEL_DELTA[phase][t]))
        if len(pts):
            out.append((pts, rad, delta))
    return out


def _vessel_fraction(vessels, ras: np.ndarray, liv: np.ndarray, soft_mm: float):
    """Per tree: tube fraction in [0, 1] at RAS points (linear edge ramp soft_mm wide), inside the liver only."""
    from scipy.spatial import cKDTree
    res = []
    m = liv > 0.02
    q = ras[m]
    for pts, rad, delta in vessels:
        f = np.zeros(ras.shape[:-1], np.float32)
        if len(q):
            dist, idx = cKDTree(pts).query(q, k=3, distance_upper_bound=float(rad.max()) + soft_mm)
            ok = np.isfinite(dist)
            rr = np.where(ok, rad[np.minimum(idx, len(rad) - 1)], 0.0)
            fv = np.clip(0.5 - (np.where(ok, dist, 1e9) - rr) / max(soft_mm, 1e-3), 0, 1).max(1)
            f[m] = fv
        res.append((f * liv, delta))
    return res


def _lesion_hu(les: Lesion, liver_hu: np.ndarray, rho: np.ndarray, tex: np.ndarray) -> np.ndarray:
    c = les.contrast
    if les.kind == "cyst":
        return np.full_like(rho, c["abs"])
    v = liver_hu + c["body"] + c["mosaic"] * tex
    v = v + c["rim"] * np.clip((rho - 0.75) / 0.2, 0, 1)
    if c["necrosis"] > 0:  # necrotic core: near water, ramps to the body HU
        w = np.clip((c["necrosis"] - rho) / 0.15 + 0.5, 0, 1)
        v = v * (1 - w) + w * 15.0
    return v


def generate_ct(split: str, seed: int, matrix_choices=(512,), max_slices: int = 40,
                slice_subset: Optional[int] = None) -> CtLiverStudy:
    """slice_subset: render only that many evenly spread slices of the series (training data, cheaper)."""
    src, negative = choose_source(split, seed, 105)
    p = draw_ct_params(split, seed, src, matrix_choices, max_slices)
    sid = SPLIT_ID[split]
    R, C, S = p.rows, p.columns, p.slices
    ps, sp = p.pixel_spacing, p.slice_thickness
    pts, ipp0 = grid_points(R, C, S, ps, sp, np.array(p.fov_centre_lps))
    if slice_subset is not None and slice_subset < S:
        keep = np.unique(np.linspace(0, S - 1, slice_subset).round().astype(int))
        pts = pts[keep]
    S_out = pts.shape[0]
    hu_src = _phase_hu(src, p)
    vessels = draw_vessels(split, seed, src, p.phase)
    inv = np.linalg.inv(src.affine)
    centre_ras = body_centre_ras(src)
    nsub = max(1, int(round(sp / 1.5)))
    offs = (np.arange(nsub) + 0.5) / nsub * sp - sp / 2
    trng = np.random.default_rng([seed, 103, sid])
    tex_seed = int(trng.integers(1 << 30))
    liv_tex_seed = int(trng.integers(1 << 30))
    acc_hu = np.zeros(pts.shape[:-1], np.float32)
    acc_liver = np.zeros_like(acc_hu)
    acc_tum = np.zeros((max(1, len(p.lesions)),) + acc_hu.shape, np.float32)
    for off in offs:
        q = pts.copy()
        q[..., 2] += off
        ras = map_to_source(q, p.pose, centre_ras, [seed, 102, sid])
        vox = ras @ inv[:3, :3].T.astype(np.float32) + inv[:3, 3].astype(np.float32)
        hu = sample(hu_src, vox, -1000.0)
        liv = np.clip(sample(src.liver, vox, 0.0), 0, 1)
        tex = _smooth_tex(tex_seed, ras)
        liver_hu = hu  # the enhanced parenchyma (with its real texture) under the lesion
        hu = hu + liv * p.liver_texture_hu * _smooth_tex(liv_tex_seed, ras)
        for f, delta in _vessel_fraction(vessels, ras, liv, ps):  # blood vs the parenchyma (fat-free level)
            hu = hu * (1 - f) + f * (liver_hu + p.steatosis_hu + delta)
        for les in p.cysts:
            f, rho = lesion_fraction(les, ras, ps)
            f *= liv
            hu = hu * (1 - f) + f * _lesion_hu(les, liver_hu, rho, tex)
        for i, les in enumerate(p.lesions):
            f, rho = lesion_fraction(les, ras, ps)
            f *= np.clip(2 * liv - 0.2, 0, 1)  # inside the liver (a capsule-bulging tumour is cut at the edge)
            hu = hu * (1 - f) + f * _lesion_hu(les, liver_hu, rho, tex)
            acc_tum[i] += f
        acc_hu += hu
        acc_liver += liv
    acc_hu /= nsub
    acc_liver /= nsub
    acc_tum /= nsub
    psf, ncorr, _ = CT_KERNELS[p.kernel]
    hu = ndimage.gaussian_filter(acc_hu, (0, psf / ps, psf / ps), mode="nearest")
    nrng = np.random.default_rng([seed, 104, sid])
    noise = ndimage.gaussian_filter(nrng.normal(0, 1, hu.shape).astype(np.float32), (0, ncorr / ps, ncorr / ps))
    noise *= p.noise_hu / max(float(noise.std()), 1e-6)
    body = acc_hu > -900
    hu = hu + noise * body + p.hu_offset
    ct = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    label = (acc_liver >= 0.5).astype(np.uint8)
    inst = np.zeros(label.shape, np.uint8)
    if p.lesions:
        best = acc_tum.argmax(0)
        tum = acc_tum.max(0) >= 0.5
        label[tum] = 2
        inst[tum] = best[tum] + 1
    ipp = [float(x) for x in ipp0]
    return CtLiverStudy(params=p, hu=ct, label=label, instances=inst, ipp_first=ipp)


def _smooth_tex(seed: int, ras: np.ndarray) -> np.ndarray:
    from anatomy import _smooth_field
    return np.clip(_smooth_field(np.random.default_rng(seed), ras, 6, (6, 25)), -2, 2)


def ct_window(hu: np.ndarray) -> np.ndarray:
    c, w = CT_WINDOW
    return np.clip((hu.astype(np.float32) - (c - w / 2)) / w, 0, 1)


def to_model_grid(vol: np.ndarray, ps: float, size: int = MODEL_SIZE, spacing: float = MODEL_SPACING) -> np.ndarray:
    S, R, C = vol.shape
    k = np.arange(size) - (size - 1) / 2
    return bilinear(vol.astype(np.float32), (R - 1) / 2 + k * spacing / ps, (C - 1) / 2 + k * spacing / ps)


def ct_model_inputs(st: CtLiverStudy, size: int = MODEL_SIZE, spacing: float = MODEL_SPACING) -> Dict[str, np.ndarray]:
    """Model-grid slices: windowed CT [S, size, size] float32, labels [S, size, size] uint8 (nearest by fraction)."""
    ps = st.params.pixel_spacing
    x = to_model_grid(ct_window(st.hu), ps, size, spacing)
    liv = to_model_grid((st.label >= 1).astype(np.float32), ps, size, spacing) >= 0.5
    tum = to_model_grid((st.label == 2).astype(np.float32), ps, size, spacing) >= 0.5
    y = liv.astype(np.uint8)
    y[tum] = 2
    return {"x": x, "y": y}


def params_json(p) -> Dict:
    return json.loads(json.dumps(asdict(p), default=float))


def main():
    ap = argparse.ArgumentParser(description="render a few CT liver phantoms and print their parameters")
    ap.add_argument("--split", default="train")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--check-offset", action="store_true", help="print the label/CT agreement per slice offset")
    a = ap.parse_args()
    if a.check_offset:
        from anatomy import check_label_offset
        r = check_label_offset()
        for off in (0, 40, 81, 82):
            print(off, r[off])
        return
    for s in a.seeds:
        t = time.time()
        st = generate_ct(a.split, s)
        p = st.params
        liv = st.label >= 1
        print(f"seed {s}: {p.phase} {p.kernel} {p.rows}x{p.columns}x{p.slices} @ {p.pixel_spacing:.2f}x{p.slice_thickness} mm,"
              f" {p.tumour_kind} x{len(p.lesions)} d={[round(l.diameter_mm) for l in p.lesions]} cysts {len(p.cysts)};"
              f" liver median {np.median(st.hu[liv]) if liv.any() else float('nan'):.0f} HU,"
              f" tumour voxels {int((st.label == 2).sum())}; {time.time() - t:.1f} s")


if __name__ == "__main__":
    main()
