#!/usr/bin/python3
"""Write models/brats-nslf.json from a train_nslf.py run (<run>/brats-nslf.train.json), the TEST metrics
(nslf_metrics.json from eval_fusion.py) and the ONNX file already in models/ (sha256 and bytes computed from it).

    /usr/bin/python3 models/training/write_nslf_manifest.py [--run models/training/out/nslf] [--version 0.1.0]
"""
import argparse
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE.parent
import sys  # noqa: E402
sys.path.insert(0, str(HERE))
from write_brats_manifests import LABELS, SEQ  # noqa: E402

DESCRIPTION = (
    "NSLF-style segmentation-driven fusion (after NSLF, nested self-supervised fusion; its released code fuses by a "
    "voxel-wise weighted average): a small 2D U-Net predicts one sigmoid weight map per sequence (FLAIR, T1, T1c, T2) "
    "from the acquired sequences and modality_mask; missing sequences' weights are 0 and the rest are normalised to "
    "sum 1 per voxel; fused = sum_i w_i x_i (a convex combination of the acquired normalised sequences). A 2D U-Net "
    "segmentation head on the fused image alone is trained together with it (nested: its loss reaches the weights "
    "through the fused image), with SSIM-to-each-source, gradient-preservation and weight-equivariance losses; random "
    "modality subsets in training, any non-empty subset works.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(HERE / "out" / "nslf"))
    ap.add_argument("--metrics", default=str(HERE / "nslf_metrics.json"))
    ap.add_argument("--version", default="0.1.0")
    a = ap.parse_args()
    tr = json.loads((Path(a.run) / "brats-nslf.train.json").read_text())
    met = json.loads(Path(a.metrics).read_text())
    chk = Path(a.run) / "brats-nslf.onnxcheck.json"
    onnx = MODELS_DIR / "brats-nslf.onnx"
    data = onnx.read_bytes()
    ar = tr["args"]
    # the input block is the brain-tumour segmentation models' one (same grid, normalisation, mask)
    inputs = {
        "tensor": "input",
        "channels": [{"modality": q, "sliceOffset": 0} for q in SEQ],
        "grid": {"size": [128, 128], "spacingMm": 1.875, "fieldOfViewMm": 240,
                 "placement": "each slice of the node's reference grid resampled in-plane (bilinear) to 128 x 128, "
                              "centred on the slice centre, rows/columns in the slice's DICOM order; one slice at a "
                              "time, no through-plane context"},
        "normalisation": {q: {"method": "zscore-brain", "clip": [-5, 5],
                              "definition": "mean and std over the brain-mask voxels of the 3D volume on the reference "
                                            "grid; (v - mean) / std clipped inside the mask, 0 outside"} for q in SEQ},
        "brainMask": "computed by the node on the reference grid; input voxels outside it are 0 (training: BraTS "
                     "brain = any sequence non-zero)",
        "modalityMaskTensor": "modality_mask",
        "modalityMaskOrder": SEQ,
        "missingChannel": "all zero, modality_mask 0",
    }
    inputs["anyOf"] = SEQ
    inputs["optional"] = SEQ
    sel = max(tr["valHistory"], key=lambda h: h["score"])
    m = {
        "name": "brats-nslf",
        "version": a.version,
        "file": onnx.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "task": "mr-fusion",
        "description": DESCRIPTION,
        "inputs": inputs,
        "outputs": {
            "fused": {"tensor": "fused", "shape": ["N", 1, 128, 128],
                      "meaning": "voxel-wise weighted average of the ACQUIRED normalised sequences (zscore-brain units, "
                                 "0 outside the brain)",
                      "seriesDescription": "weighted average, weights by brats-nslf",
                      "postprocess": "resampled back to each reference slice (bilinear), masked by the brain mask; "
                                     "display window from its brain percentiles"},
            "weights": {"tensor": "weights", "shape": ["N", 4, 128, 128], "order": SEQ,
                        "meaning": "per-voxel weight of each sequence; 0 for missing sequences, sum 1 over the acquired"},
            "logits": {"tensor": "logits", "shape": ["N", 4, 128, 128], "optional": True, "activation": "softmax",
                       "meaning": "tumour classes (background, necrotic / non-enhancing core, oedema, enhancing) from "
                                  "the seg head on the fused image alone; for evaluation of the fusion, not the "
                                  "node's tumour SEG (brats-shaspec does that)",
                       "labels": LABELS},
        },
        "training": {
            "data": "BraTS 2018 (15 real cases in ../shared/data/brats2018, never committed): "
                    f"{len(tr['trainCases'])} TRAIN cases, 2 VAL cases for checkpoint selection, 4 TEST cases reported "
                    "only; tumour slices oversampled (60%)",
            "splits": "by case, models/training/brats_splits.json",
            "trainCases": tr["trainCases"], "valCases": tr["valCases"],
            "augmentation": "the brain-tumour models' (brats_data.Sampler): thick slices, gamma, bias field, 3D "
                            "statistic jitter, brain-mask erosion/dilation, noise, rotation/scale/flip/shift; modality "
                            "subsets uniform over the 15 non-empty subsets",
            "loss": "seg CE + soft Dice (seg head on the fused image) + 1.0 (1 - SSIM(fused, each acquired source)) + "
                    "0.5 L1(|grad fused|, max over acquired |grad source|) + 0.5 |W(Tx) - T W(x)| (T = random flip / "
                    "90-degree rotation; stands in for NSLF's registration consistency, BraTS being co-registered)",
            "iterations": tr["iterations"], "selectedIteration": sel["iter"],
            "slicesSeen128Equivalent": tr["slicesSeen128Equivalent"],
            "batch": ar["batch"], "crop": ar["crop"], "fullEvery": ar["full_every"], "lr": ar["lr"], "seed": ar["seed"],
            "params": tr["params"], "selection": tr["valCriterion"], "valHistory": tr["valHistory"],
            "trainSeconds": tr["trainSeconds"], "minutes": ar["minutes"],
            "hardware": "CPU, Debian torch 1.13, 1 thread, shared 2-core machine (beside other sessions' training)",
        },
        "metrics": {
            "split": "test",
            "cases": met["cases"],
            "similarity": met["similarity"],
            "seg": met["seg"],
            "all4": met["all4"],
            "all4PerSource": met["all4PerSource"],
            "meanOverSubsets": met["meanOverSubsets"],
            "published": met["published"],
            "brats-shaspec": {k: met["brats-shaspec"].get(k) for k in ("cases", "meanOver15Subsets")} | {
                "all4": met["brats-shaspec"].get("bySubset", {}).get("FLAIR+T1+T1c+T2")},
            "note": met["note"],
            "full": "models/training/nslf_metrics.json (per subset, per case)",
        },
        "onnxCheck": json.loads(chk.read_text()) if chk.exists() else None,
        "reproduce": ("/usr/bin/python3 models/training/brats_data.py && /usr/bin/python3 models/training/train_nslf.py "
                      f"--minutes {ar['minutes']} --out models/training/out/nslf && "
                      "/usr/bin/python3 models/training/check_nslf_onnx.py && "
                      "/usr/bin/python3 models/training/eval_fusion.py && "
                      "/usr/bin/python3 models/training/figure_nslf.py && "
                      f"/usr/bin/python3 models/training/write_nslf_manifest.py --version {a.version}"),
    }
    (MODELS_DIR / "brats-nslf.json").write_text(json.dumps(m, indent=1) + "\n")
    print("brats-nslf", m["sha256"][:12], m["bytes"], json.dumps(m["metrics"]["all4"]))


if __name__ == "__main__":
    main()
