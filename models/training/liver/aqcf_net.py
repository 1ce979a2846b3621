#!/usr/bin/python3
"""A-QCF-Net (adaptive quaternion cross-fusion network) and its single-modality baselines, 2D, PyTorch (issue 16).

- QuaternionConv2d: weights are quaternions (r, i, j, k), each [C_out/4, C_in/4, k, k]; the layer applies the
  Hamilton product W (x) x to the input laid out as four component blocks [a | b | c | d] along channels. A
  quaternion layer has 1/4 of the weights of a real layer of the same width (`python3 aqcf_net.py --check`).
- Two quaternion U-Net streams (CT, MRI). A slice of either modality goes through its modality's stem and then
  through BOTH streams; at every encoder level and at the bottleneck an adaptive cross-fusion block (ACF) gates
  how much of each stream flows into the other, in both directions: a channel gate from the pooled features of
  both streams and the modality, times a spatial gate from both feature maps, on a quaternion 1x1 transform of
  the partner stream. Each stream has its own decoder and head; the output is the head of the input's own
  modality (modality input: 1 = CT, 0 = MRI, per batch item), so one model serves unpaired CT and MRI batches.
- Baselines: a real-valued 2D U-Net (CT-only / MRI-only) whose width is chosen to match A-QCF-Net's parameter
  count (`unet_same_budget`).
- 3 classes: 0 background, 1 liver, 2 tumour. ONNX: opset 17 (`--onnx-check`).

Norm: instance norm per real channel (a simplification of quaternion batch norm); activation: split leaky ReLU.
"""
from __future__ import annotations

