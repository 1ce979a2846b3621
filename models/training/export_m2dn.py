#!/usr/bin/python3
"""Export brats-m2dn (the best VAL checkpoint, out/m2dn/brats-m2dn.pt) to models/brats-m2dn.onnx (opset 17, dynamic
N), check it against torch with the node's own runtime (onnxruntime-node from node_modules; no Python onnxruntime
here), and write the sampler reference vector the node's TS sampler is tested against.

    /usr/bin/python3 models/training/export_m2dn.py [--steps N]   (default: out/m2dn/steps.json)

Reference (models/training/out/m2dn/reference/, committed: synthetic phantom input, no BraTS data):
- ref.json: shapes, the modality mask (T1c and FLAIR missing), the DDIM timesteps and their alphas_cumprod, the
  schedule, and max differences found here;
- x_acq.bin [1,4,128,128] (acquired images; missing channels 0), brain.bin [1,1,128,128] (0/1), noise.bin
  [1,4,128,128] (x_T on the missing channels), step0_x0.bin (net output of the first step: x_t = acquired channels
  x_acq, missing channels noise, t = timesteps[0]), final.bin (the sampler's result); little-endian float32.
The JS check below runs the whole sampler with onnxruntime-node exactly as models/README.md writes it, and compares
with the torch sampler (m2dn_nets.ddim_sample).
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
import torch.nn as nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import m2dn_nets as mn  # noqa: E402

RUN = HERE / "out" / "m2dn"

NODE = r"""
const ort = require('onnxruntime-node');
const fs = require('fs');
const rd = (f) => new Float32Array(Uint8Array.from(fs.readFileSync(f)).buffer);
(async () => {
  const [onnx, dir, outf] = process.argv.slice(1);
  const ref = JSON.parse(fs.readFileSync(dir + '/ref.json', 'utf8'));
  const s = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 });
  const P = 128 * 128, mask = ref.modalityMask, ts = ref.sampler.timesteps, ab = ref.sampler.alphasCumprodAtTimesteps;
  const xa = rd(dir + '/x_acq.bin'), br = rd(dir + '/brain.bin');
  let x = rd(dir + '/noise.bin');
  let x0 = null, step0 = null;
  for (let i = 0; i < ts.length; i++) {
    const xin = new Float32Array(4 * P);
    for (let c = 0; c < 4; c++) for (let p = 0; p < P; p++) xin[c * P + p] = mask[c] ? xa[c * P + p] : x[c * P + p];
    const r = await s.run({ x_t: new ort.Tensor('float32', xin, [1, 4, 128, 128]),
      modality_mask: new ort.Tensor('float32', Float32Array.from(mask), [1, 4]),
      t: new ort.Tensor('float32', Float32Array.from([ts[i]]), [1]) });
    x0 = r.x0.data;
    if (i === 0) step0 = Float32Array.from(x0);
    if (i + 1 < ts.length) {
      const at = ab[i], ap = ab[i + 1], nx = new Float32Array(4 * P);
      for (let k = 0; k < 4 * P; k++) {
        const eps = (x[k] - Math.sqrt(at) * x0[k]) / Math.sqrt(Math.max(1 - at, 1e-12));
        nx[k] = Math.sqrt(ap) * x0[k] + Math.sqrt(1 - ap) * eps;
      }
      x = nx;
    }
  }
  const fin = new Float32Array(4 * P);
  for (let c = 0; c < 4; c++) for (let p = 0; p < P; p++) fin[c * P + p] = (mask[c] ? xa[c * P + p] : x0[c * P + p]) * br[p];
  const e0 = rd(dir + '/step0_x0.bin'), ef = rd(dir + '/final.bin');
  let d0 = 0, df = 0;
  for (let k = 0; k < 4 * P; k++) { d0 = Math.max(d0, Math.abs(step0[k] - e0[k])); df = Math.max(df, Math.abs(fin[k] - ef[k])); }
  // batch-2 call: dynamic N
  const xb = new Float32Array(8 * P); xb.set(xa, 0); xb.set(rd(dir + '/noise.bin'), 4 * P);
  const rb = await s.run({ x_t: new ort.Tensor('float32', xb, [2, 4, 128, 128]),
    modality_mask: new ort.Tensor('float32', Float32Array.from([...mask, 1, 1, 0, 0]), [2, 4]),
    t: new ort.Tensor('float32', Float32Array.from([500, 10]), [2]) });
  fs.writeFileSync(outf, Buffer.from(rb.x0.data.buffer, rb.x0.data.byteOffset, rb.x0.data.byteLength));
  console.log(JSON.stringify({ maxAbsStep0: d0, maxAbsFinal: df, batchDims: rb.x0.dims }));
})();
"""


class Export(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x_t: torch.Tensor, modality_mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.m(x_t, modality_mask, t)


def phantom(seed: int = 3):
    """Synthetic 4-sequence head-like phantom on the 128 grid, zscore-brain normalised (no patient data)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    brain = ((yy - 64) / 52) ** 2 + ((xx - 64) / 42) ** 2 <= 1
    vent = ((yy - 60) / 14) ** 2 + ((xx - 64) / 8) ** 2 <= 1
    cortex = brain & ~(((yy - 64) / 46) ** 2 + ((xx - 64) / 36) ** 2 <= 1)
    lesion = ((yy - 45) / 9) ** 2 + ((xx - 82) / 9) ** 2 <= 1
    oedema = (((yy - 45) / 17) ** 2 + ((xx - 82) / 16) ** 2 <= 1) & ~lesion
    # intensities per sequence (FLAIR, T1, T1c, T2) for wm, gm, csf, oedema, lesion
    tab = np.array([[1.0, 1.2, 0.3, 2.0, 1.6], [1.4, 1.0, 0.3, 0.8, 0.9], [1.4, 1.0, 0.3, 0.8, 2.2],
                    [0.8, 1.1, 2.5, 1.9, 1.5]], np.float32)
    x = np.zeros((4, 128, 128), np.float32)
    for c in range(4):
        v = np.full((128, 128), tab[c, 0], np.float32)
        v[cortex], v[vent], v[oedema], v[lesion] = tab[c, 1], tab[c, 2], tab[c, 3], tab[c, 4]
        v = v + rng.normal(0, 0.03, v.shape).astype(np.float32)
        mu, sd = v[brain].mean(), v[brain].std()
        x[c] = np.where(brain, np.clip((v - mu) / sd, -5, 5), 0)
    return x[None], brain[None, None].astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--run", default=str(RUN))
    a = ap.parse_args()
    torch.set_num_threads(1)
    run = Path(a.run)
    steps = a.steps or json.loads((run / "steps.json").read_text())["default"]
    net = mn.build("brats-m2dn")
    net.load_state_dict(torch.load(run / "brats-m2dn.pt"))
    net.eval()
    path = ROOT / "models" / "brats-m2dn.onnx"
    torch.onnx.export(Export(net), (torch.zeros(2, 4, 128, 128), torch.ones(2, 4), torch.full((2,), 10.0)), str(path),
                      opset_version=17, input_names=["x_t", "modality_mask", "t"], output_names=["x0"],
                      dynamic_axes={"x_t": {0: "N"}, "modality_mask": {0: "N"}, "t": {0: "N"}, "x0": {0: "N"}})
    import onnx
    onnx.checker.check_model(onnx.load(str(path)))
    x, brain = phantom()
    mask = [0.0, 1.0, 0.0, 1.0]  # FLAIR and T1c missing
    m4 = np.array(mask, np.float32)[None, :, None, None]
    x_acq = (x * m4).astype(np.float32)
    noise = np.random.default_rng(15).standard_normal((1, 4, 128, 128)).astype(np.float32)
    ts = mn.ddim_timesteps(steps)
    ab = mn.alphas_cumprod()
    xt, mk, br, nz = (torch.from_numpy(v) for v in (x_acq, np.array([mask], np.float32), brain, noise))
    with torch.no_grad():
        x_t0 = torch.from_numpy(m4) * xt + (1 - torch.from_numpy(m4)) * nz
        step0 = net(x_t0, mk, torch.tensor([float(ts[0])])).numpy()
        final = mn.ddim_sample(net, xt, mk, br, steps, nz).numpy()
        xb = torch.cat([xt, nz])
        batch = net(xb, torch.tensor([mask, [1, 1, 0, 0]], dtype=torch.float32), torch.tensor([500.0, 10.0])).numpy()
    refdir = run / "reference"
    refdir.mkdir(parents=True, exist_ok=True)
    for n, v in (("x_acq", x_acq), ("brain", brain), ("noise", noise), ("step0_x0", step0), ("final", final)):
        np.ascontiguousarray(v, np.float32).tofile(refdir / f"{n}.bin")
    ref = {"model": "brats-m2dn", "onnxSha256": hashlib.sha256(path.read_bytes()).hexdigest(),
           "input": "synthetic phantom (m2dn export_m2dn.phantom, no patient data), zscore-brain normalised",
           "shape": [1, 4, 128, 128], "channelOrder": ["FLAIR", "T1", "T1c", "T2"], "modalityMask": mask,
           "files": {"x_acq.bin": "acquired images (missing channels 0)", "brain.bin": "[1,1,128,128] brain 0/1",
                     "noise.bin": "x_T (its missing channels are used)",
                     "step0_x0.bin": "net(x_t = acquired channels x_acq, missing channels noise; t = timesteps[0])",
                     "final.bin": "sampler result (acquired channels = x_acq, missing = last x0, times brain)"},
           "dtype": "float32 little-endian, C order",
           "sampler": {"type": "ddim", "eta": 0, "trainSteps": mn.T_TRAIN, "schedule": "cosine", "s": mn.COSINE_S,
                       "steps": steps, "timesteps": ts,
                       "alphasCumprodAtTimesteps": [float(ab[t]) for t in ts]}}
    (refdir / "ref.json").write_text(json.dumps(ref, indent=1))
    with tempfile.TemporaryDirectory() as td:
        of = str(Path(td) / "b.bin")
        r = subprocess.run(["node", "-e", NODE, str(path), str(refdir.resolve()), of], check=True, cwd=ROOT,
                           capture_output=True, text=True)
        js = json.loads(r.stdout.strip().splitlines()[-1])
        got = np.fromfile(of, np.float32).reshape(batch.shape)
    js["maxAbsBatch2"] = float(np.abs(got - batch).max())
    js["runtime"] = "onnxruntime-node (repo node_modules), 1 thread; JS sampler loop as models/README.md"
    ref["check"] = js
    (refdir / "ref.json").write_text(json.dumps(ref, indent=1))
    (run / "brats-m2dn.onnxcheck.json").write_text(json.dumps(js, indent=1))
    print(json.dumps(js))
    ok = js["maxAbsStep0"] < 1e-3 and js["maxAbsFinal"] < 1e-2 and js["maxAbsBatch2"] < 1e-3
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
