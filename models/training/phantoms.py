#!/usr/bin/python3
"""Deterministic DWI/ADC stroke phantoms from real anatomy and real lesion maps.

Anatomy: Colin27 T1 (mricron-data `ch2.nii.gz`, 1 mm MNI) segmented into soft GM / WM / CSF / scalp
fractions (intensity ramps inside `ch2bet.nii.gz`). Lesions: the 1,449 acute lesion maps of the Stroke
Outcome Optimization Project (OpenNeuro ds004889 via github neurolabusc/StrokeOutcomeOptimizationProjectDemo,
MNI 157x189x136 @ 1 mm), placed on the Colin27 grid by their affines.

Physics: S_b = sum_t f_t * S0_t * exp(-b * ADC_t); the scanner's ADC map is computed from the noisy b0 and
b images like a two-point scanner fit. Every parameter is listed in models/training/README.md.

All coordinates are DICOM patient coordinates (LPS, mm). The acquisition grid is axial, ImageOrientationPatient
1\\0\\0\\0\\1\\0: columns go patient right -> left (+x), rows anterior -> posterior (+y), slices ascend (+z).
Volumes are slice-major then row-major: vol[z, r, c].

Everything is a pure function of (split, seed): generate_study(split, seed) gives the same study on any machine.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, asdict, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import nibabel as nib
from scipy import ndimage

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = HERE / "cache"
COLIN = "/usr/share/mricron/templates/ch2.nii.gz"
COLIN_BET = "/usr/share/mricron/templates/ch2bet.nii.gz"
LESION_DIR = Path(os.environ.get("STROKE_SHARED_DATA", str(REPO.parent / "shared" / "data"))) / "lesion-maps"
SPLITS_FILE = HERE / "splits.json"

MODEL_SIZE = 128
MODEL_SPACING = 2.0
NO_LESION_FRACTION = 0.15


# ----------------------------------------------------------------------------------------------------------
# Splits: by subject, decided from a hash of the subject id alone, before anything else.
# ----------------------------------------------------------------------------------------------------------
def subject_ids() -> List[str]:
    ids = sorted(p.name.split("_lesion")[0] for p in LESION_DIR.glob("bwsrsub-*_lesion.nii.gz"))
    return ids


def split_of(subject: str) -> str:
    h = int(hashlib.sha256(subject.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if h < 0.70 else ("val" if h < 0.85 else "test")


def make_splits() -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {"train": [], "val": [], "test": []}
    for s in subject_ids():
        out[split_of(s)].append(s)
    return out


def load_splits() -> Dict[str, List[str]]:
    if SPLITS_FILE.exists():
        return json.loads(SPLITS_FILE.read_text())["subjects"]
    sp = make_splits()
    SPLITS_FILE.write_text(json.dumps({
        "rule": "sha256(subject id) first 8 hex digits / 0xFFFFFFFF: <0.70 train, <0.85 val, else test",
        "source": "lesion-maps/bwsrsub-*_lesion.nii.gz (SOOP, OpenNeuro ds004889)",
        "counts": {k: len(v) for k, v in sp.items()},
        "subjects": sp,
    }, indent=1) + "\n")
    return sp


# ----------------------------------------------------------------------------------------------------------
# Anatomy on the Colin27 grid (181x217x181, RAS, x = i-90, y = j-125, z = k-71)
# ----------------------------------------------------------------------------------------------------------
COLIN_ORIGIN = np.array([-90.0, -125.0, -71.0])


def load_anatomy() -> np.ndarray:
    """Soft tissue fractions [4, 181, 217, 181] float32: GM, WM, CSF, extra-cerebral soft tissue (scalp)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / "anatomy_v1.npy"
    if f.exists():
        return np.load(f, mmap_mode="r")
    t1 = nib.load(COLIN).get_fdata().astype(np.float32)
    bet = nib.load(COLIN_BET).get_fdata() > 0
    bet = ndimage.binary_fill_holes(bet)
    t = ndimage.gaussian_filter(t1, 0.6)
    wm = np.clip((t - 90.0) / 18.0, 0, 1)
    csf = np.clip((62.0 - t) / 24.0, 0, 1)
    gm = np.clip(1.0 - wm - csf, 0, 1)
    brain = bet.astype(np.float32)
    gm, wm, csf = gm * brain, wm * brain, csf * brain
    head = ndimage.binary_fill_holes(ndimage.binary_closing(t1 > 25, iterations=3))
    skull = ndimage.binary_dilation(bet, iterations=3) & ~bet  # bone and dura: no signal
    scalp = (head & ~ndimage.binary_dilation(bet, iterations=3)).astype(np.float32) * np.clip(t1 / 60.0, 0, 1)
    scalp[skull] = 0
    a = np.stack([gm, wm, csf, scalp]).astype(np.float32)
    a = ndimage.gaussian_filter(a, (0, 0.5, 0.5, 0.5))  # anti-alias for 2 mm pixels
    np.save(f, a)
    return np.load(f, mmap_mode="r")


def load_lesion(subject: str) -> np.ndarray:
    """Lesion map on the Colin27 grid (float32 0..1). Lesion grid: x = 78 - i, y = j - 112, z = k - 50 (RAS)."""
    img = nib.load(str(LESION_DIR / f"{subject}_lesion.nii.gz"))
    aff = img.affine
    assert np.allclose(aff[:3, :3], np.diag([-1, 1, 1])) and np.allclose(aff[:3, 3], [78, -112, -50]), aff
    les = np.asarray(img.dataobj).astype(np.float32)
    out = np.zeros((181, 217, 181), np.float32)
    # colin index = world - COLIN_ORIGIN: ci = 78 - i + 90 = 168 - i, cj = j - 112 + 125 = j + 13, ck = k + 21
    out[12:169, 13:202, 21:157] = les[::-1, :, :]
    return out


