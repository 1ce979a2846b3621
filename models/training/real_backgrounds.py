#!/usr/bin/python3
"""Acute stroke lesions inserted into real diffusion scans of real people (issue 17: "real backgrounds").

Backgrounds (read as the node assembles them: `npx tsx dump_real_backgrounds.ts` writes cache/real-bg/<name>/ with
the DWI, b0, ADC, the node's own brain mask and the geometry; pixels only, no header):
  - `siemens-xa30`: healthy volunteer, Siemens Prisma XA30, scanner TRACEW b = 2500 + scanner ADC + the b0 frames,
    72 x 72 x 39 @ 3 mm (neurolabusc/dcm_qa_xa30, BSD-2-Clause);
  - `philips-achieva`: Philips Achieva 1.5 T clinical study, isotropic b = 1000 (series 304) + scanner ADC (303) +
    b0 of 301, 192 x 192 x 24 @ 1.2 x 1.2 x 6 mm (5 mm slices), oblique slices; no acute infarct seen
    (models/README.md), a T2-bright region with raised ADC that stays as it is. No licence stated: never commit
    its pixels or anything rendered from it.
  - Not used: the GE DWI (its pixel data hold no head, models/README.md); the BraTS brains (no diffusion contrast:
    a T2 -> b0 / DWI mapping would invent the very tissue contrast the model must learn from real scans).
The backgrounds are the SAME two heads in every split: train / val / test differ only in the lesion maps (disjoint
subjects, splits.json) and the seeds. A test split built here measures lesion detection on real tissue, not
generalisation to heads the model has not seen.

Lesion shapes: the real acute lesion maps of ../shared/data/lesion-maps (SOOP, OpenNeuro ds004889, MNI 1 mm), only
those of the study's split (phantoms.load_splits()). The study-level mixture (per lesion study):
  - `real-map` p 0.35: one whole real map of the split (many are multifocal: a real embolic pattern, any size);
  - `shower` p 0.35: an embolic shower of K = 3-30 small lesions (K log-uniform), each a real connected component
    of 15-600 voxels (0.015-0.6 mL) cut from the split's maps (random flips), centred on parenchyma of one vascular
    territory (p 0.6; ArterialAtlas136 level-2: ACA / MCA / PCA / vertebro-basilar, one side; MCA weighted x3) or of
    any territory (p 0.4, e.g. cardio-embolic, both sides), cortical/subcortical centres (< 20 mm from the brain
    edge) weighted x3;
  - `territorial` p 0.15: one real map of >= 5 mL (a single territorial infarct);
  - `mixed` p 0.15: a real map of >= 5 mL plus a shower of K = 3-15.
  and p = 0.15 of all studies have no lesion: the real scan exactly as acquired (the "no lesion" material).
Warp (background voxel -> MNI, pulled back): per-axis moment matching of the node's brain mask to Colin27's
(`ch2bet`; centroid and standard deviation per RAS axis), then a random affine about the brain centre (rotation
N(0, 5 deg) pitch/roll/yaw, scale U(0.93, 1.07) per axis, shift N(0, 4 mm)) and a small elastic field
(phantoms._smooth_field, 3 cosine terms, wavelength 40-100 mm, amplitude U(0, 3) mm); the lesion composite is
sampled with 2 x 2 in-plane sub-samples for pixels > 1.5 mm and round(thickness / 2) sub-samples through the slice
(partial volume at every edge), then confined to the background's parenchyma: lesioned fraction of a voxel
w = lesion fraction x parenchyma fraction (inside the node's brain mask; parenchyma fraction from the voxel's ADC
between the study's normal tissue and CSF: w = 0 in CSF, scalp, skull and outside the head).
Signal (published acute-infarct ranges, first hours to ~2 days):
  - ADC ratio to normal tissue r = U(0.45, 0.75) per study (hyperacute core ~0.5 of normal: Schulte-Altedorneburg
    / Bruening et al., RoFo 1999 (PMID 10230439); minimum ~0.56-0.6 in the first days: Lansberg et al., AJNR 2001;
    22:637-644; persistent-core ratio 0.77 over whole lesion VOIs with partial volume: Bevers / DTI series,
    PMC6399390), per embolus r + N(0, 0.05), times a heterogeneity field 1 + U(0.05, 0.15) x smooth (10-30 mm),
    clipped [0.35, 0.90];
  - T2 component (b0 and DWI) x (1 + t), t = U(0, 0.25) (SI_T2 ratio rises slowly from ~1.0 in the first hours:
    Lansberg 2001), same heterogeneity;
  - DWI rise from the physics of the scan's own b-value, not a free parameter: the lesioned part of a voxel has
    b0 x (1 + t) and DWI x (1 + t) x exp(b x ADC_t x (1 - r)) with ADC_t the voxel's tissue ADC (clipped to
    0.6-1.3 x the study's normal tissue), so the DWI ratio is ~1.4-2.0 at b 1000 and higher at b 2500, as observed
    (Lansberg 2001: SI_DWI ratio ~1.5-2.5 in the first week); mixed with the unlesioned part by w (partial
    volume); ADC recomputed two-point from the change: ADC' = ADC + (ln g0 - ln gDWI) / b, so the real ADC of
    the background (noise, kurtosis at b 2500, vendor fit) stays underneath.
Truth: a voxel is lesion when w >= 0.5 (as phantoms.py). Small emboli on the 3 mm Siemens grid (27 uL voxels) can
have no voxel at 0.5: they stay in the images, not in the truth, as an expert would probably miss them too.

    nice -n 19 /usr/bin/python3 real_backgrounds.py test 60      # -> cache/studies/realbg-test/test-<seed>/
    nice -n 19 /usr/bin/python3 real_backgrounds.py val 30
    nice -n 19 /usr/bin/python3 real_backgrounds.py train 300 --npz   # model-grid slices for fine-tuning
Output: the fixture format of phantoms.write_fixture (dwi/b0/adc .u16.gz, mask.u8.gz, meta.json), read by
eval_postprocess.ts (`phantoms <dir>`) and test/helpers/dwi-phantom.ts; meta.json adds `background`, `studyType`,
the lesion list and the drawn signal parameters. Everything is a pure function of (split, seed).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import nibabel as nib
import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import phantoms  # noqa: E402

BG_DIR = phantoms.CACHE / "real-bg"
BACKGROUNDS = {"siemens-xa30": 3.0, "philips-achieva": 5.0}  # name: slice thickness (mm)
ATLAS = phantoms.LESION_DIR / "ArterialAtlas136.nii.gz"
STREAM = 23  # default_rng([seed, 23, split id]): no other generator uses this stream
SPLIT_ID = {"train": 1, "val": 2, "test": 3}
EMBOLUS_VOXELS = (15, 600)  # 1 mm voxels: 0.015-0.6 mL
TERRITORIAL_ML = 5.0


# ----------------------------------------------------------------------------------------------------------
# Backgrounds
# ----------------------------------------------------------------------------------------------------------
def _colin_brain_moments():
    bet = ndimage.binary_fill_holes(nib.load(phantoms.COLIN_BET).get_fdata() > 0)
    idx = np.argwhere(bet).astype(np.float64)
    ras = idx + phantoms.COLIN_ORIGIN
    return ras.mean(0), ras.std(0)


_BG: Dict[str, dict] = {}


def load_background(name: str) -> dict:
    if name in _BG:
        return _BG[name]
    d = BG_DIR / name
    if not (d / "geometry.json").exists():
        raise SystemExit(f"{d} missing: run `npx tsx dump_real_backgrounds.ts` first")
    g = json.loads((d / "geometry.json").read_text())
    sh = (g["slices"], g["rows"], g["columns"])
    vol = {k: np.fromfile(d / f"{k}.f32", np.float32).reshape(sh) for k in ("b0", "dwi", "adc")}
    brain = np.fromfile(d / "brain.u8", np.uint8).reshape(sh) > 0
    iop = np.array(g["imageOrientationPatient"], np.float64)
    rc, cc, nrm = iop[:3], iop[3:], np.array(g["normal"], np.float64)
    p0 = np.array(g["imagePositionPatientFirst"], np.float64)
    zz, rr, ccx = np.meshgrid(np.arange(sh[0]), np.arange(sh[1]), np.arange(sh[2]), indexing="ij")
    # DICOM: column index moves along the row cosines, row index along the column cosines
    lps = (p0 + ccx[..., None] * g["pixelSpacing"][1] * rc + rr[..., None] * g["pixelSpacing"][0] * cc
           + zz[..., None] * g["sliceSpacing"] * nrm)
    ras = (lps * np.array([-1, -1, 1])).astype(np.float32)
    # normal tissue ADC (as the node's restricted-diffusion rule: brain voxels, CSF-like above 1.5 x median out)
    a = vol["adc"][brain & (vol["adc"] > 0)]
    ref = float(np.median(a[a < 1.5 * np.median(a)]))
    hi = max(2.5 * ref, float(np.percentile(a, 99.5)))
    adc = vol["adc"]
    par = np.clip((hi - adc) / (hi - 1.15 * ref), 0, 1) * brain * (adc > 0.3 * ref)
    # distance to the brain-mask edge (mm, in-plane per slice is enough for "cortical/subcortical")
    edge = np.stack([ndimage.distance_transform_edt(brain[z], sampling=g["pixelSpacing"]) for z in range(sh[0])])
    bm = np.argwhere(brain)
    pts = ras[brain].astype(np.float64)
    mu_b, sd_b = pts.mean(0), pts.std(0)
    mu_m, sd_m = _colin_brain_moments()
    bg = dict(name=name, geometry=g, shape=sh, **vol, brain=brain, ras=ras, refAdc=ref, par=par.astype(np.float32),
              edge=edge.astype(np.float32), mu_b=mu_b, scale=sd_m / sd_b, mu_m=mu_m, n_brain=len(bm),
              thickness=BACKGROUNDS[name], rc=rc, cc=cc, normal=nrm)
    _BG[name] = bg
    return bg


# ----------------------------------------------------------------------------------------------------------
# Lesion material of one split: whole maps (with volumes) and a bank of small real components (emboli)
# ----------------------------------------------------------------------------------------------------------
def lesion_bank(split: str, max_subjects: int = 400) -> dict:
    f = phantoms.CACHE / "real-bg" / f"bank_{split}_{max_subjects}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    subjects = phantoms.load_splits()[split][:max_subjects]
    vols, emboli = {}, []
    t0 = time.time()
    for s in subjects:
        les = np.asarray(nib.load(str(phantoms.LESION_DIR / f"{s}_lesion.nii.gz")).dataobj) > 0
        vols[s] = float(les.sum()) / 1000.0
        lab, n = ndimage.label(les, np.ones((3, 3, 3)))
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        for i, sl in enumerate(ndimage.find_objects(lab), start=1):
            if sl is None or not (EMBOLUS_VOXELS[0] <= sizes[i] <= EMBOLUS_VOXELS[1]):
                continue
            crop = np.pad((lab[sl] == i), 1)[::-1].astype(np.uint8)  # lesion grid x = 78 - i: flip to RAS order
            emboli.append((s, crop))
    bank = {"split": split, "subjects": subjects, "volumesMl": vols, "emboli": emboli}
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(pickle.dumps(bank))
    print(f"bank {split}: {len(subjects)} maps, {len(emboli)} emboli, {time.time() - t0:.0f}s", flush=True)
    return bank


_ATLAS = None


def atlas_groups() -> np.ndarray:
    """ArterialAtlas136 level-2 territory groups on the lesion-map grid (x = 78 - i, y = j - 112, z = k - 50)."""
    global _ATLAS
    if _ATLAS is None:
        lut = {}
        for line in (phantoms.LESION_DIR / "ArterialAtlas136.txt").read_text().splitlines():
            p = line.split("|")
            if len(p) >= 4:
                lut[int(p[0])] = int(p[3])
        a = np.asarray(nib.load(str(ATLAS)).dataobj).astype(np.int32)
        g = np.zeros(a.max() + 1, np.int32)
        for k, v in lut.items():
            g[k] = v
        _ATLAS = g[a]
    return _ATLAS


# ACA L/R 1/2, MCA L/R 3/4, PCA L/R 5/6, vertebro-basilar L/R 7/8 (9/10: ventricles, never a territory)
TERRITORY_WEIGHTS = {1: 1.0, 2: 1.0, 3: 3.0, 4: 3.0, 5: 1.0, 6: 1.0, 7: 0.7, 8: 0.7}


# ----------------------------------------------------------------------------------------------------------
# One study
# ----------------------------------------------------------------------------------------------------------
def _warp(bg: dict, rng: np.random.Generator) -> tuple:
    """Background voxel (sub-)sample points -> Colin27/MNI RAS mm, [nsub, S, R, C, 3], and the warp's draws."""
    g = bg["geometry"]
    rot = [float(x) for x in rng.normal(0, 5, 3)]
    scl = [float(x) for x in rng.uniform(0.93, 1.07, 3)]
    shift = [float(x) for x in rng.normal(0, 4, 3)]
    deform = float(rng.uniform(0, 3))
    dseed = int(rng.integers(2 ** 31))
    A = phantoms._rotation(rot) @ np.diag(scl)
    ps_r, ps_c = g["pixelSpacing"]
    inplane = [(0.0, 0.0)] if max(ps_r, ps_c) <= 1.5 else [(-0.25, -0.25), (-0.25, 0.25), (0.25, -0.25), (0.25, 0.25)]
    nz = max(1, int(round(bg["thickness"] / 2.0)))
    zoff = (np.arange(nz) + 0.5) / nz * bg["thickness"] - bg["thickness"] / 2
    flip = np.array([-1, -1, 1], np.float64)
    out = []
    for dr, dc in inplane:
        for dz in zoff:
            off_lps = dc * ps_c * bg["rc"] + dr * ps_r * bg["cc"] + dz * bg["normal"]
            ras = bg["ras"] + (off_lps * flip).astype(np.float32)
            q = (ras - bg["mu_b"]) * bg["scale"] + bg["mu_m"]  # moment-matched to Colin27
            q = (q - bg["mu_m"]) @ A.T + bg["mu_m"] + np.array(shift)
            if deform > 0:
                drng = np.random.default_rng(dseed)
                for ax in range(3):
                    q[..., ax] += deform * phantoms._smooth_field(drng, ras, 3, (40, 100))
            out.append(q.astype(np.float32))
    return np.stack(out), dict(rotationDeg=rot, scale=scl, shiftMm=shift, elasticMm=deform)


