#!/usr/bin/python3
"""Write models/<name>.json from a train_all.py run (its <name>.train.json and <name>.test.json) and the ONNX file
already copied to models/. The sha256 is computed from the file in models/, never copied from the run.

    /usr/bin/python3 models/training/write_manifests.py --run models/training/out/run1
    /usr/bin/python3 models/training/write_manifests.py --run unet2d-baseline=out/run2 dual-encoder=out/run1 ...
"""
import argparse
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE.parent
VERSION = "0.1.0"

DESCRIPTIONS = {
    "unet2d-baseline": "Plain 2D U-Net on DWI(z) and ADC(z). Takes the contract's 6-channel input and uses only channels 1 "
                       "(DWI z) and 4 (ADC z), so the node keeps one pre-processing path.",
    "dual-encoder": "Dual encoder (one CNN encoder per modality, 3 slices each), per-level skip fusion (concat + 1x1 conv), "
                    "2-layer transformer bottleneck on the fused 8x8 map (TransUNet-style), one U-Net decoder.",
    "shaspec-missing": "ShaSpec: shared encoder + DWI- and ADC-specific encoders; a missing modality's feature is the mean "
                       "of the available shared features; trained with random modality dropout, domain-classification "
                       "(alpha 0.1) and distribution-alignment (beta 0.02) losses. One model for DWI+ADC, DWI only, ADC only.",
}


def real_check(name: str, real: Path | None) -> dict:
    """metrics.realHealthyVolunteer from eval_real.ts: the volume marked on a real scan with no lesion."""
    if real is None:
        return {}
    r = json.loads(real.read_text())
    mine = {x["input"]: x["markedMl"] for x in r["results"] if x["model"] == name}
    return {"realHealthyVolunteer": {"data": r["data"], "markedMl": mine,
                                     "note": "no lesion: every marked mL is a false positive (models/training/eval_real.ts)"}}


