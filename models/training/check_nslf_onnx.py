#!/usr/bin/python3
"""Check models/brats-nslf.onnx against its torch weights with the node's own runtime (onnxruntime-node from the
repo's node_modules; no Python onnxruntime here). Input: 3 real VAL-case tumour slices under 4 modality masks (all
four, FLAIR only, T1+T1c, T1c+T2) = a batch of 12 (dynamic N). Compares `fused`, `weights` and `logits`; also checks
the contract on the ONNX output: weights of missing sequences exactly 0, sum 1 over the acquired ones, fused = sum of
weights x inputs. Exits 1 above tolerance.

    /usr/bin/python3 models/training/check_nslf_onnx.py [--run models/training/out/nslf]
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
import nslf_nets as nn_  # noqa: E402

NODE = r"""
const ort = require('onnxruntime-node');
const fs = require('fs');
(async () => {
  const [onnx, xf, mf, od, n] = process.argv.slice(1);
  const N = Number(n);
  const s = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 });
  const x = new Float32Array(Uint8Array.from(fs.readFileSync(xf)).buffer);
  const m = new Float32Array(Uint8Array.from(fs.readFileSync(mf)).buffer);
  const r = await s.run({ input: new ort.Tensor('float32', x, [N, 4, 128, 128]), modality_mask: new ort.Tensor('float32', m, [N, 4]) });
  for (const k of ['fused', 'weights', 'logits']) {
    const d = r[k].data;
    fs.writeFileSync(od + '/' + k + '.bin', Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  }
  console.log(JSON.stringify({ outputs: s.outputNames, dims: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.dims])) }));
})();
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(HERE / "out" / "nslf"))
    ap.add_argument("--onnx", default=str(ROOT / "models" / "brats-nslf.onnx"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = nn_.NSLF()
    model.load_state_dict(torch.load(Path(a.run) / "brats-nslf.pt"))
    model.eval()
    d = bd.normalised_case(bd.splits()["val"][0])
    tz = np.nonzero(d["lab"].reshape(d["lab"].shape[0], -1).any(1))[0]
    zs = tz[[0, len(tz) // 2, -1]]
    masks = [(1, 1, 1, 1), (1, 0, 0, 0), (0, 1, 1, 0), (0, 0, 1, 1)]
    x = np.concatenate([d["x"][:, zs].transpose(1, 0, 2, 3) * np.array(m, np.float32)[None, :, None, None] for m in masks])
    mk = np.repeat(np.array(masks, np.float32), len(zs), 0)
    x = np.ascontiguousarray(x, np.float32)
    with torch.no_grad():
        ref = [t.numpy() for t in model(torch.from_numpy(x), torch.from_numpy(mk))]
    onnx = Path(a.onnx)
    with tempfile.TemporaryDirectory() as td:
        x.tofile(str(Path(td) / "x.bin"))
        mk.tofile(str(Path(td) / "m.bin"))
        subprocess.run(["node", "-e", NODE, str(onnx.resolve()), str(Path(td) / "x.bin"), str(Path(td) / "m.bin"), td,
                        str(len(x))], check=True, cwd=ROOT)
        got = [np.fromfile(str(Path(td) / f"{k}.bin"), np.float32).reshape(r.shape)
               for k, r in zip(("fused", "weights", "logits"), ref)]
    fz, wz, lz = got
    res = {"onnx": str(onnx.relative_to(ROOT)), "batch": len(x),
           "maxAbsDiff": {k: float(np.abs(g - r).max()) for k, g, r in zip(("fused", "weights", "logits"), got, ref)},
           "argmaxDisagreement": float((lz.argmax(1) != ref[2].argmax(1)).mean()),
           "missingWeightMax": float(np.abs(wz * (1 - mk[:, :, None, None])).max()),
           "weightSumErrMax": float(np.abs(wz.sum(1) - 1).max()),
           "fusedIsWeightedAvgErrMax": float(np.abs((wz * x).sum(1, keepdims=True) - fz).max()),
           "runtime": "onnxruntime-node (repo node_modules), 1 thread"}
    print(json.dumps(res))
    (Path(a.run) / "brats-nslf.onnxcheck.json").write_text(json.dumps(res, indent=1))
    ok = (max(res["maxAbsDiff"].values()) < 1e-3 and res["argmaxDisagreement"] < 1e-4 and res["missingWeightMax"] == 0
          and res["weightSumErrMax"] < 1e-4 and res["fusedIsWeightedAvgErrMax"] < 1e-4)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
