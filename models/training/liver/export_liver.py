#!/usr/bin/python3
"""Export a trained liver model to ONNX (issue 16 contract), check it against torch in the node's own runtime
(onnxruntime-node from the repo's node_modules: there is no Python onnxruntime on this machine) and write its
manifest models/<name>.json.

    export_liver.py --ckpt ../out/liver-cpu/aqcf.pt --model aqcf --base 8 --name liver-aqcf --version 0.1.0 \
        --description "..." [--train ../out/liver-cpu/aqcf-train.json] [--extra extra.json]

The ONNX graph: inputs `image` float32 [N, 1, 128, 128] and `modality` float32 [N] (1 CT, 0 MRI), output `logits`
float32 [N, 3, 128, 128]; opset 17, dynamic N. `--extra` is a JSON object merged into the manifest last
(training details, metrics, reproduce). The ORT check runs real model-grid slices of both modalities from the
training caches (batch 8: 4 CT + 4 MRI) and fails above 1e-3 max |logit difference|.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))
import aqcf_net  # noqa: E402

SIZE = 128
SPACING = 3.0
MIN_TUMOUR_ML = 0.065

NODE = r"""
const ort = require('onnxruntime-node');
const fs = require('fs');
(async () => {
  const [onnx, xf, mf, of, n, size] = process.argv.slice(1);
  const N = Number(n), S = Number(size);
  const s = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 });
  const x = new Float32Array(Uint8Array.from(fs.readFileSync(xf)).buffer);
  const m = new Float32Array(Uint8Array.from(fs.readFileSync(mf)).buffer);
  const r = await s.run({ image: new ort.Tensor('float32', x, [N, 1, S, S]), modality: new ort.Tensor('float32', m, [N]) });
  fs.writeFileSync(of, Buffer.from(r.logits.data.buffer, r.logits.data.byteOffset, r.logits.data.byteLength));
})();
"""


def ort_logits(onnx_path: Path, x: np.ndarray, mod: np.ndarray) -> np.ndarray:
    """Run the ONNX file in onnxruntime-node (1 thread): x [N, 1, S, S] float32, mod [N] -> logits [N, 3, S, S]."""
    x = np.ascontiguousarray(x, np.float32)
    mod = np.ascontiguousarray(mod, np.float32)
    with tempfile.TemporaryDirectory() as td:
        xf, mf, of = (str(Path(td) / f) for f in ("x.bin", "m.bin", "o.bin"))
        x.tofile(xf)
        mod.tofile(mf)
        subprocess.run(["node", "-e", NODE, str(Path(onnx_path).resolve()), xf, mf, of, str(len(x)), str(x.shape[-1])],
                       check=True, cwd=ROOT)
        return np.fromfile(of, np.float32).reshape(len(x), 3, x.shape[-2], x.shape[-1])


def export(model: torch.nn.Module, path: Path) -> None:
    x = torch.zeros(2, 1, SIZE, SIZE)
    mod = torch.tensor([1.0, 0.0])
    torch.onnx.export(model, (x, mod), str(path), opset_version=17, input_names=["image", "modality"],
                      output_names=["logits"], dynamic_axes={"image": {0: "N"}, "modality": {0: "N"}, "logits": {0: "N"}})
    import onnx
    onnx.checker.check_model(onnx.load(str(path)))


def check(model: torch.nn.Module, path: Path) -> dict:
    cache = HERE.parent / "cache" / "liver"
    xs, ms = [], []
    for f, mval in ((cache / "ct_train_8_0_128_3_6.npz", 1.0), (cache / "mr_train_8_1000_128_3_6.npz", 0.0)):
        z = np.load(f)
        idx = np.linspace(0, len(z["y"]) - 1, 4).round().astype(int)
        xs.append(z["x"][idx].astype(np.float32))
        ms += [mval] * 4
    x = np.concatenate(xs)[:, None]
    mod = np.array(ms, np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x), torch.from_numpy(mod)).numpy()
    got = ort_logits(path, x, mod)
    diff = float(np.abs(got - ref).max())
    flip = float((got.argmax(1) != ref.argmax(1)).mean())
    return {"batch": len(x), "maxAbsLogitDiff": diff, "argmaxDisagreement": flip,
            "runtime": "onnxruntime-node (repo node_modules), 1 thread", "input": "4 CT + 4 MRI TRAIN model-grid slices"}


def postprocess_spec(min_tumour_ml: float = MIN_TUMOUR_ML, shape: dict | None = None) -> dict:
    spec = {
        "backToSource": "softmax over the 3 logits; the 3 probabilities resampled bilinear (edge-clamped) onto every "
                        "source pixel of the slice (source pixels outside the 128 x 128 model grid: background), argmax",
        "liverRegion": "class >= 1",
        "keepLargestLiverComponent": True,
        "connectivity": 26,
        "largestComponentTie": "the component found first in (slice, row, column) raster order",
        "outsideLargestComponent": "background (0)",
        "tumour": "class 2 inside the kept liver component",
        "minTumourMl": min_tumour_ml,
        "smallTumour": "a 26-connected tumour component with volume < minTumourMl becomes liver (1)",
        "voxelVolume": "row spacing x column spacing x slice spacing (centre-to-centre distance of adjacent slices)",
    }
    if shape:
        spec["tumourShape"] = shape
        spec["tumourShapeRules"] = {
            "order": "after the small-tumour rule, on each remaining 26-connected tumour component; a component a rule "
                     "drops becomes liver (1); 0 = rule off",
            "flatEndFactor": "c: where the component ends inside the series (the slice beyond its first or last slice "
                             "belongs to the series and holds none of it), its diameter d on that end slice must be "
                             "<= c * sqrt(s * D) (s slice spacing, D its longest axial diameter; a sphere gives "
                             "d <= 2 sqrt(s D)); an end on the series' first or last slice is not judged",
            "minAxialFill": "f: on the component's largest-area slice (ties: the first), area / (pi d^2 / 4) with d "
                            "that slice's diameter must be >= f (an in-plane vessel fills little of its circle)",
            "diameter": "largest distance between two pixel centres of the slice's 4-connected boundary + one row spacing",
        }
    return spec


def manifest(name: str, version: str, onnx_path: Path, description: str, min_tumour_ml: float,
             shape: dict | None = None) -> dict:
    data = onnx_path.read_bytes()
    window = {"method": "window", "center": 60, "width": 400, "clip": [0, 1],
              "definition": "HU = stored * RescaleSlope + RescaleIntercept; x = clip((HU + 140) / 400, 0, 1) (W 400 / L 60)"}
    mrnorm = {"method": "median-foreground", "clip": [0, 5],
              "definition": "per 3-D series (all its slices): x = clip(v / median(v[v > mean(v)]), 0, 5); numpy median (mean of the two middle values for an even count)"}
    return {
        "name": name, "version": version, "file": onnx_path.name,
        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "task": "liver-tumour-segmentation",
        "description": description,
        "inputs": {
            "tensor": "image",
            "modalityTensor": "modality",
            "modalityValues": {"CT": 1, "MR": 0},
            "channels": [{"modality": "CT|MR", "sliceOffset": 0,
                          "note": "one channel: a CT slice (modality 1) or an MRI slice (modality 0); one model for both, unpaired"}],
            "anyOf": ["CT", "MR"],
            "mrSequence": "trained on T1 GRE, T2 FSE (with/without fat saturation) and T1 post-contrast fat-saturated phantoms",
            "shape": ["N", 1, SIZE, SIZE],
            "grid": {"size": [SIZE, SIZE], "spacingMm": SPACING, "fieldOfViewMm": SIZE * SPACING,
                     "placement": "each acquired axial slice on its own, resampled in-plane (bilinear, edge-clamped) to "
                                  "128 x 128 at 3.0 mm centred on the slice centre: source pixel coordinate "
                                  "(R-1)/2 + k*3/ps (rows), (C-1)/2 + k*3/ps (columns), k = i - 63.5; rows/columns in "
                                  "DICOM order; no through-plane context; outside the source image 0 (after normalisation)"},
            "normalisation": {"CT": window, "MR": mrnorm},
        },
        "outputs": {
            "tensor": "logits", "activation": "softmax", "shape": ["N", 3, SIZE, SIZE],
            "classes": ["background", "liver (cysts included)", "liver tumour"],
        },
        "postprocess": postprocess_spec(min_tumour_ml, shape),
        "measurements": {
            "liverMl": "liver + tumour voxels after post-processing x voxel volume",
            "tumours": "26-connected components of class 2 after post-processing",
            "tumourMl": "voxels x voxel volume",
            "longestAxialDiameterMm": "largest in-plane distance between two voxel centres of the component on any one "
                                      "slice, plus one pixel spacing (a caliper touches the voxel edges)",
            "centroid": "mean voxel position of the component",
            "location": "no Couinaud segment: not derivable honestly without vessel landmarks",
        },
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--model", default="aqcf", choices=["aqcf", "unet-ct", "unet-mr"])
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--name", default="liver-aqcf")
    ap.add_argument("--version", required=True)
    ap.add_argument("--description", required=True)
    ap.add_argument("--min-tumour-ml", type=float, default=MIN_TUMOUR_ML)
    ap.add_argument("--train", default="", help="train_liver.py's <model>-train.json")
    ap.add_argument("--extra", default="", help="JSON object merged into the manifest last")
    ap.add_argument("--shape", default="", help='the shape rules per modality as JSON, e.g. '
                    '\'{"CT": {"flatEndFactor": 4, "minAxialFill": 0.3}, "MR": {"flatEndFactor": 4, "minAxialFill": 0}}\'')
    ap.add_argument("--no-export", action="store_true", help="keep the ONNX file (its sha256 must match the existing "
                    "manifest) and that manifest's onnxCheck, training and metrics: a post-processing change only")
    a = ap.parse_args()
    torch.set_num_threads(1)
    onnx_path = ROOT / "models" / f"{a.name}.onnx"
    shape = json.loads(a.shape) if a.shape else None
    if a.no_export:
        old = json.loads(onnx_path.with_suffix(".json").read_text())
        man = manifest(a.name, a.version, onnx_path, a.description, a.min_tumour_ml, shape)
        if man["sha256"] != old["sha256"]:
            sys.exit(f"{onnx_path} is not the file of the existing manifest")
        for k in ("onnxCheck", "training", "metrics", "reproduce"):
            if k in old:
                man[k] = old[k]
    else:
        model = aqcf_net.build(a.model, a.base)
        model.load_state_dict(torch.load(a.ckpt, map_location="cpu"))
        model.eval()
        export(model, onnx_path)
        chk = check(model, onnx_path)
        print(json.dumps(chk))
        if chk["maxAbsLogitDiff"] > 1e-3:
            sys.exit(f"ORT vs torch differ: {chk}")
        man = manifest(a.name, a.version, onnx_path, a.description, a.min_tumour_ml, shape)
        man["onnxCheck"] = chk
    if a.model != "aqcf":
        man["inputs"]["anyOf"] = ["CT"] if a.model == "unet-ct" else ["MR"]
        man["inputs"]["channels"][0]["modality"] = "CT" if a.model == "unet-ct" else "MR"
        man["inputs"]["channels"][0]["note"] = "the modality input is accepted and ignored (single-modality baseline)"
    if a.train and not a.no_export:
        t = json.loads(Path(a.train).read_text())
        man["training"] = {"parameters": t["parameters"], "iterations": t["iterations"],
                           "trainSeconds": round(t["seconds"]), "batch": t["args"]["batch"], "lr": t["args"]["lr"],
                           "base": t["args"]["base"]}
    if a.extra:
        for k, v in json.loads(Path(a.extra).read_text()).items():
            if isinstance(v, dict) and isinstance(man.get(k), dict):
                man[k].update(v)
            else:
                man[k] = v
    (ROOT / "models" / f"{a.name}.json").write_text(json.dumps(man, indent=1) + "\n")
    print(f"models/{a.name}.onnx: {man['bytes']} bytes, sha256 {man['sha256'][:12]}...")


if __name__ == "__main__":
    main()