# ----------------------------------------------------------------------------------------------------------
# Study parameters
# ----------------------------------------------------------------------------------------------------------
@dataclass
class StudyParams:
    seed: int
    split: str
    subject: Optional[str]
    b_value: float
    rows: int
    columns: int
    pixel_spacing: float
    slices: int
    slice_thickness: float
    slice_spacing: float
    fov_centre_lps: List[float]
    rotation_deg: List[float]
    scale: List[float]
    shift_mm: List[float]
    deform_mm: float
    adc_gm: float
    adc_wm: float
    adc_csf: float
    adc_scalp: float
    adc_variation: float
    s0_gm: float
    s0_wm: float
    s0_csf: float
    s0_scalp: float
    lesion_adc_reduction: float
    lesion_t2_shine: float
    snr_b0: float
    dwi_noise_factor: float
    bias_strength: float
    b0_scale: float
    dwi_scale: float
    mimic_subject: Optional[str] = None
    mimic_t2_increase: float = 0.0
    mimic_adc_increase: float = 0.0
    # realism 2 (lesion models 0.3.0; drawn from their own stream so that realism-1 studies, the committed
    # fixtures and every CT phantom stay as they were): what a real healthy volunteer showed that realism 1 lacked
    realism: int = 1
    kurt_gm: float = 0.0  # diffusion kurtosis: S = S0 exp(-bD + (bD)^2 K / 6); apparent ADC falls with b
    kurt_wm: float = 0.0
    kurt_lesion_factor: float = 1.0
    coil_strength: float = 0.0  # multi-channel head coil: brighter towards the surface, × exp(c (r^2 - 0.5))
    coil_dir: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # and brighter on one side
    coil_dir_strength: float = 0.0
    pileups: List[List[float]] = field(default_factory=list)  # EPI susceptibility pile-up: [x, y, z RAS mm, sigma mm, gain]


def draw_params(split: str, seed: int, subjects: List[str], matrix_choices=(128, 144, 160, 192, 224),
                realism: int = 1) -> StudyParams:
    p = _draw_params_r1(split, seed, subjects, matrix_choices)
    if realism >= 2:
        _add_realism2(p, split, seed)
    return p


# Where EPI susceptibility pile-up sits in a real head (RAS mm, Colin27/MNI): temporal poles and the inferior temporal
# lobes next to the mastoid air, orbitofrontal cortex over the frontal sinus, the pons/cerebellum near the skull base.
PILEUP_SITES = [(-38, 12, -32), (38, 12, -32), (-45, -10, -28), (45, -10, -28), (-12, 40, -20), (12, 40, -20),
                (0, 50, -12), (0, -30, -40), (-30, -60, -40), (30, -60, -40)]


def _add_realism2(p: StudyParams, split: str, seed: int) -> None:
    """Realism-2 draws (own stream [seed, 19, split]): high b, coarse EPI matrices, kurtosis, strong receive-coil
    profile, susceptibility pile-up. Each came from the real Siemens XA30 volunteer (b = 2500, 72 x 72 @ 3 mm),
    on which the realism-1 models called 29-126 mL of healthy brain "lesion"."""
    r = np.random.default_rng([seed, 19, {"train": 1, "val": 2, "test": 3}[split]])
    p.realism = 2
    if r.random() < 0.2:
        p.b_value = float(r.choice([2500, 3000]))
    if r.random() < 0.3:  # coarse EPI matrix (72-112 over 220-256 mm: 2-3.5 mm pixels)
        m = int(r.choice([72, 80, 96, 112]))
        fov = float(r.uniform(220, 256))
        p.rows = p.columns = m
        p.pixel_spacing = float(min(3.5, fov / m))
    p.kurt_gm = float(r.uniform(0.4, 0.8))
    p.kurt_wm = float(r.uniform(0.5, 1.0))
    p.kurt_lesion_factor = float(r.uniform(1.1, 1.5))  # acute lesions: higher kurtosis
    if r.random() < 0.7:
        p.coil_strength = float(r.uniform(0.2, 1.3))
        a = float(r.uniform(0, 2 * np.pi))
        # mostly posterior (the patient lies on the coil's posterior elements), any direction possible
        v = np.array([np.cos(a) * 0.5, -abs(np.sin(a)) if r.random() < 0.7 else abs(np.sin(a)), float(r.normal(0, 0.3))])
        p.coil_dir = [float(x) for x in v / np.linalg.norm(v)]
        p.coil_dir_strength = float(r.uniform(0, 0.6))
    n = int(r.choice([0, 0, 1, 2, 3, 4, 6]))
    for _ in range(n):
        c = np.array(PILEUP_SITES[int(r.integers(len(PILEUP_SITES)))], float) + r.normal(0, 6, 3)
        p.pileups.append([float(c[0]), float(c[1]), float(c[2]), float(r.uniform(4, 10)), float(r.uniform(0.4, 2.0))])


def _draw_params_r1(split: str, seed: int, subjects: List[str], matrix_choices=(128, 144, 160, 192, 224)) -> StudyParams:
    rng = np.random.default_rng([seed, {"train": 1, "val": 2, "test": 3}[split]])
    subject = None if rng.random() < NO_LESION_FRACTION else subjects[int(rng.integers(len(subjects)))]
    u = rng.random()
    b = float(rng.choice([800, 900, 1000, 1000, 1000])) if u < 0.8 else float(rng.choice([1500, 2000]))
    matrix = int(rng.choice(matrix_choices))
    fov = float(rng.uniform(220, 256))
    ps = min(2.0, max(1.0, fov / matrix))
    thick = float(rng.choice([2.0, 3.0, 4.0, 5.0, 5.0, 6.0]))
    gap = float(rng.choice([0.0, 0.0, 0.5, 1.0])) if thick >= 3 else 0.0
    spacing = thick + gap
    coverage = float(rng.uniform(130, 160)) if rng.random() < 0.7 else float(rng.uniform(60, 120))
    coverage = min(coverage, 34 * spacing)  # at most ~34 slices: bounded cost, typical clinical DWI
    n = max(6, int(round(coverage / spacing)))
    # slab centre: brain centre (LPS) plus offsets; partial coverage slabs land anywhere along z
    zc = 8.0 + float(rng.uniform(-1, 1)) * max(0.0, (150 - coverage) / 2)
    centre = [float(rng.uniform(-8, 8)), 18.0 + float(rng.uniform(-10, 10)), zc]
    return StudyParams(
        seed=seed, split=split, subject=subject, b_value=b, rows=matrix, columns=matrix, pixel_spacing=ps,
        slices=n, slice_thickness=thick, slice_spacing=spacing, fov_centre_lps=centre,
        rotation_deg=[float(rng.normal(0, 7)), float(rng.normal(0, 3)), float(rng.normal(0, 4))],
        scale=[float(x) for x in rng.uniform(0.92, 1.08, 3)],
        shift_mm=[float(x) for x in rng.normal(0, 3, 3)],
        deform_mm=float(rng.uniform(0, 3)),
        adc_gm=float(rng.normal(0.80, 0.05)), adc_wm=float(rng.normal(0.70, 0.05)),
        adc_csf=float(rng.normal(3.0, 0.15)), adc_scalp=float(rng.uniform(0.9, 1.5)),
        adc_variation=float(rng.uniform(0.03, 0.10)),
        s0_gm=float(rng.normal(1.15, 0.05)), s0_wm=float(rng.normal(0.85, 0.05)),
        s0_csf=float(rng.uniform(1.8, 2.6)), s0_scalp=float(rng.uniform(0.15, 0.5)),
        lesion_adc_reduction=float(rng.uniform(0.30, 0.60)), lesion_t2_shine=float(rng.uniform(0.05, 0.35)),
        snr_b0=float(rng.uniform(15, 45)), dwi_noise_factor=float(rng.uniform(0.5, 1.0)),
        bias_strength=float(rng.uniform(0.05, 0.30)),
        b0_scale=float(np.exp(rng.uniform(np.log(200), np.log(2000)))),
        dwi_scale=float(np.exp(rng.uniform(np.log(0.5), np.log(3.0)))),
        # T2 shine-through mimic (old/vasogenic lesion: bright on b0 and DWI, ADC normal or raised; NOT in the truth)
        mimic_subject=(subjects[int(rng.integers(len(subjects)))] if rng.random() < 0.25 else None),
        mimic_t2_increase=float(rng.uniform(0.3, 0.8)), mimic_adc_increase=float(rng.uniform(0.1, 0.5)),
    )


