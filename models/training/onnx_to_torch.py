#!/usr/bin/python3
"""Recover trainable torch weights (nets.py) from a committed lesion-model ONNX file, for fine-tuning when the run's
.pt checkpoint is gone (the v0.3.0 runs' out/ folders are not in the repository).

The export (train_all.export_onnx, eval mode) folds every BatchNorm into the convolution before it, so the ONNX holds
W' = W * g / sqrt(v + eps) and b' = beta - m * g / sqrt(v + eps). The recovered network therefore has conv weight W',
BatchNorm gamma 1, beta b', running mean 0 and running variance 1 - eps: identical in eval mode (the fold gives
W' = W exactly, since 1 / sqrt(1 - eps + eps) = 1). Fine-tune it with
the BatchNorm layers kept in eval mode (`freeze_bn`): a batch's statistics would otherwise replace the folded ones.

How the initializers are matched: the freshly built network gets distinct random values in every parameter (BatchNorm:
gamma 1, mean 0, variance 1 - eps, random beta) and is exported with the same exporter; both graphs must have the same nodes in the same order
(checked), so an initializer's (node, input slot) says which parameter it is (found by value in the probe, also
transposed for MatMul weights). Checked: the recovered network re-exported gives the same initializers as the file
(max abs difference printed).

    /usr/bin/python3 onnx_to_torch.py dual-encoder ../dual-encoder.onnx out/rb-ft/dual-encoder.init.pt
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import nets  # noqa: E402
import train_all  # noqa: E402

SCALE = 0.5  # the committed models' --scale


def _identity_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1 - m.eps)
            m.weight.data.fill_(1.0)
            m.bias.data.zero_()


def _inits(path: str):
    g = onnx.load(path).graph
    return g, {i.name: numpy_helper.to_array(i) for i in g.initializer}


def freeze_bn(model: nn.Module) -> None:
    """BatchNorm layers to eval mode (running statistics), after model.train()."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def recover(name: str, onnx_path: str) -> nn.Module:
    torch.manual_seed(0)
    model = nets.build(name, SCALE).eval()
    _identity_bn(model)
    bn_names = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    # every parameter but the BatchNorm scales gets distinct random values (BatchNorm beta = the folded conv bias);
    # equal values would make the exporter share one initializer and change the graph
    params = {n: p for n, p in model.named_parameters() if not (n.rsplit(".", 1)[0] in bn_names and n.endswith(".weight"))}
    with torch.no_grad():
        for p in params.values():
            p.copy_(torch.randn(p.shape) * 0.1 + 0.01)
    with tempfile.TemporaryDirectory() as td:
        probe_path = str(Path(td) / "probe.onnx")
        train_all.export_onnx(model, name, Path(probe_path))
        pg, pi = _inits(probe_path)
    sg, si = _inits(onnx_path)
    assert [n.op_type for n in pg.node] == [n.op_type for n in sg.node], "graphs differ: not the same network/exporter"
    by_value = {n: p.detach().numpy() for n, p in params.items()}
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    used = set()
    for pn, sn in zip(pg.node, sg.node):
        for a, b in zip(pn.input, sn.input):
            if a not in pi:
                continue
            pa, sa = pi[a], si[b]
            for n, v in by_value.items():
                if v.shape == pa.shape and np.array_equal(v, pa):
                    sd[n] = torch.from_numpy(np.ascontiguousarray(sa)).float()
                    used.add(n)
                    break
                if v.ndim == 2 and v.T.shape == pa.shape and np.array_equal(v.T, pa):
                    sd[n] = torch.from_numpy(np.ascontiguousarray(sa.T)).float()
                    used.add(n)
                    break
    # ShaSpec's domain-classification head is training-only (not in the exported graph): it keeps its fresh init
    missing = [n for n in params if n not in used and not n.startswith("domain.")]
    assert not missing, f"parameters not found in the ONNX graph: {missing[:5]}"
    model.load_state_dict(sd)
    return model


def check(model: nn.Module, name: str, onnx_path: str) -> float:
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "re.onnx"
        train_all.export_onnx(model, name, p)
        rg, ri = _inits(str(p))
    sg, si = _inits(onnx_path)
    worst = 0.0
    for rn, sn in zip(rg.node, sg.node):
        for a, b in zip(rn.input, sn.input):
            if a in ri and b in si:
                worst = max(worst, float(np.abs(ri[a].astype(np.float64) - si[b]).max()) if ri[a].size else 0.0)
    return worst


if __name__ == "__main__":
    name, src, dst = sys.argv[1:4]
    torch.set_num_threads(1)
    m = recover(name, src)
    print(f"{name}: max |initializer difference| after re-export {check(m, name, src):.2e}")
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save(m.state_dict(), dst)
