#!/usr/bin/python3
"""Train brats-nslf (segmentation-driven fusion, nslf_nets.NSLF) on the BraTS TRAIN cases, select on VAL, export ONNX.

    /usr/bin/python3 models/training/train_nslf.py --minutes 20 --out models/training/out/nslf

Data, augmentation, crops and the seg loss are those of train_brats.py / brats_data.py (brats_data.Sampler: thick
slices, gamma, bias field, noise, brain-mask erosion/dilation, rotation/scale/flip/shift; 64x64 crops, every
--full-every-th iteration whole slices). A modality subset is drawn uniformly over the 15 non-empty subsets per slice.

Loss (all inside the brain = where any input channel is non-zero):
  L = L_seg + A_SSIM * L_ssim + A_GRAD * L_grad + A_CONS * L_cons
  L_seg  : cross-entropy + soft Dice (train_brats.seg_loss) of the seg head on the fused image (nested: it drives
           the weights through the fused image)
  L_ssim : mean over the ACQUIRED sources of 1 - SSIM(fused, source) (reconstruction: the fused image must look like
           every source, NSLF's self-supervised reconstruction term)
  L_grad : L1 between |grad fused| and the per-pixel max over acquired sources of |grad source| (structure
           preservation: each sequence's own edges survive in the fused image)
  L_cons : |W(T x) - T W(x)| for a random flip / 90-degree rotation T (weight maps equivariant). This stands in for
           NSLF's registration-consistency loss: BraTS sequences are co-registered, so there is no deformation to
           learn; the part kept is "the weights must not depend on where the image sits".
VAL criterion: mean over the 15 subsets of (seg Dice (WT/TC/ET mean, per case, model grid) + mean SSIM of the fused
image to the acquired sources), every --val-stride-th brain slice of the 2 VAL cases; best checkpoint exported.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brats_data as bd  # noqa: E402
import nslf_nets as nn_  # noqa: E402
from train_brats import ValSet, crop, dice_np, regions, seg_loss  # noqa: E402

A_SSIM, A_GRAD, A_CONS = 1.0, 0.5, 0.5
SSIM_L = 10.0  # dynamic range of the zscore-brain images (clip -5..5)


def _gauss(ws: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-(torch.arange(ws, dtype=torch.float32) - ws // 2) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


GK = _gauss()


def ssim_map(a: torch.Tensor, b: torch.Tensor, L: float = SSIM_L) -> torch.Tensor:
    """[N,1,H,W] x2 -> SSIM map [N,1,H,W] (Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, zero padding)."""
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    f = lambda t: F.conv2d(t, GK, padding=5)  # noqa: E731
    ma, mb = f(a), f(b)
    saa, sbb, sab = f(a * a) - ma * ma, f(b * b) - mb * mb, f(a * b) - ma * mb
    return ((2 * ma * mb + c1) * (2 * sab + c2)) / ((ma * ma + mb * mb + c1) * (saa + sbb + c2))


def grad_mag(x: torch.Tensor) -> torch.Tensor:
    gx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return torch.sqrt(gx * gx + gy * gy + 1e-6)


def recon_losses(fused, x, m, brain):
    """fused [N,1,H,W], x [N,4,H,W] (missing zeroed), m [N,4], brain [N,1,H,W] float -> (L_ssim, L_grad, mean SSIM)."""
    nb = brain.sum().clamp(min=1)
    ss = []
    for i in range(4):
        s = (ssim_map(fused, x[:, i:i + 1]) * brain).sum((1, 2, 3)) / brain.sum((1, 2, 3)).clamp(min=1)  # [N]
        ss.append(s)
    ss = torch.stack(ss, 1)  # [N, 4]
    mean_ssim = (ss * m).sum() / m.sum()
    gmax = (grad_mag(x) * m[:, :, None, None]).amax(1, keepdim=True)
    l_grad = ((grad_mag(fused) - gmax).abs() * brain).sum() / nb
    return 1 - mean_ssim, l_grad, mean_ssim


def rand_t(rng: np.random.Generator):
    k, fl = int(rng.integers(4)), bool(rng.random() < 0.5)

    def t(z):
        z = torch.rot90(z, k, (2, 3))
        return torch.flip(z, (3,)) if fl else z
    return t


@torch.no_grad()
def validate(model, val: ValSet, bs: int = 32) -> dict:
    model.eval()
    dices, ssims = [], []
    for m in bd.SUBSETS:
        per_d, per_s = [], []
        for x, lab in val.items:
            mk = torch.tensor([m] * x.shape[0], dtype=torch.float32)
            xm = x * mk[:, :, None, None]
            preds, sv = [], []
            for s in range(0, x.shape[0], bs):
                f, w, lg = model(xm[s:s + bs], mk[s:s + bs])
                preds.append(lg.argmax(1))
                brain = (x[s:s + bs].abs().sum(1, keepdim=True) > 0).float()
                sv.append(float(recon_losses(f, xm[s:s + bs], mk[s:s + bs], brain)[2]))
            pr = torch.cat(preds).numpy()
            per_d.append(np.mean([dice_np(p, t) for p, t in zip(regions(pr), regions(lab))]))
            per_s.append(float(np.mean(sv)))
        dices.append(float(np.mean(per_d)))
        ssims.append(float(np.mean(per_s)))
    model.train()
    return {"dice": float(np.mean(dices)), "ssim": float(np.mean(ssims)), "score": float(np.mean(dices) + np.mean(ssims))}


class Export(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input, modality_mask):  # noqa: A002
        return self.m(input, modality_mask)


def export_onnx(model, path: Path) -> str:
    model.eval()
    torch.onnx.export(Export(model), (torch.zeros(2, 4, 128, 128), torch.ones(2, 4)), str(path), opset_version=17,
                      input_names=["input", "modality_mask"], output_names=["fused", "weights", "logits"],
                      dynamic_axes={k: {0: "N"} for k in ("input", "modality_mask", "fused", "weights", "logits")})
    import onnx
    onnx.checker.check_model(onnx.load(str(path)))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "out" / "nslf"))
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--full-every", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--val-at", default="0.5,0.75,1.0")
    ap.add_argument("--val-stride", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--export-to", default=str(HERE.parent))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sp = bd.splits()
    t_data = time.time()
    sampler = bd.Sampler(sp["train"], a.seed)
    val = ValSet(sp["val"], a.val_stride)
    print(f"data {time.time() - t_data:.0f}s; val slices {sum(x.shape[0] for x, _ in val.items)}", flush=True)
    rng = np.random.default_rng(a.seed + 1)
    model = nn_.NSLF()
    n_par = nn_.n_params(model)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    val_left = sorted(float(f) for f in a.val_at.split(","))
    budget = a.minutes * 60
    max_lr, warm = a.lr, 0.05

    def lr_at(f: float) -> float:  # one-cycle cosine by elapsed fraction of the wall budget (as train_brats.py)
        if f < warm:
            return max_lr / 25 + (max_lr - max_lr / 25) * (1 - math.cos(math.pi * f / warm)) / 2
        g = min(1.0, (f - warm) / (1 - warm))
        return max_lr / 1e3 + (max_lr - max_lr / 1e3) * (1 + math.cos(math.pi * g)) / 2

    best, best_state, hist, it, slices_seen = -1.0, None, [], 0, 0
    t0 = time.time()
    model.train()

    def check(label=""):
        nonlocal best, best_state
        v = validate(model, val)
        hist.append({"iter": it, "valDice": round(v["dice"], 4), "valSsim": round(v["ssim"], 4),
                     "score": round(v["score"], 4), "seconds": round(time.time() - t0)})
        print(f"[nslf] VAL it {it}{label}: {v} ({time.time() - t0:.0f}s)", flush=True)
        if v["score"] > best:
            best = v["score"]
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
        x, y = sampler.batch(bs)
        if not full:
            x, y = crop(x, y, a.crop, rng)
        slices_seen += bs if full else bs * (a.crop / 128) ** 2
        m = torch.from_numpy(bd.random_subsets(rng, bs))
        brain = (x.abs().sum(1, keepdim=True) > 0).float()
        x = x * m[:, :, None, None]
        fused, w, logits = model(x, m)
        l_seg = seg_loss(logits, y)
        l_ssim, l_grad, _ = recon_losses(fused, x, m, brain)
        T = rand_t(rng)
        _, w_t = model.fuse(T(x), m)
        bt = T(brain)
        l_cons = ((w_t - T(w)).abs() * bt).sum() / (bt.sum().clamp(min=1) * 4)
        loss = l_seg + A_SSIM * l_ssim + A_GRAD * l_grad + A_CONS * l_cons
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 25 == 0:
            print(f"[nslf] it {it} {'full' if full else 'crop'} loss {loss.item():.4f} seg {l_seg.item():.3f} "
                  f"ssim {l_ssim.item():.3f} grad {l_grad.item():.3f} cons {l_cons.item():.4f} lr {lr_at(frac):.2e} "
                  f"{time.time() - t0:.0f}s", flush=True)
        if val_left and (time.time() - t0) / budget >= val_left[0]:
            val_left.pop(0)
            check()
    if not hist or hist[-1]["iter"] != it:
        check(" (end of budget)")
    train_seconds = round(time.time() - t0)
    model.load_state_dict(best_state)
    model.eval()
    torch.save(model.state_dict(), out / "brats-nslf.pt")
    onnx_path = out / "brats-nslf.onnx"
    sha = export_onnx(model, onnx_path)
    sel = max(hist, key=lambda h: h["score"])
    info = {"model": "brats-nslf", "params": n_par, "iterations": it, "selectedIteration": sel["iter"],
            "slicesSeen128Equivalent": round(slices_seen), "valHistory": hist, "bestValScore": round(best, 4),
            "valCriterion": "mean over the 15 subsets of (mean per-case Dice WT/TC/ET of the seg head on the fused "
                            "image, model grid) + (mean SSIM of the fused image to the acquired sources, in the brain), "
                            f"every {a.val_stride}th brain slice of the 2 VAL cases",
            "loss": {"ssim": A_SSIM, "grad": A_GRAD, "cons": A_CONS, "seg": 1.0},
            "trainSeconds": train_seconds, "onnx": onnx_path.name, "sha256": sha, "bytes": onnx_path.stat().st_size,
            "trainCases": sp["train"], "valCases": sp["val"], "args": vars(a)}
    (out / "brats-nslf.train.json").write_text(json.dumps(info, indent=1))
    if a.export_to:
        Path(a.export_to, "brats-nslf.onnx").write_bytes(onnx_path.read_bytes())
    print(json.dumps({k: info[k] for k in ("iterations", "selectedIteration", "bestValScore", "trainSeconds", "sha256")}))


if __name__ == "__main__":
    main()
