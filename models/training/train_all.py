#!/usr/bin/python3
"""Train the three lesion models on phantom slices, pick each on the VAL split, export ONNX, evaluate on TEST.

One command (CPU defaults sized for ~15 min a model on one core; raise --iters/--scale/--train-studies on a GPU):
    /usr/bin/python3 models/training/train_all.py --out models/training/out/run1 --export-to models

Steps: phantom slices are built (cached) by phantoms.build_split for train/val/test; each model trains with Dice+BCE,
first on 64x64 crops (cheap; half of them centred on lesion pixels), then on whole 128x128 slices (BatchNorm statistics
and the transformer's context match inference); the checkpoint with the best VAL score is exported to ONNX opset 17
(eval mode, dynamic batch axis) and evaluated on the held-out TEST studies by evaluate.py.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import nets  # noqa: E402
import phantoms  # noqa: E402

MODELS = ["unet2d-baseline", "dual-encoder", "shaspec-missing"]
ALPHA_DOMAIN = 0.1
BETA_ALIGN = 0.02


class SliceData:
    """Model-grid slices of many studies: x2 [M, 2, 128, 128] (DWI, ADC normalised), y [M, 128, 128]."""

    def __init__(self, files: List[str], max_studies: int = 10 ** 9):
        xs, ys, st, off = [], [], [], 0
        for f in files:
            d = np.load(f)
            xs.append(d["x"])
            ys.append(d["y"])
            st.append(d["study"] + off)
            off = int(st[-1].max()) + 1
        self.x2 = np.concatenate(xs)
        self.y = np.concatenate(ys)
        self.study = np.concatenate(st)
        keep = self.study < max_studies
        self.x2, self.y, self.study = self.x2[keep], self.y[keep], self.study[keep]
        m = len(self.y)
        idx = np.arange(m)
        same_prev = np.r_[False, self.study[1:] == self.study[:-1]]
        same_next = np.r_[self.study[:-1] == self.study[1:], False]
        self.prev = np.where(same_prev, idx - 1, idx)
        self.next = np.where(same_next, idx + 1, idx)
        brain = (self.x2[:, 1] > 0).reshape(m, -1).mean(1) > 0.05
        self.brain_idx = np.nonzero(brain)[0]
        self.lesion_idx = np.nonzero(self.y.reshape(m, -1).any(1))[0]

    def six(self, i: np.ndarray) -> np.ndarray:
        x = self.x2
        return np.stack([x[self.prev[i], 0], x[i, 0], x[self.next[i], 0], x[self.prev[i], 1], x[i, 1], x[self.next[i], 1]],
                        1).astype(np.float32)


def sample_batch(data: SliceData, rng: np.random.Generator, bs: int, crop: int) -> Tuple[np.ndarray, np.ndarray]:
    n_les = bs // 2 if len(data.lesion_idx) else 0
    idx = np.r_[rng.choice(data.lesion_idx, n_les), rng.choice(data.brain_idx, bs - n_les)]
    x = data.six(idx)
    y = data.y[idx].astype(np.float32)
    if crop < x.shape[-1]:
        xc = np.empty((bs, 6, crop, crop), np.float32)
        yc = np.empty((bs, crop, crop), np.float32)
        H = x.shape[-1]
        for k in range(bs):
            pts = np.argwhere(y[k] > 0) if (k < n_les and y[k].any()) else np.argwhere(x[k, 4] > 0)
            cy, cx = pts[rng.integers(len(pts))] if len(pts) else (H // 2, H // 2)
            cy = int(np.clip(cy + rng.integers(-crop // 4, crop // 4 + 1) - crop // 2, 0, H - crop))
            cx = int(np.clip(cx + rng.integers(-crop // 4, crop // 4 + 1) - crop // 2, 0, H - crop))
            xc[k] = x[k, :, cy:cy + crop, cx:cx + crop]
            yc[k] = y[k, cy:cy + crop, cx:cx + crop]
        x, y = xc, yc
    flip = rng.random(bs) < 0.5  # left-right mirror: lesions occur in either hemisphere
    x[flip] = x[flip][..., ::-1]
    y[flip] = y[flip][..., ::-1]
    g = np.exp(rng.uniform(-0.2, 0.2, (bs, 1, 1, 1))).astype(np.float32)  # DWI scale jitter (normalisation spread)
    x[:, 0:3] = np.clip(x[:, 0:3] * g, 0, 10)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def modality_masks(rng: np.random.Generator, bs: int, dropout: bool) -> np.ndarray:
    m = np.ones((bs, 2), np.float32)
    if dropout:
        u = rng.random(bs)
        m[u < 0.25, 1] = 0  # DWI only
        m[(u >= 0.25) & (u < 0.5), 0] = 0  # ADC only
    return m


def apply_mask(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[:, 0:3] * m[:, 0:1, None, None], x[:, 3:6] * m[:, 1:2, None, None]], 1)


def seg_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    y = y[:, None]
    bce = F.binary_cross_entropy_with_logits(logits, y)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    return bce + dice


def run_model(model: nn.Module, name: str, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    if name == "shaspec-missing":
        return model(x, m)
    return model(x)


@torch.no_grad()
def validate(model: nn.Module, name: str, data: SliceData, subsets: List[Tuple[float, float]], bs: int = 32) -> float:
    """Mean over subsets of the mean per-study Dice on the model grid (val studies with a lesion; slices with brain)."""
    model.eval()
    idx = data.brain_idx
    scores = []
    for md, ma in subsets:
        inter: Dict[int, float] = {}
        tot: Dict[int, float] = {}
        for s in range(0, len(idx), bs):
            i = idx[s:s + bs]
            m = torch.tensor([[md, ma]] * len(i), dtype=torch.float32)
            x = apply_mask(torch.from_numpy(data.six(i)), m)
            pr = (run_model(model, name, x, m)[:, 0] > 0).numpy()
            y = data.y[i] > 0
            for k, st in enumerate(data.study[i]):
                inter[st] = inter.get(st, 0) + float((pr[k] & y[k]).sum())
                tot[st] = tot.get(st, 0) + float(pr[k].sum() + y[k].sum())
        les_studies = set(data.study[data.lesion_idx].tolist())
        d = [2 * inter[s] / tot[s] if tot[s] > 0 else 1.0 for s in inter if s in les_studies]
        scores.append(float(np.mean(d)))
    model.train()
    return float(np.mean(scores))


def train_one(name: str, a, train: SliceData, val: SliceData, out: Path) -> Tuple[nn.Module, Dict]:
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    model = nets.build(name, a.scale)
    if a.init:  # fine-tune: same network, weights of an earlier run
        model.load_state_dict(torch.load(Path(a.init) / f"{name}.pt"))
    n_par = nets.n_params(model)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    subsets = [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0)] if name == "shaspec-missing" else [(1.0, 1.0)]
    best, best_state, hist = -1.0, None, []
    t0 = time.time()
    budget = a.minutes * 60 if a.minutes else None
    if budget:
        # Wall-time budget (a shared CPU's speed varies): the one-cycle schedule follows the elapsed fraction,
        # VAL at fractions of the budget, stop when it is spent; no separate whole-slice phase at the end.
        total = 10 ** 9
        val_left = sorted(a.val_at)
        max_lr, warm = a.lr, 0.1

        def lr_at(f: float) -> float:  # OneCycleLR's cosine shape (initial lr/25, final lr/1e4)
            if f < warm:
                return max_lr / 25 + (max_lr - max_lr / 25) * (1 - math.cos(math.pi * f / warm)) / 2
            g = min(1.0, (f - warm) / (1 - warm))
            return max_lr / 1e4 + (max_lr - max_lr / 1e4) * (1 + math.cos(math.pi * g)) / 2
        sched = None
    else:
        total = a.iters + a.full_iters
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=total, pct_start=0.1)
        val_at = set(int(round(total * f)) for f in a.val_at)
    model.train()
    it = 0

    def check(label: str = "") -> None:
        """VAL score of the current weights at iteration `it`; keep them if they are the best so far."""
        nonlocal best, best_state
        v = validate(model, name, val, subsets)
        hist.append({"iter": it, "valDice": round(v, 4), "seconds": round(time.time() - t0)})
        print(f"[{name}] VAL it {it}{label}: {v:.4f}", flush=True)
        if v > best:
            best = v
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}

    while it < total:
        it += 1
        if budget:
            frac = (time.time() - t0) / budget
            if frac >= 1.0:
                it -= 1
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(frac)
        full = (not budget and it > a.iters) or (a.full_every > 0 and it % a.full_every == 0)
        crop = 128 if full else a.crop
        bs = max(4, a.batch // 2) if full else a.batch
        xb, yb = sample_batch(train, rng, bs, crop)
        x, y = torch.from_numpy(xb), torch.from_numpy(yb)
        if name == "shaspec-missing":
            m = torch.from_numpy(modality_masks(rng, bs, True))
            x = apply_mask(x, m)
            logits, dom, sh_d, sh_a = model.forward_train(x, m)
            loss = seg_loss(logits, y)
            # domain classification on the specific features of the modalities actually present
            lab = torch.cat([torch.zeros(bs, dtype=torch.long), torch.ones(bs, dtype=torch.long)])
            pres = torch.cat([m[:, 0], m[:, 1]]) > 0
            l_dom = F.cross_entropy(dom[pres], lab[pres])
            both = (m[:, 0] > 0) & (m[:, 1] > 0)
            l_align = F.l1_loss(sh_d[both], sh_a[both]) if both.any() else torch.zeros(())
            loss = loss + ALPHA_DOMAIN * l_dom + BETA_ALIGN * l_align
        else:
            logits = model(x)
            loss = seg_loss(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        if it % 50 == 0:
            print(f"[{name}] it {it}/{total if not budget else '-'} crop {crop} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
        if budget:
            do_val = bool(val_left) and (time.time() - t0) / budget >= val_left[0]
            if do_val:
                val_left.pop(0)
        else:
            do_val = it in val_at
        if do_val:
            check()
    if budget:
        if not hist or hist[-1]["iter"] != it:
            check(" (end of budget)")  # the last VAL point was not reached inside the loop: the final weights
        total = it
    model.load_state_dict(best_state)
    model.eval()
    info = {"params": n_par, "iterations": total, "cropIterations": a.iters if not budget else None,
            "fullSliceIterations": a.full_iters if not budget else None, "minutes": a.minutes,
            "fullEvery": a.full_every, "init": a.init, "realism": a.realism,
            "batch": a.batch, "lr": a.lr, "valHistory": hist, "bestValDice": round(best, 4),
            "valCriterion": ("mean per-study Dice on the model grid, averaged over DWI+ADC / DWI only / ADC only"
                             if name == "shaspec-missing" else "mean per-study Dice on the model grid, DWI+ADC"),
            "trainSeconds": round(time.time() - t0)}
    torch.save(model.state_dict(), out / f"{name}.pt")
    return model, info


class ShaSpecExport(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, input: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:  # noqa: A002
        return self.m(input, modality_mask)


def export_onnx(model: nn.Module, name: str, path: Path) -> str:
    model.eval()
    x = torch.zeros(2, 6, 128, 128)
    if name == "shaspec-missing":
        torch.onnx.export(ShaSpecExport(model), (x, torch.ones(2, 2)), str(path), opset_version=17,
                          input_names=["input", "modality_mask"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "modality_mask": {0: "N"}, "logits": {0: "N"}})
    else:
        torch.onnx.export(model, (x,), str(path), opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    import onnx
    onnx.checker.check_model(onnx.load(str(path)))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "out" / "run"))
    ap.add_argument("--data", default=str(HERE / "cache" / "data"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--train-studies", type=int, default=300, help="phantom studies for training (2 chunks)")
    ap.add_argument("--val-studies", type=int, default=40)
    ap.add_argument("--test-studies", type=int, default=80)
    ap.add_argument("--val-max-studies", type=int, default=16, help="val studies used for model selection (CPU budget)")
    ap.add_argument("--iters", type=int, default=450, help="iterations on crops")
    ap.add_argument("--full-iters", type=int, default=60, help="iterations on whole 128x128 slices (half batch)")
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--full-every", type=int, default=0,
                    help="every k-th crop-phase iteration uses whole slices instead (0: never)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--scale", type=float, default=0.5, help="width multiplier of nets.build")
    ap.add_argument("--val-at", default="0.8,1.0", help="fractions of training at which to validate")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--export-to", default=None, help="also copy the ONNX files here (e.g. models)")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--realism", type=int, default=1, help="phantom realism of the data (phantoms.py; 2 for 0.3.0)")
    ap.add_argument("--init", default=None, help="start from these weights (a run's <out>/ folder holding <name>.pt)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="train for this wall time instead of --iters/--full-iters (schedule by elapsed fraction; "
                         "whole slices only through --full-every)")
    a = ap.parse_args()
    a.val_at = [float(f) for f in a.val_at.split(",")]
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(a.data)
    # chunks of at most 200 studies (built in parallel with `phantoms.py --build train 200 --seed0 …`);
    # a study is a pure function of (split, seed), so the chunking does not change the data
    chunk = 200 if a.train_studies > 300 else (a.train_studies + 1) // 2
    tr_files = [str(phantoms.build_split("train", min(chunk, a.train_studies - s0), data, s0, matrix_choices=(128, 144, 160, 192),
                                              realism=a.realism))
                for s0 in range(0, a.train_studies, chunk)]
    va_file = str(phantoms.build_split("val", a.val_studies, data, 0, matrix_choices=(128, 144, 160, 192), realism=a.realism))
    train = SliceData(tr_files)
    val = SliceData([va_file], a.val_max_studies)
    print(f"train slices {len(train.y)} (brain {len(train.brain_idx)}, lesion {len(train.lesion_idx)}); "
          f"val slices {len(val.y)}", flush=True)
    for name in a.models.split(","):
        model, info = train_one(name, a, train, val, out)
        onnx_path = out / f"{name}.onnx"
        sha = export_onnx(model, name, onnx_path)
        info.update({"onnx": onnx_path.name, "sha256": sha, "bytes": onnx_path.stat().st_size,
                     "trainData": {"files": [Path(f).name for f in tr_files], "slices": int(len(train.y)),
                                   "studies": a.train_studies},
                     "valData": {"file": Path(va_file).name, "studies": a.val_studies},
                     "args": {k: v for k, v in vars(a).items()}})
        (out / f"{name}.train.json").write_text(json.dumps(info, indent=1))
        if a.export_to:
            Path(a.export_to, f"{name}.onnx").write_bytes(onnx_path.read_bytes())
        if not a.no_eval:
            import evaluate
            te_file = phantoms.build_split("test", a.test_studies, data, 0, keep_acq=True, realism=a.realism)
            evaluate.evaluate_file(name, model, str(te_file), out / f"{name}.test.json")


if __name__ == "__main__":
    main()