import argparse
import math
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class QuaternionConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, bias: bool = True):
        super().__init__()
        assert cin % 4 == 0 and cout % 4 == 0, "quaternion layers need channel counts divisible by 4"
        self.cin, self.cout, self.k, self.stride = cin, cout, k, stride
        shape = (cout // 4, cin // 4, k, k)
        std = 1.0 / math.sqrt(cin * k * k / 2)  # He-like on the real-equivalent fan-in
        self.r = nn.Parameter(torch.randn(shape) * std)
        self.i = nn.Parameter(torch.randn(shape) * std)
        self.j = nn.Parameter(torch.randn(shape) * std)
        self.kk = nn.Parameter(torch.randn(shape) * std)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def weight(self) -> torch.Tensor:
        r, i, j, k = self.r, self.i, self.j, self.kk
        return torch.cat([
            torch.cat([r, -i, -j, -k], 1),  # real part:  r a - i b - j c - k d
            torch.cat([i, r, -k, j], 1),    # i part:     i a + r b - k c + j d
            torch.cat([j, k, r, -i], 1),    # j part:     j a + k b + r c - i d
            torch.cat([k, -j, i, r], 1),    # k part:     k a - j b + i c + r d
        ], 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, self.stride, self.k // 2)


def qcat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate two quaternion feature maps component-wise (keeps the [a | b | c | d] block layout)."""
    B, Ca, H, W = a.shape
    Cb = b.shape[1]
    return torch.cat([a.reshape(B, 4, Ca // 4, H, W), b.reshape(B, 4, Cb // 4, H, W)], 2).reshape(B, Ca + Cb, H, W)


class QBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.c1, self.c2 = QuaternionConv2d(cin, cout), QuaternionConv2d(cout, cout)
        self.n1, self.n2 = nn.InstanceNorm2d(cout, affine=True), nn.InstanceNorm2d(cout, affine=True)

    def forward(self, x):
        x = F.leaky_relu(self.n1(self.c1(x)), 0.01)
        return F.leaky_relu(self.n2(self.c2(x)), 0.01)


class ACF(nn.Module):
    """Adaptive cross-fusion: f_ct += g_c * a_c * T_mc(f_mr); f_mr += g_m * a_m * T_cm(f_ct) (both directions)."""

    def __init__(self, c: int):
        super().__init__()
        h = max(8, c // 4)
        self.mlp = nn.Sequential(nn.Linear(2 * c + 2, h), nn.ReLU(), nn.Linear(h, 2 * c))
        self.spatial = nn.Conv2d(2 * c, 2, 3, padding=1)
        self.t_mc = QuaternionConv2d(c, c, 1)
        self.t_cm = QuaternionConv2d(c, c, 1)
        self.c = c

    def forward(self, fc, fm, mod):
        s = torch.cat([fc, fm], 1)
        z = torch.cat([s.mean((2, 3)), mod], 1)
        g = torch.sigmoid(self.mlp(z))[:, :, None, None]
        a = torch.sigmoid(self.spatial(s))
        fc2 = fc + g[:, :self.c] * a[:, 0:1] * self.t_mc(fm)
        fm2 = fm + g[:, self.c:] * a[:, 1:2] * self.t_cm(fc)
        return fc2, fm2


class AQCFNet(nn.Module):
    def __init__(self, base: int = 16, depth: int = 4, classes: int = 3):
        super().__init__()
        w = [base * 2 ** i for i in range(depth)]
        self.widths = w
        self.stem = nn.ModuleList([nn.Conv2d(1, w[0], 3, padding=1) for _ in range(2)])  # 0: CT, 1: MRI
        self.enc = nn.ModuleList([nn.ModuleList([QBlock(w[0] if i == 0 else w[i - 1], w[i]) for i in range(depth)])
                                  for _ in range(2)])
        self.acf = nn.ModuleList([ACF(w[i]) for i in range(depth)])
        self.dec = nn.ModuleList([nn.ModuleList([QBlock(w[i + 1] + w[i], w[i]) for i in reversed(range(depth - 1))])
                                  for _ in range(2)])
        self.head = nn.ModuleList([nn.Conv2d(w[0], classes, 1) for _ in range(2)])

    def forward(self, x: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """x [B, 1, H, W] (H, W divisible by 2^(depth-1)); modality [B] float, 1 = CT, 0 = MRI."""
        m = modality.reshape(-1, 1, 1, 1).to(x.dtype)
        h = m * self.stem[0](x) + (1 - m) * self.stem[1](x)
        mod = torch.cat([modality.reshape(-1, 1), 1 - modality.reshape(-1, 1)], 1).to(x.dtype)
        fc, fm = h, h
        skips: List[Tuple[torch.Tensor, torch.Tensor]] = []
        for i in range(len(self.widths)):
            if i > 0:
                fc, fm = F.max_pool2d(fc, 2), F.max_pool2d(fm, 2)
            fc, fm = self.enc[0][i](fc), self.enc[1][i](fm)
            fc, fm = self.acf[i](fc, fm, mod)
            skips.append((fc, fm))
        outs = []
        for s in range(2):
            f = skips[-1][s]
            for j, blk in enumerate(self.dec[s]):
                skip = skips[-2 - j][s]
                f = blk(qcat(F.interpolate(f, scale_factor=2.0, mode="nearest"), skip))
            outs.append(self.head[s](f))
        return m * outs[0] + (1 - m) * outs[1]


class RBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, padding=1), nn.Conv2d(cout, cout, 3, padding=1)
        self.n1, self.n2 = nn.InstanceNorm2d(cout, affine=True), nn.InstanceNorm2d(cout, affine=True)

    def forward(self, x):
        x = F.leaky_relu(self.n1(self.c1(x)), 0.01)
        return F.leaky_relu(self.n2(self.c2(x)), 0.01)


class UNet2d(nn.Module):
    """Real-valued single-modality baseline (same I/O as AQCFNet; the modality input is ignored)."""

    def __init__(self, base: int = 16, depth: int = 4, classes: int = 3):
        super().__init__()
        w = [base * 2 ** i for i in range(depth)]
        self.widths = w
        self.enc = nn.ModuleList([RBlock(1 if i == 0 else w[i - 1], w[i]) for i in range(depth)])
        self.dec = nn.ModuleList([RBlock(w[i + 1] + w[i], w[i]) for i in reversed(range(depth - 1))])
        self.head = nn.Conv2d(w[0], classes, 1)

    def forward(self, x: torch.Tensor, modality: torch.Tensor = None) -> torch.Tensor:
        skips = []
        f = x
        for i, blk in enumerate(self.enc):
            if i > 0:
                f = F.max_pool2d(f, 2)
            f = blk(f)
            skips.append(f)
        for j, blk in enumerate(self.dec):
            f = blk(torch.cat([F.interpolate(f, scale_factor=2.0, mode="nearest"), skips[-2 - j]], 1))
        return self.head(f)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def unet_same_budget(target: int, depth: int = 4, classes: int = 3) -> UNet2d:
    """The real U-Net whose parameter count is closest to target (base width searched over 4..128)."""
    best = min(range(4, 129), key=lambda b: abs(n_params(UNet2d(b, depth, classes)) - target))
    return UNet2d(best, depth, classes)


def build(name: str, base: int = 16, depth: int = 4) -> nn.Module:
    if name == "aqcf":
        return AQCFNet(base, depth)
    if name in ("unet-ct", "unet-mr"):
        return unet_same_budget(n_params(AQCFNet(base, depth)), depth)
    raise ValueError(name)


def check_quarter() -> Tuple[int, int]:
    """Weights of a quaternion conv vs a real conv of the same width (no bias): exactly 1/4."""
    q = QuaternionConv2d(64, 128, 3, bias=False)
    r = nn.Conv2d(64, 128, 3, bias=False)
    nq, nr = n_params(q), n_params(r)
    assert nq * 4 == nr, (nq, nr)
    assert q.weight().shape == r.weight.shape
    return nq, nr


def check_hamilton() -> float:
    """A 1x1 quaternion conv with one in/out quaternion channel equals the Hamilton product, pixel-wise."""
    q = QuaternionConv2d(4, 4, 1, bias=False)
    x = torch.randn(1, 4, 3, 3)
    y = q(x)
    r, i, j, k = (t.reshape(()) for t in (q.r, q.i, q.j, q.kk))
    a, b, c, d = x[0]
    ref = torch.stack([r * a - i * b - j * c - k * d, r * b + i * a + j * d - k * c,
                       r * c - i * d + j * a + k * b, r * d + i * c - j * b + k * a])
    return float((y[0] - ref).abs().max())


ORT_JS = r"""
const ort = require(process.argv[1] + '/node_modules/onnxruntime-node');
const io = JSON.parse(require('fs').readFileSync(process.argv[2] + '.json'));
ort.InferenceSession.create(process.argv[2]).then(s => s.run({
  image: new ort.Tensor('float32', Float32Array.from(io.x), io.shape),
  modality: new ort.Tensor('float32', Float32Array.from(io.mod), [io.mod.length]) })).then(r => {
  let m = 0; r.logits.data.forEach((v, i) => { m = Math.max(m, Math.abs(v - io.y[i])); }); console.log(m); });
"""


def onnx_check(path: str = "/tmp/aqcf_tiny.onnx") -> float:
    """Export a tiny AQCFNet at opset 17 (dynamic batch and size), onnx.checker, then run it in the node's
    onnxruntime-node (the repo's node_modules) and return max |ORT - torch| (nan when node is unavailable)."""
    import json
    import subprocess
    from pathlib import Path
    import onnx
    torch.manual_seed(0)
    m = AQCFNet(base=8, depth=3).eval()
    x = torch.randn(2, 1, 32, 48)
    mod = torch.tensor([1.0, 0.0])
    torch.onnx.export(m, (x, mod), path, opset_version=17, input_names=["image", "modality"],
                      output_names=["logits"], dynamic_axes={"image": {0: "b", 2: "h", 3: "w"}, "modality": {0: "b"},
                                                             "logits": {0: "b", 2: "h", 3: "w"}})
    onnx.checker.check_model(onnx.load(path))
    x2 = torch.randn(3, 1, 64, 40)  # another batch and size than the export's
    mod2 = torch.tensor([0.0, 1.0, 1.0])
    with torch.no_grad():
        y = m(x2, mod2)
    Path(path + ".json").write_text(json.dumps({"x": x2.flatten().tolist(), "shape": list(x2.shape),
                                                "mod": mod2.tolist(), "y": y.flatten().tolist()}))
    repo = str(Path(__file__).resolve().parents[3])
    try:
        out = subprocess.run(["node", "-e", ORT_JS, repo, path], capture_output=True, text=True, timeout=120)
        return float(out.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="quaternion 1/4 parameters, Hamilton product, budgets")
    ap.add_argument("--onnx-check", action="store_true")
    ap.add_argument("--base", type=int, default=16)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.check:
        nq, nr = check_quarter()
        print(f"quaternion conv 64->128 3x3: {nq} weights, real: {nr} (ratio {nq / nr})")
        print(f"Hamilton product max error: {check_hamilton():.2e}")
        m = AQCFNet(a.base)
        u = unet_same_budget(n_params(m))
        print(f"AQCFNet(base {a.base}): {n_params(m)} parameters; same-budget U-Net base {u.widths[0]}: {n_params(u)}")
        x = torch.randn(2, 1, 64, 64)
        print("forward:", tuple(m(x, torch.tensor([1.0, 0.0])).shape), tuple(u(x, None).shape))
    if a.onnx_check:
        print(f"ONNX opset 17 export of a tiny AQCFNet: onnx.checker ok; onnxruntime-node vs torch (batch 3, 64x40): "
              f"max abs diff {onnx_check():.2e}")


if __name__ == "__main__":
    main()
