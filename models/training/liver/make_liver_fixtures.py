#!/usr/bin/python3
"""Test fixtures of the liver-tumour route (issue 16) and the python reference answer for them.

    make_liver_fixtures.py [--expected-only] [--onnx models/liver-aqcf.onnx]

Writes test/fixtures/liver/{ct,mr}-phantom.nii.gz (+ -label.nii.gz) from TEST-split phantom draws (the first seed
>= 500 that fits: CT 256^2, arterial/portal, >= 2.5 mm, 16-18 slices, >= 2 tumours of >= 1 mL; MRI T1
post-contrast, 256^2, 16-20 slices, a tumour >= 2 mL; 16-20 slices keep each file <= 1.5 MB),
and expected.json: what the reference pipeline (this contract's preprocessing, the ONNX model run in
onnxruntime-node from the repo's node_modules, back to the source grid, post-processing and measurements of
liver_post.py) gives for each. `--expected-only` keeps the NIfTI files and recomputes expected.json (after a new
model). NIfTI convention: see test/fixtures/liver/README.md (written here too).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))
import ct_phantoms as ctp  # noqa: E402
import mr_phantoms as mrp  # noqa: E402
from anatomy import choose_source  # noqa: E402
from evaluate_liver import labels_from_probs  # noqa: E402
from export_liver import ort_logits  # noqa: E402
import liver_post  # noqa: E402

FIX = ROOT / "test" / "fixtures" / "liver"
SIZE, SPACING = 128, 3.0


def affine_of(ps: float, sp: float, ipp: list) -> np.ndarray:
    """voxel (i = column, j = row, k = slice) -> RAS mm, for an axial DICOM series with IOP [1,0,0,0,1,0] whose
    first slice's IPP (LPS) is ipp: LPS x = ipp_x + i*ps, y = ipp_y + j*ps, z = ipp_z + k*sp; RAS = (-x, -y, z)."""
    a = np.diag([-ps, -ps, sp, 1.0])
    a[:3, 3] = [-ipp[0], -ipp[1], ipp[2]]
    return a


def save(vol_srC: np.ndarray, aff: np.ndarray, path: Path) -> None:
    """vol [S, R, C] -> NIfTI data[i = column, j = row, k = slice] (data[:, :, k].T is DICOM slice k)."""
    img = nib.Nifti1Image(np.ascontiguousarray(vol_srC.transpose(2, 1, 0)), aff)
    img.header.set_xyzt_units("mm")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    nib.save(img, str(path))


def load(path: Path):
    """-> (vol [S, R, C], pixel spacing, slice spacing, first IPP in LPS)."""
    img = nib.load(str(path))
    a = img.affine
    vol = np.asarray(img.dataobj).transpose(2, 1, 0)
    return vol, float(-a[0, 0]), float(a[2, 2]), [float(-a[0, 3]), float(-a[1, 3]), float(a[2, 3])]


def find_ct():
    """Contrast phase, slices >= 2.5 mm, 16-18 slices (<= 1.5 MB), >= 2 tumours of >= 1 mL, one >= 5 mL."""
    for s in range(500, 800):
        src, neg = choose_source("test", s, 105)
        p = ctp.draw_ct_params("test", s, src, (256,), 18)
        if neg or len(p.lesions) < 2 or p.phase == "native" or p.slice_thickness < 2.5 or not 16 <= p.slices <= 18:
            continue
        st = ctp.generate_ct("test", s, matrix_choices=(256,), max_slices=18)
        vml = p.pixel_spacing ** 2 * p.slice_thickness / 1000
        ml = sorted(((st.instances == k).sum() * vml for k in range(1, len(p.lesions) + 1)), reverse=True)
        if ml[1] >= 1 and ml[0] >= 5:
            return s, st
    raise RuntimeError("no CT seed fits")


def find_mr():
    """T1 post-contrast, 16-20 slices (<= 1.5 MB), >= 1 tumour of >= 2 mL."""
    for s in range(500, 800):
        src, neg = choose_source("test", s, 205)
        p = mrp.draw_mr_params("test", s, src, (256,), 20)
        if neg or p.sequence != "T1post" or len(p.lesions) < 1 or not 16 <= p.slices <= 20:
            continue
        st = mrp.generate_mr("test", s, matrix_choices=(256,), max_slices=20)
        vml = p.pixel_spacing ** 2 * (p.slice_thickness + p.slice_gap) / 1000
        if max((st.instances == k).sum() * vml for k in range(1, len(p.lesions) + 1)) >= 2:
            return s, st
    raise RuntimeError("no MRI seed fits")


