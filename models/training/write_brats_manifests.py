#!/usr/bin/python3
"""Write models/brats-shaspec.json and models/brats-unet4.json from a train_brats.py run (<run>/<name>.train.json),
the TEST metrics (brats_metrics.json from eval_brats.py --merge) and the ONNX file already in models/.
The sha256 and byte count are computed from the file in models/, never copied from the run.

    /usr/bin/python3 models/training/write_brats_manifests.py [--run models/training/out/brats] [--version 0.1.0]
"""
import argparse
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE.parent
SEQ = ["FLAIR", "T1", "T1c", "T2"]
ALL4 = "FLAIR+T1+T1c+T2"

DESCRIPTIONS = {
    "brats-shaspec": "ShaSpec (Wang et al., CVPR 2023) on a 2D U-Net: one shared encoder applied to every present "
                     "sequence + one specific encoder per sequence (FLAIR, T1, T1c, T2), per-level residual fusion; a "
                     "missing sequence's feature is the mean of the present sequences' shared features (computed from "
                     "modality_mask, one graph for all 15 subsets); trained with random modality dropout uniform over "
                     "the 15 non-empty subsets, domain-classification (alpha 0.1) and distribution-alignment (beta 0.02) "
                     "losses. One model for any subset of the four sequences.",
    "brats-unet4": "Plain 2D U-Net baseline on the four sequences (FLAIR, T1, T1c, T2), trained with all four only (no "
                   "modality dropout): requires all four. Takes modality_mask too (ignored) so the node has one path.",
}

LABELS = [
    {"value": 1, "label": "Necrotic / non-enhancing tumour core", "brats": 1,
     "type": {"code": "C81175", "scheme": "NCIt", "meaning": "Non-Enhancing Lesion"}},
    {"value": 2, "label": "Peritumoural oedema", "brats": 2,
     "type": {"code": "79654002", "scheme": "SCT", "meaning": "Edema"}},
    {"value": 3, "label": "Enhancing tumour", "brats": 4,
     "type": {"code": "C113842", "scheme": "NCIt", "meaning": "Enhancing Lesion"}},
]
for lab in LABELS:
    lab["category"] = {"code": "49755003", "scheme": "SCT", "meaning": "Morphologically Abnormal Structure"}
    lab["anatomicRegion"] = {"code": "12738006", "scheme": "SCT", "meaning": "Brain"}


FT_DESCRIPTION = (" Fine-tuned (issue 14: the first run had not learned the enhancing class) with class-weighted "
                  "cross-entropy, soft Dice over the classes present in the batch, T1c-biased modality subsets and "
                  "oversampled enhancing-tumour slices.")


def base_record(tr: dict) -> dict | None:
    """The train.json of the run a fine-tuning started from (train_brats.py --init <run>/<name>.pt), or None."""
    if not tr.get("init"):
        return None
    p = Path(tr["init"])
    if not p.is_absolute():
        p = HERE / p
    return json.loads(p.with_name(p.name[:-len(".pt")] + ".train.json").read_text())


