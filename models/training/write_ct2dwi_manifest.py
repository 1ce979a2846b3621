#!/usr/bin/python3
"""Write models/<name>.json for a CT -> DWI generator from its train_ct2dwi.py run (record.json) and the node-path
TEST evaluation (eval_ct2dwi.ts output). The sha256 is computed from the ONNX file in models/.

    /usr/bin/python3 models/training/write_ct2dwi_manifest.py --run ct2dwi=out/ct2dwi-run1 \
        ct2dwi-pix2pix=out/pix2pix-run1 --eval out/ct2dwi-eval/test.json
"""
import argparse
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE.parent
VERSION = "0.1.0"

DESCRIPTIONS = {
    "ct2dwi": ("CT -> DWI generator after JMMDA-GAN (small): mask-guided feature fusion (brain mask from the CT as a "
               "prior modulating every encoder level), multi-frequency encoder (Haar DWT at every downsampling, LL to a "
               "low-frequency path, LH/HL/HH to a high-frequency path), dual-path multi-head attention (4 heads) at the "
               "8x8 bottleneck, adaptive fusion weights (per-channel softmax over the two paths); U-Net decoder; trained "
               "adversarially (PatchGAN, LSGAN) with a brain-weighted L1 loss."),
    "ct2dwi-pix2pix": ("pix2pix-style baseline: U-Net generator (strided conv encoder, transposed-conv decoder) on the same "
                       "inputs, the same PatchGAN discriminator and losses. For comparison; the node routes to ct2dwi."),
}


def manifest(name: str, run: Path, ev: dict) -> dict:
    rec = json.loads((run / "record.json").read_text())
    onnx = MODELS_DIR / f"{name}.onnx"
    s = ev["summary"]
    a = rec["args"]
    return {
        "name": name,
        "version": VERSION,
        "file": onnx.name,
        "sha256": hashlib.sha256(onnx.read_bytes()).hexdigest(),
        "bytes": onnx.stat().st_size,
        "task": "ct-to-dwi",
        "description": DESCRIPTIONS[name],
        "inputs": {
            "tensor": "input",
            "channels": [{"modality": "CT", "sliceOffset": -1}, {"modality": "CT", "sliceOffset": 0},
                         {"modality": "CT", "sliceOffset": 1}, {"modality": "BRAINMASK", "sliceOffset": 0}],
            "grid": {"size": [128, 128], "spacingMm": 2.0},
            "normalisation": {
                "CT": {"method": "window", "center": 40, "width": 80, "clip": [0, 1],
                       "note": "HU, brain window 0-80 HU: x = clip(HU / 80, 0, 1)"},
                "BRAINMASK": {"method": "scale", "factor": 1, "clip": [0, 1],
                              "note": "brain mask from the CT on the CT grid (src/pipelines/ct-brain-mask.ts = phantoms.ct_brain_mask), then bilinear to the model grid"},
            },
            "requires": ["CT"],
            "ctKind": "non-contrast head CT, any kernel, 1-5 mm slices (trained range)",
        },
        "outputs": {
            "tensor": "dwi",
            "meaning": "synthetic trace DWI at b = 1000 s/mm2, y = 1 for normal white matter (>= 0)",
            "bValue": 1000,
            "scale": 1000,
            "scaleNote": "stored = round(1000 * y) on the CT grid (bilinear back from the model grid), as the SC series pixel values",
        },
        "training": {
            "data": ("SYNTHETIC paired phantoms only (models/training/phantoms.py generate_ct_study): Colin27 anatomy with a "
                     "bone/dura/soft-tissue model, real acute lesion maps (SOOP, OpenNeuro ds004889) slightly hypodense on "
                     "CT, CT kernels/noise/beam-hardening-like shading, and the b=1000 DWI of the same phantom on the CT "
                     "grid. Not trained on any patient CT or DWI: not for clinical use."),
            "splits": "by subject, models/training/splits.json (same split as the lesion models)",
            "trainStudies": rec["train_studies"], "trainSlices": rec["train_slices"],
            "valStudies": rec["val_studies"], "valSlices": rec["val_slices"],
            "iterations": rec["iterations"], "imagesSeen": rec["images_seen"], "wallMinutes": rec["wall_minutes"],
            "selected": rec["selected"], "selection": "best VAL PSNR over the brain (model grid), checked every "
                                                      f"{a['val_every']} iterations and at the end",
            "valHistory": rec["val_history"], "params": rec["params"],
            "losses": f"G: {a['lambda_l1']} x brain-weighted L1 + {a['gan']} x LSGAN; D: LSGAN PatchGAN on (input, dwi/3)",
            "batch": a["batch"], "crop": a["crop"], "fullEvery": a["full_every"], "fullBatch": a["full_batch"],
            "seed": a["seed"], "hardware": f"CPU (Debian torch {rec['torch']}, 1 thread, nice 10, shared 2-core machine)",
        },
        "metrics": {
            "split": "test",
            "data": (f"{s['studies']} held-out TEST-split CT phantom studies (phantoms.build_ct_split('test', "
                     f"{s['studies']}, seed0=0), {s['withLesion']} with a lesion), scored through the node's code path on "
                     "each CT's own grid (models/training/eval_ct2dwi.ts)"),
            "imageMetricsDefinition": ("over the intracranial truth; each volume divided by its own brain median (absolute DWI scale and MR coil bias are not predictable from CT; the lesion model normalises the same way), then clip(x / 3, 0, 1); PSNR peak 1; SSIM 7x7 uniform window, K1 0.01, K2 0.03, per slice, mean over brain pixels"),
            "mse": s[name]["mse"], "psnr": s[name]["psnr"], "ssim": s[name]["ssim"],
            "lesionModel": s["lesionModel"],
            "lesionDiceOnSynthetic": s[name]["diceSynthetic"], "lesionDiceOnTrueDwi": {"mean": s["trueDwi"]["diceMean"], "median": s["trueDwi"]["diceMedian"]},
            "noLesionFalsePositiveOnSynthetic": s[name]["fpMlSynthetic"],
            "brainMaskDice": s["brainMaskDice"],
            "cpuSynthesisMsMedian": s[name]["synthesisMsMedian"],
        },
        "reproduce": (f"cd models/training && /usr/bin/python3 phantoms.py --ct-build train 60 --seed0 0 && "
                      f"/usr/bin/python3 phantoms.py --ct-build train 60 --seed0 60 && /usr/bin/python3 phantoms.py "
                      f"--ct-build val 12 && /usr/bin/python3 phantoms.py --ct-build test 40 && /usr/bin/python3 "
                      f"train_ct2dwi.py --model {name} --minutes {a['minutes']} --train {' '.join(a['train'])} --val {a['val']} "
                      f"--out {a['out']} --export-to .. && npx tsx eval_ct2dwi.ts && /usr/bin/python3 write_ct2dwi_manifest.py "
                      f"--run {name}={a['out']} --eval out/ct2dwi-eval/test.json"),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, nargs="+", help="name=run-dir pairs")
    ap.add_argument("--eval", required=True)
    a = ap.parse_args()
    ev = json.loads(Path(a.eval).read_text())
    for r in a.run:
        n, d = r.split("=", 1)
        m = manifest(n, Path(d), ev)
        (MODELS_DIR / f"{n}.json").write_text(json.dumps(m, indent=1) + "\n")
        print(n, m["sha256"][:12], json.dumps({k: m["metrics"][k] for k in ("psnr", "ssim", "lesionDiceOnSynthetic")}))