def _smooth_field(rng: np.random.Generator, pts: np.ndarray, n_terms: int = 4, wavelength=(80, 200)) -> np.ndarray:
    """Smooth random field in about [-1, 1] at points [..., 3] (mm): a sum of random plane cosines."""
    out = np.zeros(pts.shape[:-1], np.float32)
    for _ in range(n_terms):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        k = 2 * np.pi / rng.uniform(*wavelength)
        out += np.cos((pts @ (d * k)).astype(np.float32) + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    return out / np.sqrt(n_terms / 2)


def _rotation(deg: List[float]) -> np.ndarray:
    a, b, c = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class Study:
    params: StudyParams
    b0: np.ndarray  # uint16 [S, R, C]
    dwi: np.ndarray  # uint16
    adc: np.ndarray  # uint16, 10^-6 mm2/s
    mask: np.ndarray  # uint8 0/1
    ipp_first: List[float]
    iop: List[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def generate_study(split: str, seed: int, subjects: Optional[List[str]] = None, matrix_choices=(128, 144, 160, 192, 224),
                   force_subject: Optional[str] = "unset", realism: int = 1) -> Study:
    if subjects is None:
        subjects = load_splits()[split]
    p = draw_params(split, seed, subjects, matrix_choices, realism)
    if force_subject != "unset":
        p.subject = force_subject
    rng = np.random.default_rng([seed, 7, {"train": 1, "val": 2, "test": 3}[split]])
    anat = load_anatomy()
    les = load_lesion(p.subject) if p.subject else None
    mim = load_lesion(p.mimic_subject) if p.mimic_subject and p.mimic_subject != p.subject else None

    R, C, S = p.rows, p.columns, p.slices
    ps, sp = p.pixel_spacing, p.slice_spacing
    # Top-left voxel of the first slice, LPS: FOV centred on fov_centre_lps
    ipp0 = np.array([p.fov_centre_lps[0] - ps * (C - 1) / 2, p.fov_centre_lps[1] - ps * (R - 1) / 2,
                     p.fov_centre_lps[2] - sp * (S - 1) / 2])
    nsub = max(1, int(round(p.slice_thickness / 2.0)))
    sub_off = (np.arange(nsub) + 0.5) / nsub * p.slice_thickness - p.slice_thickness / 2
    zz, rr, cc = np.meshgrid(np.arange(S), np.arange(R), np.arange(C), indexing="ij")
    base = np.stack([ipp0[0] + cc * ps, ipp0[1] + rr * ps, ipp0[2] + zz * sp], -1).astype(np.float32)  # LPS

    # head pose: anatomy point (RAS) = A (p_ras - c) + c + shift + deformation
    A = _rotation(p.rotation_deg) @ np.diag(p.scale)
    c_ras = np.array([0.0, -18.0, 8.0])
    acc = np.zeros((6, S, R, C), np.float32)  # gm, wm, csf, scalp, lesion, mimic
    pile = np.zeros((S, R, C), np.float32)  # susceptibility pile-up gain (anatomy space: it moves with the head)
    for off in sub_off:
        pts = base.copy()
        pts[..., 2] += off
        ras = pts * np.array([-1, -1, 1], np.float32)
        q = (ras - c_ras) @ A.T.astype(np.float32) + c_ras + np.array(p.shift_mm, np.float32)
        if p.deform_mm > 0:
            drng = np.random.default_rng([seed, 11])
            for ax in range(3):
                q[..., ax] += p.deform_mm * _smooth_field(drng, ras, 3, (60, 140))
        vox = (q - COLIN_ORIGIN).reshape(-1, 3).T
        for t in range(4):
            acc[t] += ndimage.map_coordinates(anat[t], vox, order=1, mode="constant", cval=0).reshape(S, R, C)
        if les is not None:
            lv = ndimage.map_coordinates(les, vox, order=1, mode="constant", cval=0).reshape(S, R, C)
            acc[4] += lv
        if mim is not None:
            acc[5] += ndimage.map_coordinates(mim, vox, order=1, mode="constant", cval=0).reshape(S, R, C)
        for x0, y0, z0, sg, gain in p.pileups:
            d2 = ((q - np.array([x0, y0, z0], np.float32)) ** 2).sum(-1)
            pile += gain * np.exp(-d2 / (2 * sg * sg)).astype(np.float32)
    acc /= nsub
    pile /= nsub
    gm, wm, csf, scalp, lf, mf = acc
    parench = gm + wm
    lf = np.clip(lf, 0, 1)
    mf = np.clip(mf, 0, 1) * (1 - lf)

    # tissue properties with smooth spatial variation (ADC in 10^-3 mm2/s)
    var = 1 + p.adc_variation * np.clip(_smooth_field(rng, base, 4, (40, 160)), -2, 2)
    het = 1 + 0.1 * np.clip(_smooth_field(rng, base, 3, (10, 30)), -2, 2)  # lesion heterogeneity
    b = p.b_value * 1e-3
    red = np.clip(p.lesion_adc_reduction * het, 0.2, 0.7)
    shine = 1 + p.lesion_t2_shine * het

    def sig(s0, adc_v, k=0.0):
        bd = b * adc_v
        return s0, s0 * np.exp(-bd + bd * bd * k / 6.0)  # k = 0 (realism 1): mono-exponential

    s0_par = np.zeros_like(gm)
    sb_par = np.zeros_like(gm)
    for frac, s0t, adct, kt in ((gm, p.s0_gm, p.adc_gm, p.kurt_gm), (wm, p.s0_wm, p.adc_wm, p.kurt_wm)):
        a_n = adct * var
        s0n, sbn = sig(s0t, a_n, kt)
        s0l, sbl = sig(s0t * shine, a_n * (1 - red), kt * p.kurt_lesion_factor)
        s0m, sbm = sig(s0t * (1 + p.mimic_t2_increase), a_n * (1 + p.mimic_adc_increase), kt * 0.8)
        s0_par += frac * ((1 - lf - mf) * s0n + lf * s0l + mf * s0m)
        sb_par += frac * ((1 - lf - mf) * sbn + lf * sbl + mf * sbm)
    s0c, sbc = sig(p.s0_csf, p.adc_csf * var)
    s0s, sbs = sig(p.s0_scalp, p.adc_scalp)
    S0 = s0_par + csf * s0c + scalp * s0s
    SB = sb_par + csf * sbc + scalp * sbs

    # coil bias (same on both images), Rician noise
    bias = np.exp(p.bias_strength * _smooth_field(rng, base, 3, (150, 400))).astype(np.float32)
    if p.coil_strength > 0 or p.coil_dir_strength > 0:
        rel = (base - np.array([0.0, 18.0, 8.0], np.float32)) / 80.0  # from the head centre (LPS), head radii
        r2 = np.minimum((rel ** 2).sum(-1), 2.0)
        bias *= np.exp(p.coil_strength * (r2 - 0.5) + p.coil_dir_strength * (rel @ np.array(p.coil_dir, np.float32))).astype(np.float32)
    if p.pileups:
        bias *= 1 + pile  # same readout for b0 and DWI: bright on both, ADC about normal
    S0 *= bias
    SB *= bias
    sigma = p.s0_wm / p.snr_b0
    sigb = sigma * p.dwi_noise_factor
    S0n = np.sqrt((S0 + rng.normal(0, sigma, S0.shape)) ** 2 + rng.normal(0, sigma, S0.shape) ** 2)
    SBn = np.sqrt((SB + rng.normal(0, sigb, SB.shape)) ** 2 + rng.normal(0, sigb, SB.shape) ** 2)
    # scanner-style two-point ADC, background (b0 below 15% of WM level) set to 0
    fg = S0n > 0.15 * p.s0_wm
    adc = np.where(fg, np.log(np.maximum(S0n, 1e-6) / np.maximum(SBn, 1e-6)) / b, 0.0)
    adc = np.clip(adc * 1000.0, 0, 6000)

    b0u = np.clip(np.round(S0n * p.b0_scale), 0, 65535).astype(np.uint16)
    dwiu = np.clip(np.round(SBn * p.b0_scale * p.dwi_scale), 0, 65535).astype(np.uint16)
    adcu = np.round(adc).astype(np.uint16)
    # truth: at least half of the voxel is lesioned parenchyma
    mask = ((lf * np.clip(parench, 0, 1)) >= 0.5).astype(np.uint8)
    return Study(params=p, b0=b0u, dwi=dwiu, adc=adcu, mask=mask, ipp_first=[float(x) for x in ipp0])


# ----------------------------------------------------------------------------------------------------------
# Model grid (models/README.md I/O contract)
# ----------------------------------------------------------------------------------------------------------
def bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear sample of img[..., H, W] at fractional indices; 0 outside [-0.5, n-0.5], edge-clamped inside."""
    H, W = img.shape[-2:]
    inside = ((ys >= -0.5) & (ys <= H - 0.5))[:, None] & ((xs >= -0.5) & (xs <= W - 0.5))[None, :]
    y = np.clip(ys, 0, H - 1)
    x = np.clip(xs, 0, W - 1)
    y0 = np.floor(y).astype(int)
    x0 = np.floor(x).astype(int)
    y1 = np.minimum(y0 + 1, H - 1)
    x1 = np.minimum(x0 + 1, W - 1)
    wy = (y - y0).astype(np.float32)[:, None]
    wx = (x - x0).astype(np.float32)[None, :]
    a = img[..., y0[:, None], x0[None, :]]
    bb = img[..., y0[:, None], x1[None, :]]
    c = img[..., y1[:, None], x0[None, :]]
    d = img[..., y1[:, None], x1[None, :]]
    out = (a * (1 - wx) + bb * wx) * (1 - wy) + (c * (1 - wx) + d * wx) * wy
    return out * inside


def to_model_grid(vol: np.ndarray, row_spacing: float, col_spacing: float, size: int = MODEL_SIZE,
                  spacing: float = MODEL_SPACING) -> np.ndarray:
    """[S, R, C] acquisition slices -> [S, size, size]: grid centred on the slice centre, same row/column order."""
    S, R, C = vol.shape
    k = np.arange(size) - (size - 1) / 2
    ys = (R - 1) / 2 + k * spacing / row_spacing
    xs = (C - 1) / 2 + k * spacing / col_spacing
    return bilinear(vol.astype(np.float32), ys, xs)


def from_model_grid(m: np.ndarray, rows: int, cols: int, row_spacing: float, col_spacing: float,
                    spacing: float = MODEL_SPACING) -> np.ndarray:
    """[S, size, size] model-grid maps -> [S, rows, cols] on the acquisition grid (bilinear)."""
    size = m.shape[-1]
    ys = (np.arange(rows) - (rows - 1) / 2) * row_spacing / spacing + (size - 1) / 2
    xs = (np.arange(cols) - (cols - 1) / 2) * col_spacing / spacing + (size - 1) / 2
    return bilinear(m.astype(np.float32), ys, xs)


def normalise(dwi: np.ndarray, adc: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Contract normalisation on the acquired volumes (statistics over the whole acquired DWI volume)."""
    d = dwi.astype(np.float32)
    t = d.mean()
    s = float(np.median(d[d > t])) if (d > t).any() else 1.0
    return np.clip(d / max(s, 1e-6), 0, 10), np.clip(adc.astype(np.float32) / 1000.0, 0, 5)


def model_inputs(study: Study) -> Tuple[np.ndarray, np.ndarray]:
    """Per-slice model-grid [S, 2, 128, 128] (DWI, ADC) float32 and the truth on the model grid [S, 128, 128] u8."""
    p = study.params
    d, a = normalise(study.dwi, study.adc)
    dm = to_model_grid(d, p.pixel_spacing, p.pixel_spacing)
    am = to_model_grid(a, p.pixel_spacing, p.pixel_spacing)
    mm = to_model_grid(study.mask.astype(np.float32), p.pixel_spacing, p.pixel_spacing) > 0.5
    return np.stack([dm, am], 1).astype(np.float32), mm.astype(np.uint8)


def six_channels(x2: np.ndarray) -> np.ndarray:
    """[S, 2, H, W] -> [S, 6, H, W]: DWI(z-1), DWI(z), DWI(z+1), ADC(z-1), ADC(z), ADC(z+1), edges replicated."""
    S = x2.shape[0]
    zm = np.clip(np.arange(S) - 1, 0, S - 1)
    zp = np.clip(np.arange(S) + 1, 0, S - 1)
    return np.stack([x2[zm, 0], x2[:, 0], x2[zp, 0], x2[zm, 1], x2[:, 1], x2[zp, 1]], 1)


# ----------------------------------------------------------------------------------------------------------
# Dataset build: one npz per split with model-grid slices; test studies also keep the acquisition grid
# ----------------------------------------------------------------------------------------------------------
def build_split(split: str, n_studies: int, out_dir: Path, seed0: int = 0, keep_acq: bool = False,
                matrix_choices=(128, 144, 160, 192, 224), realism: int = 1) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    f = out_dir / (f"{split}_{n_studies}_{seed0}.npz" if realism == 1 else f"{split}_{n_studies}_{seed0}_r{realism}.npz")
    if f.exists():
        return f
    subjects = load_splits()[split]
    xs, ys, sid, metas, acq = [], [], [], [], {}
    t0 = time.time()
    for i in range(n_studies):
        st = generate_study(split, seed0 + i, subjects, matrix_choices, realism=realism)
        x2, y = model_inputs(st)
        xs.append(x2.astype(np.float16))
        ys.append(y)
        sid.append(np.full(len(y), i, np.int32))
        metas.append(asdict(st.params))
        if keep_acq:
            acq[f"dwi_{i}"] = st.dwi
            acq[f"adc_{i}"] = st.adc
            acq[f"mask_{i}"] = st.mask
        if (i + 1) % 20 == 0:
            print(f"{split}: {i + 1}/{n_studies} studies, {time.time() - t0:.0f}s", flush=True)
    np.savez(f, x=np.concatenate(xs), y=np.concatenate(ys), study=np.concatenate(sid),
             meta=json.dumps(metas), **acq)
    return f


def write_fixture(study: Study, out: Path, note: str) -> Dict:
    out.mkdir(parents=True, exist_ok=True)
    p = study.params

    def wr(name: str, arr: np.ndarray):
        with gzip.GzipFile(out / name, "wb", compresslevel=9, mtime=0) as g:
            g.write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())

    wr("dwi.u16.gz", study.dwi)
    wr("b0.u16.gz", study.b0)
    wr("adc.u16.gz", study.adc)
    wr("mask.u8.gz", study.mask)
    vox_ml = p.pixel_spacing * p.pixel_spacing * p.slice_spacing / 1000.0
    meta = {
        "rows": p.rows, "columns": p.columns, "slices": p.slices,
        "pixelSpacing": [p.pixel_spacing, p.pixel_spacing],
        "sliceThickness": p.slice_thickness, "sliceSpacing": p.slice_spacing,
        "bValue": p.b_value,
        "imageOrientationPatient": study.iop,
        "imagePositionPatientFirst": study.ipp_first,
        "lesionVoxels": int(study.mask.sum()),
        "lesionVolumeMl": round(float(study.mask.sum()) * vox_ml, 3),
        "lesionSlices": [int(z) for z in np.nonzero(study.mask.reshape(p.slices, -1).any(1))[0]],
        "seed": p.seed, "split": p.split,
        "sourceLesionMap": (f"{p.subject}_lesion.nii.gz" if p.subject else None),
        "sourceLesionMapId": p.subject,
        "mimicLesionMapId": p.mimic_subject,
        "generator": "models/training/phantoms.py",
        "note": note,
        "units": {"dwi": "scanner units (uint16)", "b0": "scanner units (uint16)", "adc": "10^-6 mm2/s (uint16)",
                  "mask": "0/1 truth (>=50% lesioned parenchyma in the voxel)"},
        "layout": "little-endian, slice-major then row-major: value(z, r, c) at (z*rows + r)*columns + c; slices ascending along the normal",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


# ----------------------------------------------------------------------------------------------------------
# CT of the same anatomy (paired CT -> DWI synthesis data). Every parameter: models/training/README.md.
# A CT study of (split, seed) shares the DWI study's draw (lesion map, mimic, head pose, deformation, tissue
# physics): the CT params come from their own stream [seed, 13, split], so the DWI studies are unchanged.
# The paired target is the b=1000 trace DWI rendered on the CT's own grid from the same partial volumes.
# ----------------------------------------------------------------------------------------------------------
CT_KERNELS = {  # name: (in-plane PSF sigma mm, noise-correlation sigma mm, noise sigma range HU at 5 mm)
    "SOFT": (0.9, 1.0, (2.5, 4.0)),
    "STANDARD": (0.6, 0.7, (3.5, 6.0)),
    "SHARP": (0.35, 0.4, (8.0, 14.0)),
}
SPLIT_ID = {"train": 1, "val": 2, "test": 3}
DWI_TARGET_B = 1000.0


def load_anatomy_ct() -> np.ndarray:
    """[3, 181, 217, 181] float32 on the Colin27 grid: bone, the 2 mm dura/CSF shell inside it, soft tissue outside."""
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / "anatomy_ct_v1.npy"
    if f.exists():
        return np.load(f, mmap_mode="r")
    t1 = nib.load(COLIN).get_fdata().astype(np.float32)
    bet = ndimage.binary_fill_holes(nib.load(COLIN_BET).get_fdata() > 0)
    head = ndimage.binary_fill_holes(ndimage.binary_closing(t1 > 25, iterations=3))
    d = ndimage.distance_transform_edt(~bet)  # mm from the brain
    shell = (d > 0) & (d <= 2.0) & head
    bone = (d > 2.0) & (d <= 7.5) & head
    soft = head & (d > 7.5)
    a = np.stack([bone, shell, soft]).astype(np.float32)
    a = ndimage.gaussian_filter(a, (0, 0.5, 0.5, 0.5))
    np.save(f, a)
    return np.load(f, mmap_mode="r")


@dataclass
class CtParams:
    kernel: str
    rows: int
    columns: int
    pixel_spacing: float
    slices: int
    slice_thickness: float
    fov_centre_lps: List[float]
    hu_gm: float
    hu_wm: float
    hu_csf: float
    hu_bone: float
    hu_soft: float
    hu_offset: float
    lesion_hypo_hu: float
    mimic_hypo_hu: float
    noise_hu: float
    beam_hardening_hu: float
    cupping_hu: float
    bone_variation: float


def draw_ct_params(split: str, seed: int, matrix_choices=(256, 512)) -> CtParams:
    rng = np.random.default_rng([seed, 13, SPLIT_ID[split]])
    kernel = str(rng.choice(["SOFT", "STANDARD", "STANDARD", "SHARP"]))
    matrix = int(rng.choice(matrix_choices))
    fov = float(rng.uniform(200, 250))
    thick = float(rng.choice([1.0, 2.0, 2.5, 3.0, 5.0, 5.0]))
    coverage = min(float(rng.uniform(110, 150)), 40 * thick)  # at most 40 slices: bounded cost
    n = max(6, int(round(coverage / thick)))
    zc = 10.0 + float(rng.uniform(-1, 1)) * max(0.0, (150 - coverage) / 2)
    centre = [float(rng.uniform(-5, 5)), 18.0 + float(rng.uniform(-8, 8)), zc]
    nlo, nhi = CT_KERNELS[kernel][2]
    u = float(rng.random())
    return CtParams(
        kernel=kernel, rows=matrix, columns=matrix, pixel_spacing=fov / matrix, slices=n, slice_thickness=thick,
        fov_centre_lps=centre,
        hu_gm=float(rng.uniform(35, 45)), hu_wm=float(rng.uniform(20, 30)), hu_csf=float(rng.uniform(0, 15)),
        hu_bone=float(rng.uniform(700, 2000)), hu_soft=float(rng.uniform(10, 50)), hu_offset=float(rng.normal(0, 2)),
        lesion_hypo_hu=0.5 + 5.5 * u * u,  # early ischaemia: median ~2 HU, often nearly invisible
        mimic_hypo_hu=float(rng.uniform(4, 12)),
        noise_hu=float(rng.uniform(nlo, nhi)) * float(np.sqrt(5.0 / thick)),
        beam_hardening_hu=float(rng.uniform(2, 8)), cupping_hu=float(rng.uniform(0, 4)),
        bone_variation=float(rng.uniform(0.2, 0.4)),
    )


@dataclass
class CtStudy:
    params: StudyParams
    ct_params: CtParams
    ct: np.ndarray  # int16 HU [S, R, C]
    dwi: np.ndarray  # float32 target DWI on the CT grid, b=1000, 1.0 = normal white matter (noise-free tissue)
    mask: np.ndarray  # uint8 lesion truth on the CT grid
    brain: np.ndarray  # uint8 intracranial truth (GM+WM+CSF >= 0.5) on the CT grid, for metrics
    ipp_first: List[float]
    iop: List[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def _gauss2d(vol: np.ndarray, sigma_px: float) -> np.ndarray:
    return ndimage.gaussian_filter(vol, (0, sigma_px, sigma_px), mode="nearest") if sigma_px > 0.05 else vol


def generate_ct_study(split: str, seed: int, subjects: Optional[List[str]] = None, matrix_choices=(256, 512)) -> CtStudy:
    if subjects is None:
        subjects = load_splits()[split]
    p = draw_params(split, seed, subjects)  # the DWI study's draw: lesion, mimic, pose, physics
    cp = draw_ct_params(split, seed, matrix_choices)
    sid = SPLIT_ID[split]
    anat = load_anatomy()
    actm = load_anatomy_ct()
    les = load_lesion(p.subject) if p.subject else None
    mim = load_lesion(p.mimic_subject) if p.mimic_subject and p.mimic_subject != p.subject else None
    R, C, S = cp.rows, cp.columns, cp.slices
    ps, sp = cp.pixel_spacing, cp.slice_thickness
    ipp0 = np.array([cp.fov_centre_lps[0] - ps * (C - 1) / 2, cp.fov_centre_lps[1] - ps * (R - 1) / 2,
                     cp.fov_centre_lps[2] - sp * (S - 1) / 2])
    nsub = max(1, int(round(cp.slice_thickness / 2.0)))
    sub_off = (np.arange(nsub) + 0.5) / nsub * cp.slice_thickness - cp.slice_thickness / 2
    zz, rr, cc = np.meshgrid(np.arange(S), np.arange(R), np.arange(C), indexing="ij")
    base = np.stack([ipp0[0] + cc * ps, ipp0[1] + rr * ps, ipp0[2] + zz * sp], -1).astype(np.float32)
    del zz, rr, cc
    A = _rotation(p.rotation_deg) @ np.diag(p.scale)
    c_ras = np.array([0.0, -18.0, 8.0])
    acc = np.zeros((8, S, R, C), np.float32)  # gm, wm, csf, soft, bone, shell, lesion, mimic
    for off in sub_off:
        pts = base.copy()
        pts[..., 2] += off
        ras = pts * np.array([-1, -1, 1], np.float32)
        q = (ras - c_ras) @ A.T.astype(np.float32) + c_ras + np.array(p.shift_mm, np.float32)
        if p.deform_mm > 0:
            drng = np.random.default_rng([seed, 11])
            for ax in range(3):
                q[..., ax] += p.deform_mm * _smooth_field(drng, ras, 3, (60, 140))
        vox = (q - COLIN_ORIGIN).reshape(-1, 3).T
        del q, ras, pts
        for t in range(3):
            acc[t] += ndimage.map_coordinates(anat[t], vox, order=1, mode="constant", cval=0).reshape(S, R, C)
        for t, src in ((3, 2), (4, 0), (5, 1)):  # soft, bone, shell
            acc[t] += ndimage.map_coordinates(actm[src], vox, order=1, mode="constant", cval=0).reshape(S, R, C)
        if les is not None:
            acc[6] += ndimage.map_coordinates(les, vox, order=1, mode="constant", cval=0).reshape(S, R, C)
        if mim is not None:
            acc[7] += ndimage.map_coordinates(mim, vox, order=1, mode="constant", cval=0).reshape(S, R, C)
    acc /= nsub
    gm, wm, csf, soft, bone, shell, lf, mf = acc
    parench = gm + wm
    lf = np.clip(lf, 0, 1)
    mf = np.clip(mf, 0, 1) * (1 - lf)

    # ---- DWI target (b = 1000) on the CT grid, same physics as generate_study; fields from the same streams
    frng = np.random.default_rng([seed, 7, sid])
    var = 1 + p.adc_variation * np.clip(_smooth_field(frng, base, 4, (40, 160)), -2, 2)
    het = 1 + 0.1 * np.clip(_smooth_field(frng, base, 3, (10, 30)), -2, 2)
    bias = np.exp(p.bias_strength * _smooth_field(frng, base, 3, (150, 400))).astype(np.float32)
    b = DWI_TARGET_B * 1e-3
    red = np.clip(p.lesion_adc_reduction * het, 0.2, 0.7)
    shine = 1 + p.lesion_t2_shine * het
    sb = np.zeros_like(gm)
    for frac, s0t, adct in ((gm, p.s0_gm, p.adc_gm), (wm, p.s0_wm, p.adc_wm)):
        a_n = adct * var
        sb += frac * ((1 - lf - mf) * s0t * np.exp(-b * a_n) + lf * s0t * shine * np.exp(-b * a_n * (1 - red))
                      + mf * s0t * (1 + p.mimic_t2_increase) * np.exp(-b * a_n * (1 + p.mimic_adc_increase)))
    sb += csf * p.s0_csf * np.exp(-b * p.adc_csf * var) + soft * p.s0_scalp * np.exp(-b * p.adc_scalp)
    sb *= bias
    nrng = np.random.default_rng([seed, 17, sid])
    sig = p.s0_wm / p.snr_b0 * p.dwi_noise_factor
    sb = np.sqrt((sb + nrng.normal(0, sig, sb.shape)) ** 2 + nrng.normal(0, sig, sb.shape) ** 2)
    dwi = (sb / (p.s0_wm * np.exp(-b * p.adc_wm))).astype(np.float32)

    # ---- CT (HU)
    crng = np.random.default_rng([seed, 19, sid])
    het_c = 1 + 0.3 * np.clip(_smooth_field(crng, base, 3, (10, 30)), -2, 2)
    bone_hu = cp.hu_bone * (1 + cp.bone_variation * np.clip(_smooth_field(crng, base, 4, (8, 25)), -1.5, 1.5))
    tissue = gm + wm + csf + soft + bone + shell
    hu = (gm * cp.hu_gm + wm * cp.hu_wm + csf * cp.hu_csf + shell * (cp.hu_csf + 10) + soft * cp.hu_soft
          + bone * bone_hu + np.clip(1 - tissue, 0, 1) * -1000.0)
    hu -= parench * (lf * cp.lesion_hypo_hu * np.clip(het_c, 0.3, 2) + mf * cp.mimic_hypo_hu)
    psf, ncorr, _ = CT_KERNELS[cp.kernel]
    hu = _gauss2d(hu, psf / ps)
    # beam hardening-like: brain next to the inner table reads brighter; cupping: the centre reads darker
    near_bone = _gauss2d(bone, 6.0 / ps)
    brainf = gm + wm + csf
    rr2 = ((base[..., 0] - cp.fov_centre_lps[0]) ** 2 + (base[..., 1] - cp.fov_centre_lps[1]) ** 2) / (90.0 ** 2)
    hu += brainf * (cp.beam_hardening_hu * np.clip(near_bone / 0.25, 0, 1) - cp.cupping_hu * np.clip(1 - rr2, 0, 1))
    noise = _gauss2d(crng.normal(0, 1, hu.shape).astype(np.float32), ncorr / ps)
    noise *= cp.noise_hu / max(float(noise.std()), 1e-6)
    hu = hu + noise + cp.hu_offset
    ct = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    mask = ((lf * np.clip(parench, 0, 1)) >= 0.5).astype(np.uint8)
    brain = (brainf >= 0.5).astype(np.uint8)
    return CtStudy(params=p, ct_params=cp, ct=ct, dwi=dwi, mask=mask, brain=brain, ipp_first=[float(x) for x in ipp0])


def crop_ct_study(st: CtStudy, z0: int, z1: int) -> CtStudy:
    """Slices [z0, z1) of a CT study (a partial-coverage series of the same acquisition); IPP moved along +z."""
    cp = CtParams(**{**asdict(st.ct_params), "slices": z1 - z0})
    ipp = list(st.ipp_first)
    ipp[2] += z0 * cp.slice_thickness
    return CtStudy(params=st.params, ct_params=cp, ct=st.ct[z0:z1].copy(), dwi=st.dwi[z0:z1].copy(),
                   mask=st.mask[z0:z1].copy(), brain=st.brain[z0:z1].copy(), ipp_first=ipp, iop=list(st.iop))


# ---- brain mask from a CT (identical in src/pipelines/ct-brain-mask.ts; applied on the CT's own grid)
def ct_brain_mask(hu: np.ndarray, pixel_spacing: float) -> np.ndarray:
    """hu [S, R, C] -> uint8 brain mask: 3x3 in-plane mean, -10..90 HU, in-plane erosion by a square of half-size
    round(3 mm / pixel) px, largest 3D 6-connected component, dilation by the same square AND the threshold,
    holes filled per slice (4-connected background)."""
    s = ndimage.uniform_filter(hu.astype(np.float32), size=(1, 3, 3), mode="nearest")
    cand = (s >= -10) & (s <= 90)
    r = max(1, int(round(3.0 / pixel_spacing)))
    er = ndimage.minimum_filter(cand.astype(np.uint8), size=(1, 2 * r + 1, 2 * r + 1), mode="nearest")
    lab, n = ndimage.label(er, structure=ndimage.generate_binary_structure(3, 1))
    if n == 0:
        return np.zeros(hu.shape, np.uint8)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    keep = (lab == int(np.argmax(sizes))).astype(np.uint8)
    dil = ndimage.maximum_filter(keep, size=(1, 2 * r + 1, 2 * r + 1), mode="nearest") & cand
    out = np.zeros(hu.shape, np.uint8)
    for z in range(hu.shape[0]):
        out[z] = ndimage.binary_fill_holes(dil[z])
    return out


CT_WINDOW = (40.0, 80.0)  # centre, width: x = clip((HU - 0) / 80, 0, 1)
DWI_OUT_SCALE = 1000.0  # stored synthetic DWI = 1000 * y; y = 1.0 is normal white matter at b = 1000


def ct_window(hu: np.ndarray) -> np.ndarray:
    c, w = CT_WINDOW
    return np.clip((hu.astype(np.float32) - (c - w / 2)) / w, 0, 1)


def ct_model_inputs(st: CtStudy) -> Dict[str, np.ndarray]:
    """Model-grid slices: CT brain window, brain mask from the CT (node algorithm), DWI target, lesion, brain truth."""
    ps = st.ct_params.pixel_spacing
    bm = ct_brain_mask(st.ct, ps)
    return {
        "ct": to_model_grid(ct_window(st.ct), ps, ps),
        "bmask": to_model_grid(bm.astype(np.float32), ps, ps),
        "dwi": to_model_grid(st.dwi, ps, ps),
        "lesion": (to_model_grid(st.mask.astype(np.float32), ps, ps) > 0.5).astype(np.uint8),
        "brain": (to_model_grid(st.brain.astype(np.float32), ps, ps) > 0.5).astype(np.uint8),
    }


def build_ct_split(split: str, n_studies: int, out_dir: Path, seed0: int = 0, matrix_choices=(256,)) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    f = out_dir / f"ct_{split}_{n_studies}_{seed0}_{'-'.join(map(str, matrix_choices))}.npz"
    if f.exists():
        return f
    subjects = load_splits()[split]
    parts: Dict[str, List[np.ndarray]] = {k: [] for k in ("ct", "bmask", "dwi", "lesion", "brain", "study")}
    metas = []
    t0 = time.time()
    for i in range(n_studies):
        st = generate_ct_study(split, seed0 + i, subjects, matrix_choices)
        m = ct_model_inputs(st)
        for k in ("ct", "bmask", "dwi"):
            parts[k].append(m[k].astype(np.float16))
        parts["lesion"].append(m["lesion"])
        parts["brain"].append(m["brain"])
        parts["study"].append(np.full(len(m["ct"]), seed0 + i, np.int32))
        metas.append({"params": asdict(st.params), "ct": asdict(st.ct_params)})
        if split == "test":  # acquisition-grid copies for the node-path evaluation (eval_ct2dwi.ts)
            write_ct_fixture(st, out_dir / "ct_test_acq" / f"test-{seed0 + i}", "held-out TEST evaluation study")
        if (i + 1) % 10 == 0:
            print(f"ct {split}: {i + 1}/{n_studies} studies, {time.time() - t0:.0f}s", flush=True)
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, meta=json.dumps(metas), **{k: np.concatenate(v) for k, v in parts.items()})
    tmp.rename(f)
    return f


def write_ct_fixture(st: CtStudy, out: Path, note: str) -> Dict:
    out.mkdir(parents=True, exist_ok=True)
    p, cp = st.params, st.ct_params

    def wr(name: str, arr: np.ndarray):
        with gzip.GzipFile(out / name, "wb", compresslevel=9, mtime=0) as g:
            g.write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())

    wr("ct.i16.gz", st.ct)
    wr("dwi-true.u16.gz", np.clip(np.round(st.dwi * DWI_OUT_SCALE), 0, 65535).astype(np.uint16))
    wr("mask.u8.gz", st.mask)
    wr("brain.u8.gz", st.brain)
    vox_ml = cp.pixel_spacing ** 2 * cp.slice_thickness / 1000.0
    meta = {
        "modality": "CT", "rows": cp.rows, "columns": cp.columns, "slices": cp.slices,
        "pixelSpacing": [cp.pixel_spacing, cp.pixel_spacing], "sliceThickness": cp.slice_thickness,
        "sliceSpacing": cp.slice_thickness, "convolutionKernel": cp.kernel,
        "imageOrientationPatient": st.iop, "imagePositionPatientFirst": st.ipp_first,
        "lesionVoxels": int(st.mask.sum()), "lesionVolumeMl": round(float(st.mask.sum()) * vox_ml, 3),
        "lesionSlices": [int(z) for z in np.nonzero(st.mask.reshape(cp.slices, -1).any(1))[0]],
        "lesionHypodensityHu": round(cp.lesion_hypo_hu, 2),
        "seed": p.seed, "split": p.split, "sourceLesionMapId": p.subject, "mimicLesionMapId": p.mimic_subject,
        "generator": "models/training/phantoms.py generate_ct_study(split, seed, matrix_choices=(%d,))" % cp.rows,
        "note": note,
        "units": {"ct": "HU (int16)", "dwi-true": "1000 x DWI at b=1000 relative to normal white matter (uint16), the synthesis target on the CT grid",
                  "mask": "0/1 lesion truth", "brain": "0/1 intracranial truth (GM+WM+CSF >= 50%), the region of the image metrics"},
        "layout": "little-endian, slice-major then row-major: value(z, r, c) at (z*rows + r)*columns + c; slices ascending along the normal",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", action="store_true", help="write splits.json")
    ap.add_argument("--preview", type=int, default=None, help="write a PNG preview of one test study (seed)")
    ap.add_argument("--build", nargs=2, metavar=("SPLIT", "N"), help="build model-grid slices for N studies")
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--matrix", default="128,144,160,192,224", help="acquisition matrix choices")
    ap.add_argument("--realism", type=int, default=1, help="phantom realism (2: lesion models 0.3.0, see README)")
    ap.add_argument("--out", default=str(CACHE))
    ap.add_argument("--ct-build", nargs=2, metavar=("SPLIT", "N"), help="build paired CT/DWI model-grid slices")
    ap.add_argument("--ct-preview", type=int, default=None, help="write a preview npz of one test CT study (seed)")
    a = ap.parse_args()
    if a.ct_build:
        print(build_ct_split(a.ct_build[0], int(a.ct_build[1]), Path(a.out), a.seed0))
    if a.ct_preview is not None:
        t0 = time.time()
        st = generate_ct_study("test", a.ct_preview, matrix_choices=(256,))
        print("generated in", round(time.time() - t0, 2), "s", asdict(st.ct_params))
        np.savez_compressed(CACHE / f"ct_preview_{a.ct_preview}.npz", ct=st.ct, dwi=st.dwi, mask=st.mask, brain=st.brain,
                            bmask=ct_brain_mask(st.ct, st.ct_params.pixel_spacing))
    if a.splits:
        sp = load_splits()
        print({k: len(v) for k, v in sp.items()})
    if a.build:
        print(build_split(a.build[0], int(a.build[1]), Path(a.out), a.seed0, keep_acq=a.build[0] == "test",
                          matrix_choices=tuple(int(x) for x in a.matrix.split(",")), realism=a.realism))
    if a.preview is not None:
        t0 = time.time()
        st = generate_study("test", a.preview, realism=a.realism)
        print("generated in", round(time.time() - t0, 2), "s", asdict(st.params))
        print("mask voxels", st.mask.sum(), "slices", st.mask.shape)
        np.savez_compressed(CACHE / f"preview_{a.preview}.npz", dwi=st.dwi, adc=st.adc, b0=st.b0, mask=st.mask)


if __name__ == "__main__":
    main()
