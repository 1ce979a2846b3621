#!/usr/bin/python3
"""Real abdominal anatomy and tumour shapes shared by the liver CT and MRI phantoms (issue 16).

Anatomy: the one real abdominal CT in ../shared/data/abdomen-ct (TotalSegmentator's test case, 122x101x112
@ 3 mm, RAS) with TotalSegmentator's machine-made label map (v2 class map, 122x101x30). The label map's header
says it covers the FIRST 30 CT slices (same origin), but its content matches the LAST 30 (k = 82..111, the upper
abdomen with the lung bases, liver dome and costal cartilages): checked by HU per label (`check_label_offset`):
slices 82-111 give lungs 93 % < -500 HU, liver 99.6 % in [-20, 150] HU (median 46 HU, non-contrast), costal
cartilage 104 HU, vertebrae L2-T11 140-290 HU, ribs ~200 HU; slices 0-29 give lungs 7 % < -500 HU and liver
median 11 HU with half its voxels outside [-20, 150]. So only the 90 mm slab k = 82..111 has labels; the phantoms
sample ONLY that slab (every slice of every phantom lies inside it, pose included), nothing is extrapolated.

Coordinates: source RAS mm from the NIfTI affine; phantom grids are DICOM LPS (axial, IOP 1\\0\\0\\0\\1\\0,
columns patient right -> left, rows anterior -> posterior, slices ascending), volumes [slice, row, column].
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from phantoms import _smooth_field, _rotation, bilinear  # noqa: E402  (the head-CT code's helpers)

REPO = HERE.parent.parent.parent
DATA = Path(os.environ.get("LIVER_SHARED_DATA", str(REPO.parent / "shared" / "data"))) / "abdomen-ct"
CACHE = HERE.parent / "cache" / "liver"
LABEL_OFFSET = 82  # first CT slice the label map belongs to (see module docstring)
SPLIT_ID = {"train": 1, "val": 2, "test": 3}

# TotalSegmentator v2 "total" class map (the labels present in the example): grouped into tissue classes
TS = {
    "spleen": [1], "kidney": [2, 3], "gallbladder": [4], "liver": [5], "stomach": [6], "pancreas": [7],
    "adrenal": [8, 9], "lung": [10, 11, 12, 13, 14], "bowel": [18, 19, 20], "aorta": [52], "ivc": [63],
    "portal": [64], "cord": [79], "muscle": [86, 87, 88, 89],
    "bone": list(range(25, 51)) + list(range(92, 118)),  # sacrum, vertebrae, ribs, sternum, costal cartilage
}
# tissue classes used by the MRI phantoms (index = channel of Source.classes)
CLASSES = ["air", "lung", "fat", "muscle", "soft", "bone", "liver", "spleen", "kidney", "fluid", "vessel",
           "pancreas", "bowel_gas", "cord"]


@dataclass
class Source:
    hu: np.ndarray  # float32 [X, Y, Z] real HU, labelled slab only
    labels: np.ndarray  # uint8 TotalSegmentator labels [X, Y, Z]
    liver: np.ndarray  # float32 soft liver fraction (label 5, smoothed 0.6 voxel)
    classes: np.ndarray  # float32 [K, X, Y, Z] soft tissue-class fractions (CLASSES)
    affine: np.ndarray  # voxel -> RAS mm of the slab
    liver_idx: np.ndarray  # [N, 3] voxel indices with liver distance >= 2 voxels (tumour centres)
    liver_dist: np.ndarray  # distance to the liver edge (mm) at liver_idx

    def ras_to_vox(self, ras: np.ndarray) -> np.ndarray:
        inv = np.linalg.inv(self.affine)
        return ras @ inv[:3, :3].T + inv[:3, 3]


def check_label_offset() -> Dict[int, Dict[str, float]]:
    """Label/CT agreement per candidate slice offset (the evidence for LABEL_OFFSET)."""
    import nibabel as nib
    hu = np.asarray(nib.load(DATA / "example_ct.nii.gz").dataobj).astype(np.float32)
    lab = np.asarray(nib.load(DATA / "example_seg.nii.gz").dataobj)
    lung, liv = np.isin(lab, TS["lung"]), lab == 5
    out = {}
    for off in range(0, hu.shape[2] - lab.shape[2] + 1):
        b = hu[:, :, off:off + lab.shape[2]]
        out[off] = {"lung_air": float(np.mean(b[lung] < -500)),
                    "liver_soft": float(np.mean((b[liv] > -20) & (b[liv] < 150))),
                    "liver_median": float(np.median(b[liv]))}
    return out


_SOURCE: Optional[Source] = None


def load_source() -> Source:
    """The labelled slab as a Source (cached in ../cache/liver/source_v3.npz: carrying that one file is enough to
    generate phantoms on a machine without ../shared/data; memoised per process)."""
    global _SOURCE
    if _SOURCE is not None:
        return _SOURCE
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / "source_v3.npz"
    if f.exists():
        z = np.load(f)
        _SOURCE = Source(hu=z["hu"], labels=z["labels"], liver=z["liver"], classes=z["classes"], affine=z["affine"],
                         liver_idx=z["liver_idx"], liver_dist=z["liver_dist"])
        return _SOURCE
    import nibabel as nib  # only to build the cache: a machine with the cache needs numpy, scipy, torch
    ct = nib.load(DATA / "example_ct.nii.gz")
    lab_img = nib.load(DATA / "example_seg.nii.gz")
    nz = lab_img.shape[2]
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ np.array([0, 0, LABEL_OFFSET]) + ct.affine[:3, 3]
    hu = np.asarray(ct.dataobj).astype(np.float32)[:, :, LABEL_OFFSET:LABEL_OFFSET + nz]
    hu = np.maximum(hu, -1024)
    lab = np.asarray(lab_img.dataobj).astype(np.uint8)
    vox = float(abs(aff[0, 0]))
    # body = the largest connected component above -500 HU (drops the CT table: air for the MRI classes), closed
    comp, _ = ndimage.label(hu > -500)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    body = ndimage.binary_closing(comp == int(np.argmax(sizes)), iterations=2)
    body = ndimage.binary_fill_holes(body, structure=np.ones((3, 3, 1)))
    lm = lambda k: np.isin(lab, TS[k])  # noqa: E731
    cls = np.zeros((len(CLASSES),) + hu.shape, np.float32)
    C = {n: i for i, n in enumerate(CLASSES)}
    unl = (lab == 0) & body
    cls[C["air"]] = ~body
    cls[C["lung"]] = lm("lung") | (unl & (hu < -500))
    cls[C["fat"]] = unl & (hu >= -500) & (hu < -30)
    cls[C["muscle"]] = lm("muscle") | (unl & (hu >= -30) & (hu < 150) & ndimage.binary_erosion(body, iterations=1))
    cls[C["soft"]] = (unl & (hu >= -30) & (hu < 150) & ~ndimage.binary_erosion(body, iterations=1)) | lm("adrenal")
    cls[C["bone"]] = lm("bone") | (unl & (hu >= 150))
    cls[C["liver"]] = lm("liver")
    cls[C["spleen"]] = lm("spleen")
    cls[C["kidney"]] = lm("kidney")
    cls[C["fluid"]] = lm("gallbladder") | (lm("stomach") & (hu >= -300))
    cls[C["vessel"]] = lm("aorta") | lm("ivc") | lm("portal")
    cls[C["pancreas"]] = lm("pancreas")
    gut = lm("bowel") | lm("stomach")
    cls[C["bowel_gas"]] = gut & (hu < -300)
    cls[C["soft"]] += lm("bowel") & (hu >= -300)
    cls[C["cord"]] = lm("cord")
    cls = ndimage.gaussian_filter(cls, (0, 0.6, 0.6, 0.6))
    cls /= np.maximum(cls.sum(0, keepdims=True), 1e-6)
    liver = ndimage.gaussian_filter((lab == 5).astype(np.float32), 0.6)
    dist = ndimage.distance_transform_edt(lab == 5) * vox
    idx = np.argwhere(dist >= 2 * vox).astype(np.int16)
    np.savez_compressed(f, hu=hu, labels=lab, liver=liver, classes=cls.astype(np.float32), liver_idx=idx,
                        liver_dist=dist[tuple(idx.T)].astype(np.float32), affine=aff)
    return load_source()


NEGATIVE_SLICES = (0, 40)  # CT slices 0-39: the pelvis/lower abdomen, liver-free (see load_negative)
NEGATIVE_P = 0.15  # fraction of phantoms drawn from it (own stream [seed, 105|205, split]: other draws unchanged)


def load_negative() -> Source:
    """CT slices 0-39 (the lowest 120 mm) as a liver-free Source: no labels there, so tissue classes come from HU
    alone (fat, muscle, skin/soft, bone, gas) and no organ is moved to a contrast phase. Why liver-free: the liver
    reaches the top slice of the labelled slab (k = 111), so its dome is at or above it, and an adult liver spans at
    most ~21 cm craniocaudally: its tip lies above slice 111 - 70 = 41. Without such slices a model trained on the
    upper slab alone has never seen a pelvis (the smoke model called 1.2 L of it liver)."""
    f = CACHE / "negative_v1.npz"
    if f.exists():
        z = np.load(f)
        return Source(hu=z["hu"], labels=z["labels"], liver=z["liver"], classes=z["classes"], affine=z["affine"],
                      liver_idx=z["liver_idx"], liver_dist=z["liver_dist"])
    import nibabel as nib
    CACHE.mkdir(parents=True, exist_ok=True)
    ct = nib.load(DATA / "example_ct.nii.gz")
    z0, z1 = NEGATIVE_SLICES
    hu = np.maximum(np.asarray(ct.dataobj).astype(np.float32)[:, :, z0:z1], -1024)
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ np.array([0, 0, z0]) + ct.affine[:3, 3]
    comp, _ = ndimage.label(hu > -500)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    body = ndimage.binary_fill_holes(ndimage.binary_closing(comp == int(np.argmax(sizes)), iterations=2),
                                     structure=np.ones((3, 3, 1)))
    inner = ndimage.binary_erosion(body, iterations=1)
    C = {n: i for i, n in enumerate(CLASSES)}
    cls = np.zeros((len(CLASSES),) + hu.shape, np.float32)
    cls[C["air"]] = ~body
    cls[C["bowel_gas"]] = body & (hu < -500)
    cls[C["fat"]] = body & (hu >= -500) & (hu < -30)
    cls[C["muscle"]] = inner & (hu >= -30) & (hu < 150)
    cls[C["soft"]] = body & ~inner & (hu >= -30) & (hu < 150)
    cls[C["bone"]] = body & (hu >= 150)
    cls = ndimage.gaussian_filter(cls, (0, 0.6, 0.6, 0.6))
    cls /= np.maximum(cls.sum(0, keepdims=True), 1e-6)
    np.savez_compressed(f, hu=hu, labels=np.zeros(hu.shape, np.uint8), liver=np.zeros(hu.shape, np.float32),
                        classes=cls.astype(np.float32), affine=aff, liver_idx=np.zeros((0, 3), np.int16),
                        liver_dist=np.zeros(0, np.float32))
    return load_negative()


def choose_source(split: str, seed: int, stream: int) -> Tuple[Source, bool]:
    neg = bool(np.random.default_rng([seed, stream, SPLIT_ID[split]]).random() < NEGATIVE_P)
    return (load_negative() if neg else load_source()), neg


# ----------------------------------------------------------------------------------------------------------
# Pose / geometry
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Pose:
    rotation_deg: List[float]  # about x (pitch), y (roll), z (in-plane yaw)
    scale: List[float]  # per axis (body habitus)
    shift_mm: List[float]
    deform_mm: float  # amplitude of a smooth displacement field (wavelength 60-150 mm)


def draw_pose(rng: np.random.Generator) -> Pose:
    return Pose(rotation_deg=[float(rng.normal(0, 2)), float(rng.normal(0, 2)), float(rng.normal(0, 4))],
                scale=[float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.9, 1.1))],
                shift_mm=[float(rng.normal(0, 8)), float(rng.normal(0, 8)), 0.0],
                deform_mm=float(rng.uniform(0, 6)))


def slab_z_range(src: Source, margin_mm: float) -> Tuple[float, float]:
    z0 = src.affine[2, 3]
    z1 = z0 + src.affine[2, 2] * (src.hu.shape[2] - 1)
    return z0 + margin_mm, z1 - margin_mm


def body_centre_ras(src: Source) -> np.ndarray:
    body = src.classes[0] < 0.5
    c = np.argwhere(body).mean(0)
    return (src.affine[:3, :3] @ c + src.affine[:3, 3]).astype(np.float64)


def grid_points(rows: int, cols: int, slices: int, ps: float, sp: float, centre_lps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """LPS points [S, R, C, 3] of an axial grid and its first IPP."""
    ipp0 = np.array([centre_lps[0] - ps * (cols - 1) / 2, centre_lps[1] - ps * (rows - 1) / 2,
                     centre_lps[2] - sp * (slices - 1) / 2])
    zz, rr, cc = np.meshgrid(np.arange(slices), np.arange(rows), np.arange(cols), indexing="ij")
    pts = np.stack([ipp0[0] + cc * ps, ipp0[1] + rr * ps, ipp0[2] + zz * sp], -1).astype(np.float32)
    return pts, ipp0


def map_to_source(pts_lps: np.ndarray, pose: Pose, centre_ras: np.ndarray, deform_rng_seed: List[int]) -> np.ndarray:
    """Acquisition LPS points -> source RAS points (the inverse pose: the body is moved, not the slices)."""
    ras = pts_lps * np.array([-1, -1, 1], np.float32)
    A = _rotation(pose.rotation_deg) @ np.diag(pose.scale)
    q = (ras - centre_ras - np.array(pose.shift_mm)) @ np.linalg.inv(A).T.astype(np.float32) + centre_ras
    if pose.deform_mm > 0:
        drng = np.random.default_rng(deform_rng_seed)
        for ax in range(3):
            q[..., ax] += pose.deform_mm * _smooth_field(drng, ras, 3, (60, 150))
    return q.astype(np.float32)


def sample(vol: np.ndarray, vox: np.ndarray, cval: float, order: int = 1) -> np.ndarray:
    shp = vox.shape[:-1]
    return ndimage.map_coordinates(vol, vox.reshape(-1, 3).T, order=order, mode="constant", cval=cval).reshape(shp)


# ----------------------------------------------------------------------------------------------------------
# Tumours and cysts: lobulated implicit shapes in source RAS mm
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Lesion:
    kind: str  # "metastasis" | "hcc" | "cyst"
    centre_ras: List[float]
    diameter_mm: float
    axes: List[float]  # anisotropy (multiplies the radius per principal axis)
    rotation_deg: List[float]
    lobulation: float  # amplitude of the boundary noise (fraction of the radius)
    noise_seed: int
    contrast: Dict[str, float] = field(default_factory=dict)  # per phase / sequence, filled by the renderer


def draw_lesions(rng: np.random.Generator, src: Source, kind: str, n: int, dmin: float = 5.0, dmax: float = 100.0,
                 lobulation: Tuple[float, float] = (0.05, 0.35)) -> List[Lesion]:
    out: List[Lesion] = []
    for _ in range(n):
        d = float(np.exp(rng.uniform(np.log(dmin), np.log(dmax))))
        # centre inside the liver, at least a third of the radius from its edge (large ones may bulge the capsule)
        ok = src.liver_dist >= min(d / 6, float(src.liver_dist.max()) * 0.8)
        cand = np.flatnonzero(ok) if ok.any() else np.arange(len(src.liver_dist))
        v = src.liver_idx[int(rng.choice(cand))].astype(np.float64) + rng.uniform(-0.5, 0.5, 3)
        c = src.affine[:3, :3] @ v + src.affine[:3, 3]
        out.append(Lesion(kind=kind, centre_ras=[float(x) for x in c], diameter_mm=d,
                          axes=[float(x) for x in rng.uniform(0.75, 1.25, 3)],
                          rotation_deg=[float(x) for x in rng.uniform(-90, 90, 3)],
                          lobulation=float(rng.uniform(*lobulation)), noise_seed=int(rng.integers(1 << 30))))
    return out


def lesion_fraction(les: Lesion, ras: np.ndarray, soft_mm: float) -> Tuple[np.ndarray, np.ndarray]:
    """(fraction in [0, 1], normalised radius rho: 0 centre, 1 boundary) at RAS points. The edge is a linear ramp
    soft_mm wide (in-plane partial volume); the boundary is a smooth random field of wavelength ~ the radius."""
    r = les.diameter_mm / 2
    R = _rotation(les.rotation_deg)
    d = (ras - np.array(les.centre_ras, np.float32)) @ R.astype(np.float32)
    lo = np.array(les.centre_ras) - 1.6 * r
    hi = np.array(les.centre_ras) + 1.6 * r
    inb = np.all((ras >= lo) & (ras <= hi), axis=-1)
    frac = np.zeros(ras.shape[:-1], np.float32)
    rho = np.full(ras.shape[:-1], 9.0, np.float32)
    if not inb.any():
        return frac, rho
    dd = d[inb] / np.array(les.axes, np.float32)
    rr = np.linalg.norm(dd, axis=-1) / r
    nrng = np.random.default_rng(les.noise_seed)
    rr = rr * (1 + les.lobulation * 0.5 * _smooth_field(nrng, dd, 6, (0.6 * r + 2, 1.5 * r + 4)))
    rho[inb] = rr
    frac[inb] = np.clip(0.5 - (rr - 1) * r / max(soft_mm, 1e-3), 0, 1)
    return frac, rho