def manifest(name: str, run: Path, version: str = VERSION, real: Path | None = None) -> dict:
    tr = json.loads((run / f"{name}.train.json").read_text())
    te = json.loads((run / f"{name}.test.json").read_text())
    onnx = MODELS_DIR / f"{name}.onnx"
    sha = hashlib.sha256(onnx.read_bytes()).hexdigest()
    chans = [{"modality": m, "sliceOffset": o} for m in ("DWI", "ADC") for o in (-1, 0, 1)]
    inputs = {
        "tensor": "input",
        "channels": chans,
        "grid": {"size": [128, 128], "spacingMm": 2.0},
        "normalisation": {"DWI": {"method": "median-foreground", "clip": [0, 10]},
                          "ADC": {"method": "scale", "factor": 0.001, "clip": [0, 5]}},
    }
    if name == "shaspec-missing":
        inputs["modalityMaskTensor"] = "modality_mask"
        inputs["modalityMaskOrder"] = ["DWI", "ADC"]
        inputs["anyOf"] = ["DWI", "ADC"]
        inputs["optional"] = ["DWI", "ADC"]
    else:
        inputs["requires"] = ["DWI", "ADC"]
    if name == "unet2d-baseline":
        inputs["usesChannels"] = [1, 4]
    a = tr["args"]
    sel = max(tr["valHistory"], key=lambda h: h["valDice"])["iter"]
    fe = tr.get("fullEvery", 0) or 0

    crop_its = tr["cropIterations"] if tr.get("cropIterations") is not None else 10 ** 12  # None: wall-time budget run

    def epochs(n_it: int) -> float:  # whole slices seen up to iteration n_it
        full = sum(1 for i in range(1, n_it + 1) if i > crop_its or (fe > 0 and i % fe == 0))
        return ((n_it - full) * tr["batch"] * (a["crop"] / 128) ** 2 + full * max(4, tr["batch"] // 2)) / tr["trainData"]["slices"]

    return {
        "name": name,
        "version": version,
        "file": onnx.name,
        "sha256": sha,
        "bytes": onnx.stat().st_size,
        "task": "lesion-segmentation",
        "description": DESCRIPTIONS[name],
        "inputs": inputs,
        "outputs": {
            "tensor": "logits", "threshold": 0,
            "labels": [{
                "value": 1, "label": "Ischaemic lesion",
                "category": {"code": "49755003", "scheme": "SCT", "meaning": "Morphologically Abnormal Structure"},
                "type": {"code": "55641003", "scheme": "SCT", "meaning": "Infarct"},
                "anatomicRegion": {"code": "12738006", "scheme": "SCT", "meaning": "Brain"},
            }],
        },
        "training": {
            "data": ("SYNTHETIC phantoms only (models/training/phantoms.py): Colin27 anatomy (mricron-data) with real acute "
                     "lesion maps of the Stroke Outcome Optimization Project (OpenNeuro ds004889, BSD-2 via "
                     "neurolabusc/StrokeOutcomeOptimizationProjectDemo); DWI/ADC physics, Rician noise, bias, pose, "
                     "2-6 mm slices"
                     + ("; realism 2: b up to 3000 with diffusion kurtosis, coarse 72-112 EPI matrices, multi-channel "
                        "receive-coil profile, susceptibility pile-up" if a.get("realism", 1) >= 2 else "")
                     + ". Not trained on any patient DWI: not for clinical use."),
            "splits": "by subject, models/training/splits.json (sha256 of subject id: 70% train / 15% val / 15% test)",
            **({"phantomRealism": a["realism"]} if a.get("realism", 1) != 1 else {}),
            **({"fineTunedFrom": a["init"]} if a.get("init") else {}),
            "trainStudies": a["train_studies"], "trainSlices": tr["trainData"]["slices"],
            "valStudiesForSelection": a["val_max_studies"],
            "iterations": tr["iterations"], "cropIterations": tr["cropIterations"],
            "selectedIteration": sel,
            "epochsEquivalentAtSelected": round(epochs(sel), 3),
            "epochsNote": "whole-slice equivalents: a 64x64 crop counts as 1/4 slice",
            "fullSliceIterations": tr["fullSliceIterations"], "batch": tr["batch"], "lr": tr["lr"],
            "widthScale": a["scale"], "params": tr["params"], "seed": a["seed"],
            "selection": tr["valCriterion"], "valHistory": tr["valHistory"], "trainSeconds": tr["trainSeconds"],
            **({"minutes": tr["minutes"]} if tr.get("minutes") else {}),
            "hardware": (f"CPU (Debian torch 1.13, {a.get('threads', 1)} thread{'s' if a.get('threads', 1) > 1 else ''}, "
                         "shared 2-core machine"
                         + (", the three models trained at the same time)" if tr.get("minutes") and a.get("threads", 1) == 1
                            else ")")),
        },
        "metrics": {
            "split": "test",
            "data": (f"{te['studies']} held-out TEST-split phantom studies ({te['testFile']}: seeds 0-{te['studies'] - 1}), "
                     "per 3D study on the acquisition grid; ISLES 2022 metrics; a missing modality = zero channels"),
            **te["metrics"],
            **real_check(name, real),
        },
        "reproduce": (f"/usr/bin/python3 models/training/train_all.py --out models/training/out/{run.name} --models {name} "
                      + (f"--train-studies {a['train_studies']} --val-studies {a['val_studies']} --minutes {a['minutes']} "
                         if a.get("minutes") else f"--iters {a['iters']} --full-iters {a['full_iters']} ")
                      + f"--full-every {a.get('full_every', 0)} "
                      + (f"--realism {a['realism']} " if a.get("realism", 1) != 1 else "")
                      + (f"--init models/training/{a['init']} --lr {a['lr']} " if a.get("init") else "")
                      + (f"--threads {a['threads']} " if a.get("threads", 1) != 1 else "")
                      + f"--val-at {','.join(str(v) for v in a['val_at'])} --scale {a['scale']} --seed {a['seed']} "
                      f"--export-to models && /usr/bin/python3 models/training/write_manifests.py "
                      f"--run {name}=models/training/out/{run.name} --version {version}"
                      + (f" --real models/training/out/{run.name}/{real.name}" if real else "")),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, nargs="+",
                    help="a run dir for all models, or name=dir pairs (the run each model was selected from)")
    ap.add_argument("--models", default="unet2d-baseline,dual-encoder,shaspec-missing")
    ap.add_argument("--version", default=VERSION, help="model version written to the manifest (and to every result's provenance)")
    ap.add_argument("--real", default=None, help="eval_real.ts output (metrics.realHealthyVolunteer)")
    a = ap.parse_args()
    runs = {}
    for r in a.run:
        if "=" in r:
            k, v = r.split("=", 1)
            runs[k] = Path(v)
        else:
            runs.update({n: Path(r) for n in a.models.split(",")})
    for n in a.models.split(","):
        m = manifest(n, runs[n], a.version, Path(a.real) if a.real else None)
        (MODELS_DIR / f"{n}.json").write_text(json.dumps(m, indent=1) + "\n")
        print(n, m["sha256"][:12], m["metrics"]["DWI+ADC"])
