#!/usr/bin/python3
"""Train the sequence-synthesis models (issue 15) on the BraTS TRAIN cases, select on VAL (PSNR of the synthesised
sequences), save the best checkpoint (export: export_m2dn.py).

    /usr/bin/python3 models/training/train_m2dn.py --model brats-m2dn --minutes 25
    /usr/bin/python3 models/training/train_m2dn.py --model brats-synth-unet --minutes 8

Data and augmentation are those of the brain-tumour models (brats_data.Sampler: thick slices, gamma, bias field,
noise, brain-mask erosion/dilation, rotation/scale/flip/shift), applied to a fraction --aug of the batches (the
targets are augmented too: a gamma on the target sequence is a mapping the net cannot know, so not every batch).
Each slice gets one available/missing split drawn uniformly over the 14 splits with >= 1 acquired and >= 1 missing.

brats-m2dn: t ~ U{0..T-1}, T = 1000, cosine schedule (m2dn_nets.alphas_cumprod); x_t = acquired channels clean,
missing channels sqrt(ab_t) x0 + sqrt(1 - ab_t) eps; the net predicts x0 of all four. brats-synth-unet: the same
network without t, missing channels 0, one pass. Loss for both: L1 on the missing channels inside the brain +
--w-acq x L1 on the acquired channels inside the brain (the self-supervised reconstruction term). Brain = any
channel non-zero after augmentation (the sampler zeroes outside the perturbed mask).

VAL: every --val-stride-th brain slice of the 2 VAL cases, slice k gets split k mod 14 (all 14 covered), the
sampler of the node (DDIM, --val-steps steps, fixed seed noise) for M2DN, one pass for the U-Net; criterion = mean
PSNR over the synthesised channels (PSNR definition: eval_synthesis.psnr).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brats_data as bd  # noqa: E402
import m2dn_nets as mn  # noqa: E402
from train_brats import crop  # noqa: E402


def psnr_range(x: np.ndarray, brain: np.ndarray) -> float:
    """Data range of one true normalised image (2D or 3D): its 99.5th minus 1st percentile inside the brain."""
    v = x[brain]
    return float(np.percentile(v, 99.5) - np.percentile(v, 1)) if v.size else 1.0


class SynthVal:
    def __init__(self, cases, stride: int, seed: int = 7):
        xs, bs = [], []
        for c in cases:
            d = bd.normalised_case(c)
            area = d["mask"].reshape(d["mask"].shape[0], -1).sum(1)
            zs = np.nonzero(area > 0.05 * bd.GRID * bd.GRID)[0][::stride]
            xs.append(d["x"][:, zs].transpose(1, 0, 2, 3))
            bs.append(d["mask"][zs])
        self.x = torch.from_numpy(np.concatenate(xs).copy())
        self.brain = torch.from_numpy(np.concatenate(bs)[:, None].astype(np.float32))
        n = self.x.shape[0]
        self.mask = torch.tensor([mn.SPLITS14[k % 14] for k in range(n)], dtype=torch.float32)
        self.noise = torch.from_numpy(np.random.default_rng(seed).standard_normal(self.x.shape).astype(np.float32))


@torch.no_grad()
def synth(model, x, mask, brain, noise, steps: int, bs: int = 32) -> torch.Tensor:
    outs = []
    for s in range(0, x.shape[0], bs):
        sl = slice(s, s + bs)
        if model.use_t:
            outs.append(mn.ddim_sample(model, x[sl], mask[sl], brain[sl], steps, noise[sl]))
        else:
            m = mask[sl][:, :, None, None]
            outs.append((m * x[sl] + (1 - m) * model(x[sl] * m, mask[sl])) * brain[sl])
    return torch.cat(outs)


@torch.no_grad()
def validate(model, val: SynthVal, steps: int) -> float:
    model.eval()
    y = synth(model, val.x, val.mask, val.brain, val.noise, steps).numpy()
    x, br = val.x.numpy(), val.brain.numpy()[:, 0] > 0
    ps = []
    for k in range(x.shape[0]):
        for c in range(4):
            if val.mask[k, c] == 0 and br[k].any():
                mse = float(((y[k, c] - x[k, c])[br[k]] ** 2).mean())
                ps.append(10 * math.log10(psnr_range(x[k, c], br[k]) ** 2 / max(mse, 1e-10)))
    model.train()
    return float(np.mean(ps))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["brats-m2dn", "brats-synth-unet"])
    ap.add_argument("--out", default=str(HERE / "out" / "m2dn"))
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--full-every", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--aug", type=float, default=0.6, help="fraction of batches augmented")
    ap.add_argument("--w-acq", type=float, default=0.2)
    ap.add_argument("--val-at", default="0.6,0.8,1.0")
    ap.add_argument("--val-stride", type=int, default=6)
    ap.add_argument("--val-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sp = bd.splits()
    t_data = time.time()
    sampler = bd.Sampler(sp["train"], a.seed)
    val = SynthVal(sp["val"], a.val_stride)
    print(f"data {time.time() - t_data:.0f}s; val slices {val.x.shape[0]}", flush=True)
    rng = np.random.default_rng(a.seed + 1)
    model = mn.build(a.model)
    diffusion = model.use_t
    ab = torch.from_numpy(mn.alphas_cumprod().astype(np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    val_left = sorted(float(f) for f in a.val_at.split(","))
    budget = a.minutes * 60
    max_lr, warm = a.lr, 0.05

    def lr_at(f: float) -> float:
        if f < warm:
            return max_lr / 25 + (max_lr - max_lr / 25) * (1 - math.cos(math.pi * f / warm)) / 2
        g = min(1.0, (f - warm) / (1 - warm))
        return max_lr / 1e3 + (max_lr - max_lr / 1e3) * (1 + math.cos(math.pi * g)) / 2

    best, best_state, hist, it, slices_seen = -1e9, None, [], 0, 0.0
    t0 = time.time()
    model.train()

    def check(label=""):
        nonlocal best, best_state
        v = validate(model, val, a.val_steps)
        hist.append({"iter": it, "valPSNR": round(v, 3), "seconds": round(time.time() - t0)})
        print(f"[{a.model}] VAL it {it}{label}: PSNR {v:.3f} dB ({time.time() - t0:.0f}s)", flush=True)
        if v > best:
            best = v
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}

    while True:
        frac = (time.time() - t0) / budget
        if frac >= 1.0:
            break
        it += 1
        for g in opt.param_groups:
            g["lr"] = lr_at(frac)
        full = a.full_every > 0 and it % a.full_every == 0
        bs = max(4, a.batch // 2) if full else a.batch
        x, y = sampler.batch(bs, aug=bool(rng.random() < a.aug))
        if not full:
            x, y = crop(x, y, a.crop, rng)
        slices_seen += bs if full else bs * (a.crop / 128) ** 2
        brain = (x.abs().sum(1, keepdim=True) > 0).float()
        m = torch.tensor([mn.SPLITS14[i] for i in rng.integers(0, 14, bs)], dtype=torch.float32)
        m4 = m[:, :, None, None]
        if diffusion:
            t = torch.from_numpy(rng.integers(0, mn.T_TRAIN, bs))
            a_t = ab[t][:, None, None, None]
            eps = torch.randn_like(x)
            xt = m4 * x + (1 - m4) * (a_t.sqrt() * x + (1 - a_t).sqrt() * eps)
            pred = model(xt, m, t.float())
        else:
            pred = model(x * m4, m)
        err = (pred - x).abs() * brain
        miss = (1 - m4) * brain
        acq = m4 * brain
        l_miss = (err * (1 - m4)).sum() / miss.sum().clamp(min=1)
        l_acq = (err * m4).sum() / acq.sum().clamp(min=1)
        loss = l_miss + a.w_acq * l_acq
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 25 == 0:
            print(f"[{a.model}] it {it} {'full' if full else 'crop'} loss {loss.item():.4f} (miss {l_miss.item():.4f} "
                  f"acq {l_acq.item():.4f}) lr {lr_at(frac):.2e} {time.time() - t0:.0f}s", flush=True)
        if val_left and (time.time() - t0) / budget >= val_left[0]:
            val_left.pop(0)
            check()
            torch.save(best_state, out / f"{a.model}.pt")  # best so far, in case the run is stopped
    if not hist or hist[-1]["iter"] != it:
        check(" (end of budget)")
    train_seconds = round(time.time() - t0)
    torch.save(best_state, out / f"{a.model}.pt")
    sel = max(hist, key=lambda h: h["valPSNR"])
    info = {"model": a.model, "params": mn.n_params(model), "iterations": it, "selectedIteration": sel["iter"],
            "slicesSeen128Equivalent": round(slices_seen), "valHistory": hist, "bestValPSNR": round(best, 3),
            "valCriterion": (f"mean PSNR (dB; range = 99.5th - 1st percentile of the true normalised slice inside the "
                             f"brain) over the synthesised channels of every {a.val_stride}th brain slice of the 2 VAL "
                             f"cases, slice k with split k mod 14" +
                             (f", DDIM {a.val_steps} steps, fixed seed noise" if diffusion else ", one pass")),
            "trainSeconds": train_seconds, "trainCases": sp["train"], "valCases": sp["val"],
            "hardware": "CPU, 1 thread (2-core machine shared with other jobs)", "args": vars(a)}
    (out / f"{a.model}.train.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k] for k in ("iterations", "selectedIteration", "bestValPSNR", "trainSeconds")}))


if __name__ == "__main__":
    main()
