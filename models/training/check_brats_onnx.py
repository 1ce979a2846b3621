#!/usr/bin/python3
"""Check an exported brain-tumour ONNX file against its torch weights with the node's own runtime
(onnxruntime-node from the repo's node_modules; there is no Python onnxruntime on this machine).

Input: 3 real VAL-case slices (normalised as the contract says) under 4 modality masks (all four, FLAIR only,
T1+T1c, T2+T1c) = a batch of 12 (exercises the dynamic N axis). Prints the max |logit difference| and the
fraction of pixels whose argmax differs; exits 1 above tolerance.

    /usr/bin/python3 models/training/check_brats_onnx.py brats-shaspec [--run models/training/out/brats]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import brats_data as bd  # noqa: E402
import brats_nets as bn  # noqa: E402

NODE = r"""
const ort = require('onnxruntime-node');
const fs = require('fs');
(async () => {
  const [onnx, xf, mf, of, n] = process.argv.slice(1);
  const N = Number(n);
  const s = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 });
  const x = new Float32Array(Uint8Array.from(fs.readFileSync(xf)).buffer);
  const m = new Float32Array(Uint8Array.from(fs.readFileSync(mf)).buffer);
  const r = await s.run({ input: new ort.Tensor('float32', x, [N, 4, 128, 128]), modality_mask: new ort.Tensor('float32', m, [N, 4]) });
  fs.writeFileSync(of, Buffer.from(r.logits.data.buffer, r.logits.data.byteOffset, r.logits.data.byteLength));
  console.log(JSON.stringify({ dims: r.logits.dims }));
})();
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["brats-shaspec", "brats-unet4"])
    ap.add_argument("--run", default=str(HERE / "out" / "brats"))
    ap.add_argument("--onnx", default=None, help="default: models/<model>.onnx")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = bn.build(a.model)
    model.load_state_dict(torch.load(Path(a.run) / f"{a.model}.pt"))
    model.eval()
    d = bd.normalised_case(bd.splits()["val"][0])
    tz = np.nonzero(d["lab"].reshape(d["lab"].shape[0], -1).any(1))[0]
    zs = tz[[0, len(tz) // 2, -1]]
    masks = [(1, 1, 1, 1), (1, 0, 0, 0), (0, 1, 1, 0), (0, 0, 1, 1)]
    x = np.concatenate([d["x"][:, zs].transpose(1, 0, 2, 3) * np.array(m, np.float32)[None, :, None, None] for m in masks])
    mk = np.repeat(np.array(masks, np.float32), len(zs), 0)
    x = np.ascontiguousarray(x, np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x), torch.from_numpy(mk)).numpy()
    onnx = Path(a.onnx or ROOT / "models" / f"{a.model}.onnx")
    with tempfile.TemporaryDirectory() as td:
        xf, mf, of = (str(Path(td) / f) for f in ("x.bin", "m.bin", "o.bin"))
        x.tofile(xf)
        mk.tofile(mf)
        subprocess.run(["node", "-e", NODE, str(onnx.resolve()), xf, mf, of, str(len(x))], check=True, cwd=ROOT)
        got = np.fromfile(of, np.float32).reshape(ref.shape)
    diff = float(np.abs(got - ref).max())
    flip = float((got.argmax(1) != ref.argmax(1)).mean())
    res = {"model": a.model, "onnx": str(onnx.relative_to(ROOT)), "batch": len(x), "maxAbsLogitDiff": diff,
           "argmaxDisagreement": flip, "runtime": "onnxruntime-node (repo node_modules), 1 thread"}
    print(json.dumps(res))
    (Path(a.run) / f"{a.model}.onnxcheck.json").write_text(json.dumps(res, indent=1))
    sys.exit(0 if diff < 1e-3 and flip < 1e-4 else 1)


if __name__ == "__main__":
    main()