def _sample(vol: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Mean over sub-samples of vol (Colin27 grid) at RAS points q [nsub, S, R, C, 3]."""
    vox = (q - phantoms.COLIN_ORIGIN).reshape(-1, 3).T
    v = ndimage.map_coordinates(vol, vox, order=1, mode="constant", cval=0).reshape(q.shape[:-1])
    return v.mean(0)


def _shower(bg: dict, bank: dict, q_centre: np.ndarray, rng: np.random.Generator, k: int, les: np.ndarray,
            ratio: np.ndarray, r_study: float) -> dict:
    """Paste k real small components into the Colin27-grid composite `les` (and their ADC ratio into `ratio`)."""
    par_ok = (bg["par"] > 0.7) & (bg["edge"] > 3.0)
    atlas = atlas_groups()
    m = q_centre[par_ok]
    ai = np.clip(np.round(78 - m[:, 0]).astype(int), 0, atlas.shape[0] - 1)
    aj = np.clip(np.round(m[:, 1] + 112).astype(int), 0, atlas.shape[1] - 1)
    ak = np.clip(np.round(m[:, 2] + 50).astype(int), 0, atlas.shape[2] - 1)
    terr = atlas[ai, aj, ak]
    one = rng.random() < 0.6
    if one:
        keys = list(TERRITORY_WEIGHTS)
        w = np.array([TERRITORY_WEIGHTS[t] * (terr == t).any() for t in keys], float)
        t = keys[int(rng.choice(len(keys), p=w / w.sum()))]
        cand = terr == t
    else:
        t = None
        cand = terr > 0
    cand &= terr < 9
    wts = np.where(bg["edge"][par_ok] < 20.0, 3.0, 1.0) * cand
    idx = rng.choice(len(wts), size=k, p=wts / wts.sum())
    placed = []
    for i in idx:
        s, crop = bank["emboli"][int(rng.integers(len(bank["emboli"])))]
        for ax in range(3):
            if rng.random() < 0.5:
                crop = np.flip(crop, ax)
        c = np.round(m[i] - phantoms.COLIN_ORIGIN).astype(int) - np.array(crop.shape) // 2
        lo = np.maximum(c, 0)
        hi = np.minimum(c + crop.shape, les.shape)
        if np.any(hi <= lo):
            continue
        sub = crop[tuple(slice(a - b, h - b) for a, b, h in zip(lo, c, hi))].astype(np.float32)
        re = float(np.clip(r_study + rng.normal(0, 0.05), 0.35, 0.9))
        reg = tuple(slice(a, h) for a, h in zip(lo, hi))
        les[reg] = np.maximum(les[reg], sub)
        ratio[reg] = np.where(sub > 0, re, ratio[reg])
        placed.append({"sourceMap": s, "voxels1mm": int(crop.sum()), "adcRatio": round(re, 3)})
    return {"territory": t, "emboli": placed}


def generate(split: str, seed: int, bank: Optional[dict] = None) -> tuple:
    """(phantoms.Study, extra meta) for (split, seed)."""
    rng = np.random.default_rng([seed, STREAM, SPLIT_ID[split]])
    name = str(rng.choice(list(BACKGROUNDS)))
    bg = load_background(name)
    bank = bank or lesion_bank(split)
    g = bg["geometry"]
    S, R, C = bg["shape"]
    b = float(g["bValue"])
    u = rng.random()
    kind = "none" if u < phantoms.NO_LESION_FRACTION else str(rng.choice(["real-map", "shower", "territorial", "mixed"], p=[0.35, 0.35, 0.15, 0.15]))
    b0, dwi, adc = bg["b0"].copy(), bg["dwi"].copy(), bg["adc"].copy()
    extra: dict = {"background": name, "studyType": kind, "backgroundRefAdc": round(bg["refAdc"], 1)}
    mask = np.zeros((S, R, C), np.uint8)
    if kind != "none":
        q, warp = _warp(bg, rng)
        extra["warp"] = warp
        r_study = float(rng.uniform(0.45, 0.75))
        t2 = float(rng.uniform(0.0, 0.25))
        het_amp = float(rng.uniform(0.05, 0.15))
        les = np.zeros((181, 217, 181), np.float32)
        ratio = np.full((181, 217, 181), r_study, np.float32)
        subjects = bank["subjects"]
        if kind in ("real-map", "territorial", "mixed"):
            pool = subjects if kind == "real-map" else [s for s in subjects if bank["volumesMl"][s] >= TERRITORIAL_ML]
            subj = pool[int(rng.integers(len(pool)))]
            les = phantoms.load_lesion(subj)
            extra["lesionMap"] = subj
            extra["lesionMapMl"] = round(bank["volumesMl"][subj], 2)
        if kind in ("shower", "mixed"):
            k = int(round(np.exp(rng.uniform(np.log(3), np.log(30 if kind == "shower" else 15)))))
            extra["shower"] = _shower(bg, bank, q.mean(0), rng, k, les, ratio, r_study)
        lf = np.clip(_sample(les, q), 0, 1)
        lr = _sample(les * ratio, q)
        r_vox = np.where(lf > 1e-4, lr / np.maximum(lf, 1e-4), r_study)
        het = 1 + het_amp * np.clip(phantoms._smooth_field(rng, bg["ras"], 3, (10, 30)), -2, 2)
        r_vox = np.clip(r_vox * het, 0.35, 0.90)
        w = lf * bg["par"]
        a_t = np.clip(adc, 0.6 * bg["refAdc"], 1.3 * bg["refAdc"]) * 1e-6
        g0 = 1 + t2 * het
        gd = g0 * np.exp(b * a_t * (1 - r_vox))
        m0 = 1 - w + w * g0
        md = 1 - w + w * gd
        b0 = b0 * m0
        dwi = dwi * md
        adc = np.where(adc > 0, adc + (np.log(m0) - np.log(md)) / b * 1e6, 0)
        mask = (w >= 0.5).astype(np.uint8)
        extra.update(adcRatio=round(r_study, 3), t2Rise=round(t2, 3), heterogeneity=round(het_amp, 3))
    # a StudyParams for phantoms.write_fixture / model_inputs: the acquisition fields are the background's, the
    # phantom-physics fields (not used here) stay 0
    p = phantoms.StudyParams(**{f.name: 0 for f in dataclasses.fields(phantoms.StudyParams)
                                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING})
    p.seed, p.split, p.subject, p.b_value = seed, split, extra.get("lesionMap"), b
    p.rows, p.columns, p.slices = R, C, S
    p.pixel_spacing = float(g["pixelSpacing"][0])
    p.slice_thickness, p.slice_spacing = bg["thickness"], float(g["sliceSpacing"])
    st = phantoms.Study(params=p, b0=np.clip(np.round(b0), 0, 65535).astype(np.uint16),
                        dwi=np.clip(np.round(dwi), 0, 65535).astype(np.uint16),
                        adc=np.clip(np.round(adc), 0, 65535).astype(np.uint16), mask=mask,
                        ipp_first=[float(x) for x in g["imagePositionPatientFirst"]],
                        iop=[float(x) for x in g["imageOrientationPatient"]])
    return st, extra


def write(split: str, seed: int, out: Path, bank: dict) -> dict:
    st, extra = generate(split, seed, bank)
    meta = phantoms.write_fixture(st, out, f"real background {extra['background']}, {split} split, seed {seed}, {extra['studyType']}")
    if st.mask.any():
        g = st.params
        vml = g.pixel_spacing ** 2 * g.slice_spacing / 1000
        lab, n = ndimage.label(st.mask, np.ones((3, 3, 3)))
        sizes = np.bincount(lab.ravel())[1:] * vml
        extra["truthComponents"] = int(n)
        extra["truthComponentsMl"] = {"<0.1": int((sizes < 0.1).sum()), "0.1-1": int(((sizes >= 0.1) & (sizes <= 1)).sum()), ">1": int((sizes > 1).sum())}
    meta.update(extra)
    meta["generator"] = "models/training/real_backgrounds.py"
    meta["units"]["mask"] = "0/1 truth (>=50% of the voxel lesioned parenchyma)"
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def build_npz(split: str, n: int, out_dir: Path, seed0: int = 0) -> Path:
    """Model-grid slices of studies seed0..seed0+n-1 in the training format of phantoms.build_split (x, y, study)."""
    f = out_dir / f"realbg_{split}_{n}_{seed0}.npz"
    if f.exists():
        return f
    out_dir.mkdir(parents=True, exist_ok=True)
    bank = lesion_bank(split)
    xs, ys, sid, metas = [], [], [], []
    t0 = time.time()
    for i in range(n):
        st, extra = generate(split, seed0 + i, bank)
        x2, y = phantoms.model_inputs(st)
        xs.append(x2.astype(np.float16))
        ys.append(y)
        sid.append(np.full(len(y), i, np.int32))
        metas.append({"seed": seed0 + i, **{k: extra[k] for k in ("background", "studyType")}})
        if (i + 1) % 25 == 0:
            print(f"{split}: {i + 1}/{n} studies, {time.time() - t0:.0f}s", flush=True)
    np.savez(f, x=np.concatenate(xs), y=np.concatenate(ys), study=np.concatenate(sid), meta=json.dumps(metas))
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("split", choices=list(SPLIT_ID))
    ap.add_argument("n", type=int)
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--out", default=str(phantoms.CACHE / "studies"))
    ap.add_argument("--npz", action="store_true", help="model-grid slices for training (cache/data/realbg_<split>_<n>_<seed0>.npz)")
    a = ap.parse_args()
    if a.npz:
        print(build_npz(a.split, a.n, phantoms.CACHE / "data", a.seed0))
        return
    out = Path(a.out) / f"realbg-{a.split}"
    bank = lesion_bank(a.split)
    t0 = time.time()
    for seed in range(a.seed0, a.seed0 + a.n):
        d = out / f"{a.split}-{seed}"
        if (d / "meta.json").exists():
            continue
        m = write(a.split, seed, d, bank)
        print(f"{a.split} {seed} {m['background']:16s} {m['studyType']:12s} {m['lesionVolumeMl']:7.2f} mL "
              f"{m.get('truthComponents', 0):3d} comp {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
