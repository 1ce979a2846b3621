#!/usr/bin/python3
"""Fine-tune a committed lesion model on lesions in real backgrounds (issue 17) mixed with realism-2 phantoms.

The v0.3.0 runs' .pt checkpoints are not in the repository: the weights are recovered from the committed ONNX
(onnx_to_torch.py: BatchNorm folded, so the BatchNorm layers stay in eval mode while training). Training, selection
on VAL and the ONNX export are train_all.py's (train_one, validate, export_onnx) with a wall-time budget.

    nice -n 19 /usr/bin/python3 real_backgrounds.py train 300 --npz          # cache/data/realbg_train_300_0.npz
    nice -n 19 /usr/bin/python3 real_backgrounds.py val 40 --npz             # cache/data/realbg_val_40_0.npz
    nice -n 19 /usr/bin/python3 phantoms.py --build train 100 --seed0 0 --matrix 128,144,160,192 --realism 2 --out cache/data
    nice -n 19 /usr/bin/python3 finetune_realbg.py --model unet2d-baseline --minutes 20 --out out/realbg-ft \\
        --train cache/data/realbg_train_300_0.npz cache/data/train_100_0_r2.npz --val cache/data/realbg_val_40_0.npz
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import nets  # noqa: E402
import onnx_to_torch  # noqa: E402
import train_all  # noqa: E402


def _frozen_bn_build(orig):
    def build(name: str, scale: float = 1.0) -> nn.Module:
        m = orig(name, scale)
        for bn in m.modules():
            if isinstance(bn, nn.BatchNorm2d):  # folded statistics: never batch statistics
                bn.train = types.MethodType(lambda self, mode=True: nn.Module.train(self, False), bn)
        return m
    return build


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=train_all.MODELS)
    ap.add_argument("--onnx", default=None, help="weights to start from (default models/<model>.onnx)")
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--val-at", default="0.34,0.67,1.0")
    ap.add_argument("--full-every", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1717)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-max-studies", type=int, default=24, help="VAL studies used for selection (CPU budget)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    init = out / "init"
    init.mkdir(parents=True, exist_ok=True)
    src = a.onnx or str(HERE.parent / f"{a.model}.onnx")
    m0 = onnx_to_torch.recover(a.model, src)
    diff = onnx_to_torch.check(m0, a.model, src)
    print(f"recovered {a.model} from {src}: max |initializer difference| {diff:.2e}", flush=True)
    assert diff < 1e-6
    torch.save(m0.state_dict(), init / f"{a.model}.pt")
    train_all.nets.build = _frozen_bn_build(nets.build)
    ns = argparse.Namespace(seed=a.seed, scale=onnx_to_torch.SCALE, init=str(init), lr=a.lr, minutes=a.minutes,
                            val_at=sorted(float(f) for f in a.val_at.split(",")), full_every=a.full_every, crop=64,
                            batch=a.batch, iters=0, full_iters=0, realism=2)
    train = train_all.SliceData(a.train)
    val = train_all.SliceData([a.val], a.val_max_studies)
    print(f"train slices {len(train.y)} (lesion {len(train.lesion_idx)}), val slices {len(val.y)}", flush=True)
    # the starting point's VAL score, so that the selection can keep it (checkpoint "it 0")
    start = train_all.validate(m0, a.model, val, [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0)] if a.model == "shaspec-missing" else [(1.0, 1.0)])
    print(f"[{a.model}] VAL start (v0.3.0 weights): {start:.4f}", flush=True)
    model, info = train_all.train_one(a.model, ns, train, val, out)
    info["valStart"] = round(start, 4)
    info["initOnnx"] = src
    info["trainFiles"] = [Path(f).name for f in a.train]
    info["valFile"] = Path(a.val).name
    sha = train_all.export_onnx(model, a.model, out / f"{a.model}.onnx")
    info["sha256"] = sha
    (out / f"{a.model}.train.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k] for k in ("iterations", "bestValDice", "valStart", "sha256")}), flush=True)


if __name__ == "__main__":
    main()
