#!/usr/bin/python3
"""Train one brain-tumour model on the BraTS TRAIN cases, select on VAL, export ONNX opset 17 to models/.

    /usr/bin/python3 models/training/train_brats.py --model brats-shaspec --minutes 35 --out models/training/out/brats
    /usr/bin/python3 models/training/train_brats.py --model brats-unet4 --minutes 12 --out models/training/out/brats

Training slices come from brats_data.Sampler (augmented for other scanners: thick slices, gamma, bias field, noise,
brain-mask erosion/dilation, rotation/scale/flip/shift). brats-shaspec gets a modality subset drawn uniformly over the
15 non-empty subsets per slice (missing channels zeroed); brats-unet4 always gets all four (no modality dropout).
Loss: cross-entropy + soft Dice over the 3 tumour classes; ShaSpec adds domain classification (alpha 0.1) and
distribution alignment (beta 0.02) as the stroke ShaSpec in train_all.py. Mostly 64x64 crops (half centred on
tumour), every --full-every-th iteration whole 128x128 slices. VAL: mean of the WT/TC/ET Dice per case on the model
grid (every --val-stride-th brain slice), averaged over the 15 subsets (ShaSpec) or all four (U-Net); the best VAL
checkpoint is exported.

Fine-tuning (issue 14: the first brats-shaspec run had not learned the enhancing class):
    /usr/bin/python3 models/training/train_brats.py --model brats-shaspec --minutes 28 --out models/training/out/brats-ft \
        --export-to '' --init models/training/out/brats/brats-shaspec.pt --val-init --lr 1e-3 --ce-weights 1,2,1,4 \
        --dice-present --subset-all 0.25 --subset-t1c 0.25 --et-frac 0.35 --et-centre 0.5 --restarts 2 \
        --val-at 0.25,0.5,0.7,0.85,1.0
starts from the selected weights, validates them first (they stay the candidate to beat), and trains with
class-weighted CE + soft Dice over the classes present in the batch, T1c-biased subsets (brats_data.biased_subsets),
enhancing slices oversampled and crops centred on enhancing pixels, and cosine cycles with warm restarts.
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
import brats_nets as bn  # noqa: E402

ALPHA_DOMAIN = 0.1
BETA_ALIGN = 0.02


def regions(lab):
    """(WT, TC, ET) boolean maps from class labels (numpy or torch)."""
    return (lab > 0), ((lab == 1) | (lab == 3)), (lab == 3)


def dice_np(p: np.ndarray, t: np.ndarray) -> float:
    s = p.sum() + t.sum()
    return 1.0 if s == 0 else 2.0 * float((p & t).sum()) / float(s)


def seg_loss(logits: torch.Tensor, y: torch.Tensor, ce_weight=None, dice_present: bool = False) -> torch.Tensor:
    """CE (optionally class-weighted) + soft Dice of the 3 tumour classes at batch level. dice_present: the Dice is
    averaged over the classes present in the batch's labels only (an absent class no longer counts, so the small
    enhancing class weighs as much as the whole tumour whenever it is there)."""
    ce = F.cross_entropy(logits, y, weight=ce_weight)
    p = torch.softmax(logits, 1)[:, 1:]
    oh = F.one_hot(y, bn.N_CLASSES).permute(0, 3, 1, 2).float()[:, 1:]
    inter = (p * oh).sum((0, 2, 3))
    den = p.sum((0, 2, 3)) + oh.sum((0, 2, 3))
    d = (2 * inter + 1) / (den + 1)
    if dice_present:
        pres = oh.sum((0, 2, 3)) > 0
        dice = 1 - (d[pres].mean() if bool(pres.any()) else d.mean())
    else:
        dice = 1 - d.mean()
    return ce + dice


def crop(x: torch.Tensor, y: torch.Tensor, size: int, rng: np.random.Generator, et_centre: float = 0.0):
    """et_centre > 0 (fine-tuning): a crop centred on tumour is centred on an enhancing pixel with that probability
    when the slice has one (the rng draw is skipped at 0, so the stream is as before)."""
    n, H = x.shape[0], x.shape[-1]
    xc = torch.empty(n, x.shape[1], size, size)
    yc = torch.empty(n, size, size, dtype=torch.long)
    for k in range(n):
        if et_centre > 0 and bool((y[k] == 3).any()) and rng.random() < 0.5 and rng.random() < et_centre:
            pts = torch.nonzero(y[k] == 3)
        else:
                pts = torch.nonzero(y[k] > 0) if (rng.random() < 0.5 and bool((y[k] > 0).any())) else torch.nonzero(x[k].abs().sum(0) > 0)
        cy, cx = (pts[rng.integers(len(pts))].tolist() if len(pts) else (H // 2, H // 2))
        cy = int(np.clip(cy + rng.integers(-size // 4, size // 4 + 1) - size // 2, 0, H - size))
        cx = int(np.clip(cx + rng.integers(-size // 4, size // 4 + 1) - size // 2, 0, H - size))
        xc[k] = x[k, :, cy:cy + size, cx:cx + size]
        yc[k] = y[k, cy:cy + size, cx:cx + size]
    return xc, yc


class ValSet:
    """Every stride-th brain slice of the VAL cases (no augmentation), normalised as the contract says."""

    def __init__(self, cases, stride: int):
        self.items = []
        for c in cases:
            d = bd.normalised_case(c)
            area = d["mask"].reshape(d["mask"].shape[0], -1).sum(1)
            zs = np.nonzero(area > 0.02 * bd.GRID * bd.GRID)[0][::stride]
            self.items.append((torch.from_numpy(d["x"][:, zs].transpose(1, 0, 2, 3).copy()), d["lab"][zs]))


@torch.no_grad()
def validate(model: nn.Module, val: ValSet, subsets, bs: int = 32) -> float:
    model.eval()
    scores = []
    per = {i: [] for i in range(len(subsets))}
    for x, lab in val.items:
        if hasattr(model, "forward_subsets"):  # encoders once, fusion + decoder per subset (same numbers)
            chunks = [model.forward_subsets(x[s:s + bs], subsets) for s in range(0, x.shape[0], bs)]
            preds = [torch.cat([c[i] for c in chunks]).argmax(1).numpy() for i in range(len(subsets))]
        else:
            preds = []
            for m in subsets:
                mk = torch.tensor([m] * x.shape[0], dtype=torch.float32)
                xm = x * mk[:, :, None, None]
                preds.append(torch.cat([model(xm[s:s + bs], mk[s:s + bs]) for s in range(0, x.shape[0], bs)]).argmax(1).numpy())
        for i, pr in enumerate(preds):
            per[i].append(np.mean([dice_np(p, t) for p, t in zip(regions(pr), regions(lab))]))
    scores = [float(np.mean(per[i])) for i in range(len(subsets))]
    model.train()
    return float(np.mean(scores))


class Export(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, input: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:  # noqa: A002
        return self.m(input, modality_mask)


def export_onnx(model: nn.Module, path: Path) -> str:
    model.eval()
    torch.onnx.export(Export(model), (torch.zeros(2, 4, 128, 128), torch.ones(2, 4)), str(path), opset_version=17,
                      input_names=["input", "modality_mask"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "modality_mask": {0: "N"}, "logits": {0: "N"}})
    import onnx
    onnx.checker.check_model(onnx.load(str(path)))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["brats-shaspec", "brats-unet4"])
    ap.add_argument("--out", default=str(HERE / "out" / "brats"))
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--full-every", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--val-at", default="0.7,0.85,1.0")
    ap.add_argument("--val-stride", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--export-to", default=str(HERE.parent))
    ft = ap.add_argument_group("fine-tuning (issue 14: brats-shaspec had not learned the enhancing class)")
    ft.add_argument("--init", default="", help="start from this state dict (.pt) instead of random weights")
    ft.add_argument("--ce-weights", default="", help="class weights of the CE, background,NCR,ED,ET e.g. 1,2,1,4")
    ft.add_argument("--dice-present", action="store_true", help="soft Dice over the classes present in the batch")
    ft.add_argument("--subset-all", type=float, default=-1.0,
                    help=">= 0: modality masks from brats_data.biased_subsets with this P(all four)")
    ft.add_argument("--subset-t1c", type=float, default=0.25, help="biased_subsets: P(one of the 7 other T1c subsets)")
    ft.add_argument("--et-frac", type=float, default=0.0, help="fraction of slices drawn from enhancing-tumour slices")
    ft.add_argument("--et-centre", type=float, default=0.0, help="P(a tumour-centred crop is centred on enhancing)")
    ft.add_argument("--restarts", type=int, default=1, help="cosine cycles (warm restarts) over the wall budget")
    ft.add_argument("--val-init", action="store_true", help="validate the --init weights first (a candidate too)")
    ap.add_argument("--export-only", action="store_true",
                    help="re-export <out>/<model>.pt to ONNX (same weights) and update its .train.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.export_only:
        model = bn.build(a.model)
        model.load_state_dict(torch.load(Path(a.out) / f"{a.model}.pt"))
        onnx_path = Path(a.out) / f"{a.model}.onnx"
        sha = export_onnx(model, onnx_path)
        tj = Path(a.out) / f"{a.model}.train.json"
        info = json.loads(tj.read_text())
        info.update({"sha256": sha, "bytes": onnx_path.stat().st_size, "reExported": True})
        tj.write_text(json.dumps(info, indent=1))
        if a.export_to:
            Path(a.export_to, f"{a.model}.onnx").write_bytes(onnx_path.read_bytes())
        print("re-exported", a.model, sha)
        return
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sp = bd.splits()
    t_data = time.time()
    sampler = bd.Sampler(sp["train"], a.seed)
    val = ValSet(sp["val"], a.val_stride)
    print(f"data {time.time() - t_data:.0f}s; val slices {sum(x.shape[0] for x, _ in val.items)}", flush=True)
    rng = np.random.default_rng(a.seed + 1)
    shaspec = a.model == "brats-shaspec"
    model = bn.build(a.model)
    if a.init:
        model.load_state_dict(torch.load(a.init))
        print("init from", a.init, flush=True)
    ce_w = torch.tensor([float(v) for v in a.ce_weights.split(",")]) if a.ce_weights else None
    n_par = bn.n_params(model)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    subsets = bd.SUBSETS if shaspec else [(1.0, 1.0, 1.0, 1.0)]
    val_left = sorted(float(f) for f in a.val_at.split(","))
    budget = a.minutes * 60
    max_lr, warm = a.lr, 0.05

    def lr_at(f: float) -> float:  # one-cycle cosine by elapsed fraction of the wall budget (per cycle with restarts)
        if a.restarts > 1:
            f = min(f * a.restarts, a.restarts - 1e-9) % 1.0
        if f < warm:
            return max_lr / 25 + (max_lr - max_lr / 25) * (1 - math.cos(math.pi * f / warm)) / 2
        g = min(1.0, (f - warm) / (1 - warm))
        return max_lr / 1e3 + (max_lr - max_lr / 1e3) * (1 + math.cos(math.pi * g)) / 2

    best, best_state, hist, it, slices_seen = -1.0, None, [], 0, 0
    t0 = time.time()
    model.train()
    if a.init and a.val_init:
        v = validate(model, val, subsets)
        hist.append({"iter": 0, "valDice": round(v, 4), "seconds": round(time.time() - t0), "init": True})
        print(f"[{a.model}] VAL init: {v:.4f} ({time.time() - t0:.0f}s)", flush=True)
        best, best_state = v, {k: t.detach().clone() for k, t in model.state_dict().items()}

    def check(label=""):
        nonlocal best, best_state
        v = validate(model, val, subsets)
        hist.append({"iter": it, "valDice": round(v, 4), "seconds": round(time.time() - t0)})
        print(f"[{a.model}] VAL it {it}{label}: {v:.4f} ({time.time() - t0:.0f}s)", flush=True)
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
        x, y = sampler.batch(bs, et_frac=a.et_frac)
        if not full:
            x, y = crop(x, y, a.crop, rng, a.et_centre)
        slices_seen += bs if full else bs * (a.crop / 128) ** 2
        if shaspec:
            m = torch.from_numpy(bd.random_subsets(rng, bs) if a.subset_all < 0 else
                                 bd.biased_subsets(rng, bs, a.subset_all, a.subset_t1c))
            x = x * m[:, :, None, None]
            logits, dom, deep = model.forward_train(x, m)
            loss = seg_loss(logits, y, ce_w, a.dice_present)
            pres = m.t().reshape(-1) > 0  # sequence-major, as dom
            lab = torch.arange(bn.N_SEQ).repeat_interleave(bs)
            l_dom = F.cross_entropy(dom[pres], lab[pres])
            mt = m.t()[:, :, None, None, None]  # [4, N, 1, 1, 1]
            cnt = mt.sum(0)
            mean = (deep * mt).sum(0) / cnt.clamp(min=1)
            multi = (cnt[:, 0, 0, 0] >= 2)
            if bool(multi.any()):
                diff = ((deep - mean[None]).abs() * mt)[:, multi]
                l_align = diff.sum() / (mt[:, multi].sum() * deep[0, 0].numel())
            else:
                l_align = torch.zeros(())
            loss = loss + ALPHA_DOMAIN * l_dom + BETA_ALIGN * l_align
        else:
            logits = model(x, torch.ones(bs, 4))
            loss = seg_loss(logits, y, ce_w, a.dice_present)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 25 == 0:
            print(f"[{a.model}] it {it} {'full' if full else 'crop'} loss {loss.item():.4f} lr {lr_at(frac):.2e} "
                  f"{time.time() - t0:.0f}s", flush=True)
        if val_left and (time.time() - t0) / budget >= val_left[0]:
            val_left.pop(0)
            check()
    if not hist or hist[-1]["iter"] != it:
        check(" (end of budget)")
    train_seconds = round(time.time() - t0)
    model.load_state_dict(best_state)
    model.eval()
    torch.save(model.state_dict(), out / f"{a.model}.pt")
    onnx_path = out / f"{a.model}.onnx"
    sha = export_onnx(model, onnx_path)
    sel = max(hist, key=lambda h: h["valDice"])
    info = {"model": a.model, "params": n_par, "iterations": it, "selectedIteration": sel["iter"],
            "slicesSeen128Equivalent": round(slices_seen), "valHistory": hist, "bestValDice": round(best, 4),
            "valCriterion": ("mean over the 15 subsets of the mean per-case Dice (WT, TC, ET averaged) on the model grid, "
                             f"every {a.val_stride}th brain slice of the 2 VAL cases" if shaspec else
                             "mean per-case Dice (WT, TC, ET averaged) on the model grid with all four sequences, "
                             f"every {a.val_stride}th brain slice of the 2 VAL cases"),
            "trainSeconds": train_seconds, "init": a.init or None, "keptInit": bool(a.init) and sel["iter"] == 0,
            "onnx": onnx_path.name, "sha256": sha, "bytes": onnx_path.stat().st_size,
            "trainCases": sp["train"], "valCases": sp["val"], "args": vars(a)}
    (out / f"{a.model}.train.json").write_text(json.dumps(info, indent=1))
    if a.export_to:
        Path(a.export_to, f"{a.model}.onnx").write_bytes(onnx_path.read_bytes())
    print(json.dumps({k: info[k] for k in ("iterations", "selectedIteration", "bestValDice", "trainSeconds", "sha256")}))


if __name__ == "__main__":
    main()
