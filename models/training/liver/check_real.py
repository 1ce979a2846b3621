#!/usr/bin/python3
"""A trained liver model on the two real CTs in ../shared/data (issue 16: "tests on the real CTs above").

1. dcmqi's real 3-slice liver CT (seg-examples/segmentations/ct-3slice, 512^2 @ 0.81 mm, 1 mm) with its liver SEG
   (liver.dcm, frames matched to the CT by ReferencedSOPInstanceUID): liver Dice per slice and overall, and the
   tumour area the model marks (no tumour is known there: any is a false positive). Never used in training.
2. TotalSegmentator's example CT (abdomen-ct, 112 slices @ 3 mm): liver Dice on the labelled slices 82-111 (NOT
   independent: the phantoms are built on this anatomy) and the liver/tumour volume predicted per slice band
   below them (the liver's lower part is really there down to about slice 70; below, the pelvis must stay empty).

    check_real.py --ckpt ../out/liver-gpu/aqcf.pt --model aqcf --base 16 [--size 256 --spacing 1.5] [--out f.json]
No patient attribute is read or printed.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import aqcf_net  # noqa: E402
from anatomy import DATA, LABEL_OFFSET  # noqa: E402
from ct_phantoms import ct_window  # noqa: E402
from evaluate_liver import predict_series  # noqa: E402
from metrics import dice  # noqa: E402
import liver_post  # noqa: E402
from ct_phantoms import to_model_grid  # noqa: E402

SEGX = DATA.parent / "seg-examples" / "segmentations"


def load_3slice():
    import pydicom
    cts = [pydicom.dcmread(f) for f in sorted(glob.glob(str(SEGX / "ct-3slice" / "*.dcm")))]
    cts.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in cts]).astype(np.float32)
    seg = pydicom.dcmread(SEGX / "liver.dcm")
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    uid = {d.SOPInstanceUID: i for i, d in enumerate(cts)}
    truth = np.zeros(hu.shape, np.uint8)
    for f, g in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ref = g.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        truth[uid[ref]] |= frames[f].astype(np.uint8)
    return hu, truth, float(cts[0].PixelSpacing[0]), abs(float(cts[1].ImagePositionPatient[2]) - float(cts[0].ImagePositionPatient[2]))


def load_totalseg():
    """The NIfTI (RAS) as axial LPS slices [k, row = posterior, col = patient left], with the label slab placed."""
    import nibabel as nib
    a = np.asarray(nib.load(DATA / "example_ct.nii.gz").dataobj).astype(np.float32)
    lab = np.asarray(nib.load(DATA / "example_seg.nii.gz").dataobj)
    to_lps = lambda v: np.transpose(v[::-1, ::-1, :], (2, 1, 0))  # noqa: E731  i -> -x, j -> -y
    full = np.zeros(a.shape, np.uint8)
    full[:, :, LABEL_OFFSET:LABEL_OFFSET + lab.shape[2]] = (lab == 5)
    return to_lps(np.maximum(a, -1024)), to_lps(full), 3.0, 3.0


def run(model, hu, ps, size, spacing, device):
    x = to_model_grid(ct_window(hu), ps, size, spacing)
    return predict_series(model, x, 1.0, hu.shape[1], hu.shape[2], ps, spacing, device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--model", choices=["aqcf", "unet-ct"], default="aqcf")
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--spacing", type=float, default=1.5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="")
    ap.add_argument("--min-tumour-ml", type=float, default=0.065, help="post-processing (totalseg_example is post-processed)")
    ap.add_argument("--shape", default="0:0", help="end_c:min_fill of the shape rules (liver_post.py; the manifest's CT values)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    shape = [float(v) for v in a.shape.split(":")]
    model = aqcf_net.build(a.model, a.base, a.depth)
    model.load_state_dict(torch.load(a.ckpt, map_location="cpu"))
    model = model.to(a.device).eval()
    res = {}
    hu, truth, ps, sp = load_3slice()
    pred = run(model, hu, ps, a.size, a.spacing, a.device)
    post = liver_post.postprocess(pred, [sp, ps, ps], a.min_tumour_ml, *shape)
    res["dcmqi_3slice"] = {
        "liver_dice": dice(pred >= 1, truth > 0),
        "liver_dice_per_slice": [dice(pred[z] >= 1, truth[z] > 0) for z in range(len(pred))],
        "tumour_marked_ml": float((pred == 2).sum() * ps * ps * sp / 1000), "truth_tumour": "none known",
        "post": {"liver_dice": dice(post >= 1, truth > 0), "tumour_marked_ml": float((post == 2).sum() * ps * ps * sp / 1000),
                 "tumours": liver_post.measure(post, [sp, ps, ps])["tumourCount"]}}
    hu, truth, ps, sp = load_totalseg()
    pred = run(model, hu, ps, a.size, a.spacing, a.device)
    raw = pred
    pred = liver_post.postprocess(raw, [sp, ps, ps], a.min_tumour_ml, *shape)
    res["totalseg_raw"] = {"liver_dice_labelled_slices": dice(raw[LABEL_OFFSET:] >= 1, truth[LABEL_OFFSET:] > 0),
                           "liver_ml_pred_slices_0_39": float((raw[:40] >= 1).sum() * ps * ps * sp / 1000),
                           "tumour_ml_pred": float((raw == 2).sum() * ps * ps * sp / 1000)}
    lab = slice(LABEL_OFFSET, hu.shape[0])
    vml = ps * ps * sp / 1000
    bands = [(0, 40), (40, 60), (60, 70), (70, LABEL_OFFSET)]
    res["totalseg_example"] = {
        "liver_dice_labelled_slices_not_independent": dice(pred[lab] >= 1, truth[lab] > 0),
        "liver_ml_pred_by_slice_band": {f"{z0}-{z1 - 1}": float((pred[z0:z1] >= 1).sum() * vml) for z0, z1 in bands},
        "tumour_ml_pred_by_slice_band": {f"{z0}-{z1 - 1}": float((pred[z0:z1] == 2).sum() * vml) for z0, z1 in bands},
        "tumour_marked_ml_labelled_slices": float((pred[lab] == 2).sum() * vml)}
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