def manifest(name: str, run: Path, metrics: dict, version: str) -> dict:
    tr = json.loads((run / f"{name}.train.json").read_text())
    base = base_record(tr)
    onnx = MODELS_DIR / f"{name}.onnx"
    data = onnx.read_bytes()
    a = tr["args"]
    inputs = {
        "tensor": "input",
        "channels": [{"modality": m, "sliceOffset": 0} for m in SEQ],
        "grid": {"size": [128, 128], "spacingMm": 1.875, "fieldOfViewMm": 240,
                 "placement": "each slice of the node's reference grid resampled in-plane (bilinear) to 128 x 128, "
                              "centred on the slice centre, rows/columns in the slice's DICOM order; one slice at a "
                              "time, no through-plane context"},
        "normalisation": {m: {"method": "zscore-brain", "clip": [-5, 5],
                              "definition": "mean and std over the brain-mask voxels of the 3D volume on the reference "
                                            "grid; (v - mean) / std clipped inside the mask, 0 outside"} for m in SEQ},
        "brainMask": "computed by the node on the reference grid; input voxels outside it are 0 (training: BraTS "
                     "brain = any sequence non-zero)",
        "modalityMaskTensor": "modality_mask",
        "modalityMaskOrder": SEQ,
        "missingChannel": "all zero, modality_mask 0",
    }
    if name == "brats-shaspec":
        inputs["anyOf"] = SEQ
        inputs["optional"] = SEQ
    else:
        inputs["required"] = SEQ
        inputs["requires"] = SEQ  # the key the node's manifest schema already reads
    mm = metrics["models"][name]

    def table(var: str) -> dict:
        v = mm[var]
        out = {k: v[k]["mean"] for k in v if k != "meanOver15Subsets"}
        if "meanOver15Subsets" in v:
            out["meanOver15Subsets"] = v["meanOver15Subsets"]
        return out
    sel = max(tr["valHistory"], key=lambda h: h["valDice"])
    return {
        "name": name,
        "version": version,
        "file": onnx.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "task": "brain-tumour-segmentation",
        "description": DESCRIPTIONS[name] + (FT_DESCRIPTION if base else ""),
        "inputs": inputs,
        "outputs": {
            "tensor": "logits",
            "activation": "softmax",
            "classes": ["background", "necrotic / non-enhancing tumour core", "peritumoural oedema", "enhancing tumour"],
            "postprocess": "softmax, the 4 probabilities resampled back to each source slice (bilinear), argmax",
            "labels": LABELS,
            "derivedRegions": {"wholeTumour": [1, 2, 3], "tumourCore": [1, 3], "enhancingTumour": [3]},
        },
        "training": {
            "data": "BraTS 2018 (15 real cases with expert labels in ../shared/data/brats2018, never committed): "
                    f"{len(tr['trainCases'])} TRAIN cases, 2 VAL cases for checkpoint selection, 4 TEST cases reported "
                    "only; every axial slice with brain, tumour slices oversampled (60%)",
            "splits": "by case, models/training/brats_splits.json",
            "trainCases": tr["trainCases"],
            "valCases": tr["valCases"],
            "augmentation": "simulated thick slices (mean of 3-5 adjacent 1 mm slices, p 0.5); per sequence gamma "
                            "0.67-1.5 and smooth multiplicative bias field (p 0.7) before normalisation; 3D statistic "
                            "jitter; brain-mask erosion/dilation by 1-3 pixels (p 0.7, 0 outside the perturbed mask); "
                            "Gaussian noise; rotation +-15 deg, scale 0.85-1.15, left-right flip, shift +-8 px"
                            + ("; modality dropout uniform over the 15 non-empty subsets" if name == "brats-shaspec"
                               else "; no modality dropout"),
            "loss": "cross-entropy + soft Dice over the 3 tumour classes"
                    + (" + 0.1 domain classification + 0.02 distribution alignment" if name == "brats-shaspec" else "")
                    + ("; fine-tuning: see fineTuning" if base else ""),
            "iterations": tr["iterations"],
            "selectedIteration": sel["iter"],
            "slicesSeen128Equivalent": tr["slicesSeen128Equivalent"],
            "batch": a["batch"], "crop": a["crop"], "fullEvery": a["full_every"], "lr": a["lr"], "seed": a["seed"],
            "params": tr["params"],
            "selection": tr["valCriterion"],
            "valHistory": tr["valHistory"],
            "trainSeconds": tr["trainSeconds"],
            "minutes": a["minutes"],
            "hardware": "CPU, Debian torch 1.13, 1 thread, shared 2-core machine (both brain-tumour models trained at "
                        "the same time, beside other sessions' work)",
            **(fine_tuning(tr, base, a) if base else {}),
        },
        "metrics": {
            "split": "test",
            "cases": metrics["cases"],
            "data": "4 held-out TEST cases, per case in 3D on the original 240x240x155 @ 1 mm grid (probabilities "
                    "resampled 128 -> 240 bilinear, argmax); Dice and HD95 (mm) per region, mean over the 4 cases",
            "conventions": metrics["conventions"],
            "note": "4 cases: very wide confidence; not comparable with published BraTS figures (3D networks, 285 "
                    "training cases)",
            "1mm": table("1mm"),
            "5mm": table("5mm"),
            "full": "models/training/brats_metrics.json (per case)",
        },
        "reproduce": (f"/usr/bin/python3 models/training/brats_data.py && /usr/bin/python3 models/training/train_brats.py "
                      f"--model {name} --minutes {(base or tr)['args']['minutes']} --val-at {(base or tr)['args']['val_at']} "
                      f"--val-stride {(base or tr)['args']['val_stride']} --out models/training/out/brats && "
                      + (ft_command(name, tr) + " && " if base else "")
                      + (f"/usr/bin/python3 models/training/eval_brats.py --model {name} --run models/training/out/brats-ft && "
                         "cp -r models/training/out/brats/eval/brats-unet4 models/training/out/brats-ft/eval/ && "
                         "/usr/bin/python3 models/training/eval_brats.py --merge --run models/training/out/brats-ft && "
                         f"/usr/bin/python3 models/training/write_brats_manifests.py --run models/training/out/brats-ft "
                         f"--models {name} --version {version}" if base else
                         f"/usr/bin/python3 models/training/eval_brats.py --model {name} && "
                         f"/usr/bin/python3 models/training/eval_brats.py --merge && "
                         f"/usr/bin/python3 models/training/write_brats_manifests.py --version {version}")),
    }