def reference(vol: np.ndarray, modality: str, ps: float, sp: float, ipp: list, onnx: Path, post_args: tuple) -> dict:
    x = ctp.ct_window(vol.astype(np.float32)) if modality == "ct" else mrp.mr_normalise(vol)
    xm = ctp.to_model_grid(x, ps, SIZE, SPACING)
    logits = ort_logits(onnx, xm[:, None], np.full(len(xm), 1.0 if modality == "ct" else 0.0, np.float32))
    e = np.exp(logits - logits.max(1, keepdims=True))
    pred = labels_from_probs(e / e.sum(1, keepdims=True), vol.shape[1], vol.shape[2], ps, SPACING)
    raw = {"liverMl": float((pred >= 1).sum() * ps * ps * sp / 1000), "tumourVoxels": int((pred == 2).sum())}
    post = liver_post.postprocess(pred, [sp, ps, ps], *post_args)
    m = liver_post.measure(post, [sp, ps, ps], ipp)
    m["raw"] = raw
    m["labelSha256"] = hashlib.sha256(np.ascontiguousarray(post).tobytes()).hexdigest()
    return m, post


def truth_summary(lab: np.ndarray, ps: float, sp: float, ipp: list) -> dict:
    m = liver_post.measure(lab, [sp, ps, ps], ipp)
    return {"liverMl": m["liverMl"], "tumourCount": m["tumourCount"], "tumourMl": m["tumourMl"],
            "tumours": [{k: t[k] for k in ("ml", "longestAxialDiameterMm")} for t in m["tumours"]]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expected-only", action="store_true")
    ap.add_argument("--onnx", default=str(ROOT / "models" / "liver-aqcf.onnx"))
    a = ap.parse_args()
    FIX.mkdir(parents=True, exist_ok=True)
    info = {}
    if not a.expected_only:
        s, st = find_ct()
        p = st.params
        aff = affine_of(p.pixel_spacing, p.slice_thickness, st.ipp_first)
        save(st.hu.astype(np.int16), aff, FIX / "ct-phantom.nii.gz")
        save(st.label.astype(np.uint8), aff, FIX / "ct-phantom-label.nii.gz")
        info["ct"] = {"split": "test", "seed": s, "phase": p.phase, "kernel": p.kernel, "tumourKind": p.tumour_kind,
                      "lesionsDrawn": len(p.lesions)}
        s, st = find_mr()
        p = st.params
        aff = affine_of(p.pixel_spacing, p.slice_thickness + p.slice_gap, st.ipp_first)
        save(st.img.astype(np.uint16), aff, FIX / "mr-phantom.nii.gz")
        save(st.label.astype(np.uint8), aff, FIX / "mr-phantom-label.nii.gz")
        info["mr"] = {"split": "test", "seed": s, "sequence": p.sequence, "fatSat": p.fat_sat,
                      "tumourKind": p.tumour_kind, "lesionsDrawn": len(p.lesions)}
    else:
        info = {k: v["phantom"] for k, v in json.loads((FIX / "expected.json").read_text())["cases"].items()}
    onnx = Path(a.onnx)
    man = json.loads(onnx.with_suffix(".json").read_text())
    pp = man.get("postprocess", {})
    min_ml = liver_post.manifest_params(pp, "CT")[0]
    out = {"model": {"name": man["name"], "version": man["version"], "sha256": man["sha256"]},
           "pipeline": "models/training/liver/make_liver_fixtures.py: contract preprocessing (CT window W400/L60 | "
                       "MRI per-series median-foreground), 128^2 @ 3 mm model grid, ONNX in onnxruntime-node (1 thread), "
                       "softmax back to the source grid (bilinear), argmax, liver_post.postprocess/measure",
           "minTumourMl": min_ml, "tumourShape": pp.get("tumourShape", {}), "cases": {}}
    for mod in ("ct", "mr"):
        vol, ps, sp, ipp = load(FIX / f"{mod}-phantom.nii.gz")
        lab, *_ = load(FIX / f"{mod}-phantom-label.nii.gz")
        ref, _ = reference(vol, mod, ps, sp, ipp, onnx, liver_post.manifest_params(pp, mod.upper()))
        out["cases"][mod] = {"file": f"{mod}-phantom.nii.gz", "modality": "CT" if mod == "ct" else "MR",
                             "shape": {"slices": int(vol.shape[0]), "rows": int(vol.shape[1]), "columns": int(vol.shape[2])},
                             "pixelSpacingMm": ps, "sliceSpacingMm": sp, "firstIppLps": ipp,
                             "phantom": info[mod], "truth": truth_summary(lab, ps, sp, ipp), "expected": ref}
        print(mod, json.dumps({k: ref[k] for k in ("liverMl", "tumourCount", "tumourMl")}),
              "truth", json.dumps({k: out["cases"][mod]["truth"][k] for k in ("liverMl", "tumourCount", "tumourMl")}))
    (FIX / "expected.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
