#!/usr/bin/python3
"""Write models/brats-m2dn.json from the training run (out/m2dn/brats-m2dn.train.json), the step selection
(out/m2dn/steps.json), the ONNX check (out/m2dn/brats-m2dn.onnxcheck.json), the TEST metrics
(models/training/m2dn_metrics.json from eval_synthesis.py --merge) and models/brats-m2dn.onnx (sha256 and byte count
computed from the file, never copied).

    /usr/bin/python3 models/training/write_m2dn_manifest.py [--version 0.1.0]
"""
import argparse
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE.parent
RUN = HERE / "out" / "m2dn"
SEQ = ["FLAIR", "T1", "T1c", "T2"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--metrics", default=str(HERE / "m2dn_metrics.json"))
    a = ap.parse_args()
    import m2dn_nets as mn
    tr = json.loads((RUN / "brats-m2dn.train.json").read_text())
    tu = json.loads((RUN / "brats-synth-unet.train.json").read_text())
    st = json.loads((RUN / "steps.json").read_text())
    chk = json.loads((RUN / "brats-m2dn.onnxcheck.json").read_text())
    met = json.loads(Path(a.metrics).read_text())
    onnx = MODELS_DIR / "brats-m2dn.onnx"
    data = onnx.read_bytes()
    ta = tr["args"]
    steps = st["default"]
    ab = mn.alphas_cumprod()
    ts = mn.ddim_timesteps(steps)
    assert met["stepsSelection"]["default"] == steps
    man = {
        "name": "brats-m2dn",
        "version": a.version,
        "file": onnx.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "task": "mr-sequence-synthesis",
        "description": "M2DN-style modality-masked diffusion denoiser (after the multi-modal modality-masked diffusion "
                       "network): one conditional 2D U-Net (GroupNorm, FiLM of the timestep + modality-mask embedding "
                       f"in every block, {tr['params']} parameters) that sees x_t (acquired channels = the clean "
                       "acquired images, missing channels = the noisy sample at step t), the modality mask and t, and "
                       "predicts the clean images of all four sequences (x0, not noise). Trained over the 14 "
                       "available/missing splits uniformly, noise only on the missing channels, with the acquired "
                       "channels' reconstruction as a lower-weight self-supervised term. The synthesised images are "
                       "NOT acquired: the node must label them synthetic.",
        "inputs": {
            "tensor": "x_t",
            "timestepTensor": "t",
            "tensors": {"x_t": "float32 [N, 4, 128, 128]", "modality_mask": "float32 [N, 4], 1 = acquired",
                        "t": "float32 [N], the training timestep 0..T-1 as a float"},
            "channels": [{"modality": m, "sliceOffset": 0} for m in SEQ],
            "grid": {"size": [128, 128], "spacingMm": 1.875, "fieldOfViewMm": 240,
                     "placement": "same model grid as brats-shaspec: each slice of the node's reference grid "
                                  "resampled in-plane to 128 x 128, centred on the slice centre; one slice at a time"},
            "normalisation": {m: {"method": "zscore-brain", "clip": [-5, 5],
                                  "definition": "mean and std over the brain-mask voxels of the 3D volume; (v - mean) "
                                                "/ std clipped inside the mask, 0 outside"} for m in SEQ},
            "brainMask": "the node's MR brain mask on the reference grid (training: BraTS brain = any sequence non-zero)",
            "modalityMaskTensor": "modality_mask",
            "modalityMaskOrder": SEQ,
            "anyOf": SEQ,
            "optional": SEQ,
            "needsMissing": "at least one sequence missing and one acquired (trained on the 14 such splits)",
        },
        "outputs": {
            "tensor": "x0",
            "shape": "float32 [N, 4, 128, 128]",
            "meaning": "predicted clean normalised images (zscore-brain units) of all four sequences; the node keeps "
                       "the acquired channels as acquired and uses the missing ones' x0 of the last sampler step, "
                       "times the brain mask; to write a DICOM series, map back with a display window (the model "
                       "gives no absolute intensities)",
        },
        "sampler": {
            "type": "ddim", "eta": 0, "trainSteps": mn.T_TRAIN,
            "schedule": "cosine",
            "scheduleParameters": {"s": mn.COSINE_S,
                                   "formula": "alphas_cumprod[t] = f(t + 1) / f(0), f(u) = cos(((u / T) + s) / "
                                                    "(1 + s) * pi / 2)^2, t = 0..T-1 (closed form, no beta clipping)"},
            "steps": steps,
            "timesteps": ts,
            "timestepRule": "round(linspace(T - 1, 0, steps)), high to low",
            "alphasCumprodAtTimesteps": [float(ab[t]) for t in ts],
            "algorithm": "x = noise ~ N(0,1) (seeded) on the missing channels; for i, t in timesteps: x_in = acquired "
                         "channels: the acquired images, missing channels: x; x0 = net(x_in, mask, t); if not the last "
                         "step: eps = (x - sqrt(ab_t) x0) / sqrt(1 - ab_t), x = sqrt(ab_next) x0 + sqrt(1 - ab_next) "
                         "eps (ab_next = alphas_cumprod of the next timestep); result = acquired channels as acquired, "
                         "missing channels x0 of the last step, times the brain mask",
            "reference": "models/training/out/m2dn/reference/ (ref.json + float32 .bin; synthetic phantom input)",
            "selection": st,
        },
        "training": {
            "data": "BraTS 2018 (15 real cases in ../shared/data/brats2018, never committed): "
                    f"{len(tr['trainCases'])} TRAIN cases, 2 VAL cases for checkpoint and step selection, 4 TEST "
                    "cases reported only; every axial slice with brain, tumour slices oversampled (60%)",
            "splits": "by case, models/training/brats_splits.json",
            "trainCases": tr["trainCases"], "valCases": tr["valCases"],
            "augmentation": f"on {int(ta['aug'] * 100)}% of the batches, the brain-tumour models' augmentation "
                            "(brats_data.Sampler): thick slices, gamma, bias field, statistic jitter, noise, brain-mask "
                            "erosion/dilation, rotation/scale/flip/shift (targets augmented with the inputs)",
            "objective": f"x0-prediction; t ~ U{{0..{mn.T_TRAIN - 1}}}; L1 on the missing channels inside the brain + "
                         f"{ta['w_acq']} x L1 on the acquired channels inside the brain; split uniform over the 14",
            "iterations": tr["iterations"], "selectedIteration": tr["selectedIteration"],
            "slicesSeen128Equivalent": tr["slicesSeen128Equivalent"],
            "batch": ta["batch"], "crop": ta["crop"], "fullEvery": ta["full_every"], "lr": ta["lr"],
            "seed": ta["seed"], "params": tr["params"],
            "selection": tr["valCriterion"], "valHistory": tr["valHistory"],
            "trainSeconds": tr["trainSeconds"], "minutes": ta["minutes"],
            "hardware": "CPU, Debian torch 1.13, 1 thread, shared 2-core machine (trained beside the regression "
                        "baseline and other sessions' jobs)",
            "baseline": {"name": "brats-synth-unet", "exported": False, "params": tu["params"],
                         "iterations": tu["iterations"], "trainSeconds": tu["trainSeconds"],
                         "bestValPSNR": tu["bestValPSNR"]},
            "onnxCheck": chk,
        },
        "metrics": {
            "split": "test", "cases": met["cases"], "grid": met["grid"], "psnr": met["psnr"], "ssim": met["ssim"],
            "methods": met["methods"],
            "overall": met["overall"], "bySequence": met["bySequence"],
            "bySplitMean": {sn: {k: v[k]["mean"] for k in v} for sn, v in met["bySplit"].items()},
            "published": met["published"],
            "downstream": met.get("downstream"),
            "note": met["note"],
            "full": "models/training/m2dn_metrics.json (per split, per sequence, per case)",
        },
        "reproduce": (f"/usr/bin/python3 models/training/brats_data.py && "
                      f"/usr/bin/python3 models/training/train_m2dn.py --model brats-m2dn --minutes {ta['minutes']} & "
                      f"/usr/bin/python3 models/training/train_m2dn.py --model brats-synth-unet "
                      f"--minutes {tu['args']['minutes']}; wait; "
                      "/usr/bin/python3 models/training/eval_synthesis.py --select-steps "
                      f"{','.join(str(c['steps']) for c in st['candidates'])} && "
                      "/usr/bin/python3 models/training/export_m2dn.py && "
                      "/usr/bin/python3 models/training/eval_synthesis.py --cases <2 TEST cases> (x2) && "
                      "/usr/bin/python3 models/training/eval_synthesis.py --merge && "
                      f"/usr/bin/python3 models/training/write_m2dn_manifest.py --version {a.version}"),
    }
    (MODELS_DIR / "brats-m2dn.json").write_text(json.dumps(man, indent=1) + "\n")
    print("brats-m2dn", man["sha256"][:12], man["bytes"], json.dumps(man["metrics"]["overall"]))


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(HERE))
    main()