def ft_command(name: str, tr: dict) -> str:
    a = tr["args"]
    return (f"/usr/bin/python3 models/training/train_brats.py --model {name} --minutes {a['minutes']} "
            f"--out models/training/out/brats-ft --export-to '' --init models/training/out/brats/{name}.pt --val-init "
            f"--lr {a['lr']} --ce-weights {a['ce_weights']} {'--dice-present ' if a['dice_present'] else ''}"
            f"--subset-all {a['subset_all']} --subset-t1c {a['subset_t1c']} --et-frac {a['et_frac']} "
            f"--et-centre {a['et_centre']} --restarts {a['restarts']} --val-at {a['val_at']} --val-stride {a['val_stride']}")


def fine_tuning(tr: dict, base: dict, a: dict) -> dict:
    """The training block of a fine-tuned model: the first run (pretraining) and the fine-tuning stage."""
    sel = max(tr["valHistory"], key=lambda h: h["valDice"])
    w = [float(v) for v in a["ce_weights"].split(",")] if a["ce_weights"] else [1.0] * 4
    p_t1c = a["subset_all"] + a["subset_t1c"] + (1 - a["subset_all"] - a["subset_t1c"]) * 8 / 15
    return {
        "stage": "fine-tuning from the selected checkpoint of the first run (pretraining); iterations, "
                 "selectedIteration, valHistory, trainSeconds and minutes above are the fine-tuning's",
        "pretraining": {k: base[k] for k in ("iterations", "selectedIteration", "slicesSeen128Equivalent", "valHistory",
                                             "trainSeconds")}
                       | {"minutes": base["args"]["minutes"], "lr": base["args"]["lr"],
                          "loss": "cross-entropy + soft Dice (mean over the 3 tumour classes) + 0.1 domain + 0.02 alignment",
                          "modalityDropout": "uniform over the 15 non-empty subsets"},
        "fineTuning": {
            "loss": f"class-weighted cross-entropy (background {w[0]:g}, necrotic/non-enhancing core {w[1]:g}, oedema "
                    f"{w[2]:g}, enhancing {w[3]:g}) + soft Dice averaged over the tumour classes present in the batch"
                    + (" (so enhancing counts as much as the whole tumour)" if a["dice_present"] else "")
                    + " + 0.1 domain classification + 0.02 distribution alignment",
            "modalityDropout": f"all four with p {a['subset_all']:g}, one of the 7 other subsets with T1c with p "
                               f"{a['subset_t1c']:g}, else uniform over the 15 (T1c present in {100 * p_t1c:.0f} % of "
                               "slices; every subset still drawn)",
            "sampling": f"{100 * a['et_frac']:.0f} % of slices from slices with enhancing tumour, the rest as before; "
                        f"a tumour-centred crop is centred on an enhancing pixel with p {a['et_centre']:g}",
            "lr": f"AdamW, peak {a['lr']:g}, {a['restarts']} cosine cycle(s) with warm restart over the wall budget",
            "init": "models/training/out/brats/brats-shaspec.pt (iteration "
                    f"{base['selectedIteration']} of the first run)",
            "selectedBy": "VAL, the same criterion; the initial weights were a candidate too (iteration 0)",
            "keptInitialWeights": sel["iter"] == 0,
        },
        "totalTrainSeconds": base["trainSeconds"] + tr["trainSeconds"],
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(HERE / "out" / "brats"))
    ap.add_argument("--metrics", default=str(HERE / "brats_metrics.json"))
    ap.add_argument("--models", default="brats-shaspec,brats-unet4")
    ap.add_argument("--version", default="0.1.0")
    a = ap.parse_args()
    metrics = json.loads(Path(a.metrics).read_text())
    for n in a.models.split(","):
        m = manifest(n, Path(a.run), metrics, a.version)
        (MODELS_DIR / f"{n}.json").write_text(json.dumps(m, indent=1) + "\n")
        print(n, m["sha256"][:12], m["bytes"], json.dumps(m["metrics"]["1mm"].get(ALL4)))
