#!/usr/bin/python3
"""Build phantom slices and train A-QCF-Net or a single-modality baseline (issue 16). Commands: liver/README.md.

    train_liver.py build --modality ct|mr --split train --n 200 [--seed0 0] [--slices 8] [--size 256 --spacing 1.5]
    train_liver.py train --model aqcf|unet-ct|unet-mr --ct CT.npz... --mr MR.npz... --out DIR
                         [--iters N [--cosine] | --minutes M] [--batch 8] [--base 16] [--device cpu|cuda]
                         [--save-every N]

Data: model-grid slices (x float16, y uint8 0/1/2) of whole phantom series, `slices` evenly spread slices per
series. A-QCF-Net batches are half CT, half MRI slices drawn independently (unpaired); the baselines see only their
modality. Loss: cross-entropy + soft Dice of liver (labels >= 1) and tumour (label 2). Seeded (numpy, torch).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import aqcf_net  # noqa: E402

CACHE = HERE.parent / "cache" / "liver"


def build(a) -> Path:
    import ct_phantoms as ctp
    import mr_phantoms as mrp
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{a.modality}_{a.split}_{a.n}_{a.seed0}_{a.size}_{a.spacing:g}_{a.slices}.npz"
    xs, ys, case = [], [], []
    t = time.time()
    for s in range(a.seed0, a.seed0 + a.n):
        if a.modality == "ct":
            d = ctp.ct_model_inputs(ctp.generate_ct(a.split, s, slice_subset=a.slices), a.size, a.spacing)
        else:
            d = mrp.mr_model_inputs(mrp.generate_mr(a.split, s, slice_subset=a.slices), a.size, a.spacing)
        xs.append(d["x"].astype(np.float16))
        ys.append(d["y"])
        case += [s] * len(d["y"])
    np.savez_compressed(out, x=np.concatenate(xs), y=np.concatenate(ys), case=np.array(case, np.int32))
    y = np.concatenate(ys)
    print(f"{out.name}: {len(y)} slices of {a.n} series, liver {np.mean(y >= 1) * 100:.1f} % / tumour "
          f"{np.mean(y == 2) * 100:.2f} % of pixels, {time.time() - t:.0f} s")
    return out


def load(paths):
    if not paths:
        return None
    z = [np.load(p) for p in paths]
    return np.concatenate([q["x"] for q in z]), np.concatenate([q["y"] for q in z])


def loss_fn(logits, y):
    ce = F.cross_entropy(logits, y)
    p = torch.softmax(logits, 1)
    dl = 0.0
    for region in ((1, 2), (2,)):
        pr = p[:, list(region)].sum(1)
        tr = sum((y == r).float() for r in region)
        dl = dl + 1 - (2 * (pr * tr).sum() + 1) / (pr.sum() + tr.sum() + 1)
    return ce + dl / 2


def train(a):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dev = torch.device(a.device)
    ct, mr = load(a.ct), load(a.mr)
    if a.model == "unet-ct":
        mr = None
    if a.model == "unet-mr":
        ct = None
    model = aqcf_net.build(a.model, a.base, a.depth).to(dev)
    if a.init:  # continue from a checkpoint (fresh optimiser and schedule)
        model.load_state_dict(torch.load(a.init, map_location="cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    hist = []
    t0 = time.time()
    it = 0
    while (a.iters and it < a.iters) or (a.minutes and time.time() - t0 < a.minutes * 60):
        xb, yb, mb = [], [], []
        nct = a.batch if mr is None else (0 if ct is None else int(round(a.batch * a.ct_frac)))
        for data, mval, n in ((ct, 1.0, nct), (mr, 0.0, a.batch - nct)):
            if data is None:
                continue
            idx = rng.integers(0, len(data[1]), n)
            xb.append(data[0][idx].astype(np.float32))
            yb.append(data[1][idx])
            mb += [mval] * n
        x = torch.from_numpy(np.concatenate(xb))[:, None].to(dev)
        y = torch.from_numpy(np.concatenate(yb)).long().to(dev)
        m = torch.tensor(mb, device=dev)
        # intensity augmentation: CT window shift +-5 %, MRI scale x U(0.8, 1.2) (per slice)
        g = torch.from_numpy(rng.uniform(0.8, 1.2, len(mb)).astype(np.float32)).to(dev)[:, None, None, None]
        sh = torch.from_numpy(rng.uniform(-0.05, 0.05, len(mb)).astype(np.float32)).to(dev)[:, None, None, None]
        mm = m[:, None, None, None]
        x = mm * (x + sh) + (1 - mm) * x * g
        if a.cosine and a.iters:  # cosine decay to 5 % of lr over --iters (the same schedule for every model)
            for gr in opt.param_groups:
                gr["lr"] = a.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * it / a.iters)))
        loss = loss_fn(model(x, m), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        hist.append(float(loss))
        if it % a.log_every == 0:
            print(f"iter {it} loss {np.mean(hist[-a.log_every:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
        if a.save_every and it % a.save_every == 0:  # latest checkpoint, for a run stopped early
            torch.save(model.state_dict(), out / f"{a.model}-latest.pt")
            (out / f"{a.model}-latest.json").write_text(json.dumps({"iterations": it, "seconds": time.time() - t0}))
    torch.save(model.state_dict(), out / f"{a.model}.pt")
    rec = {"model": a.model, "parameters": aqcf_net.n_params(model), "iterations": it,
           "seconds": time.time() - t0, "loss": hist, "args": vars(a)}
    (out / f"{a.model}-train.json").write_text(json.dumps(rec))
    k = max(1, min(25, it // 5))
    print(f"{a.model}: {rec['parameters']} parameters, {it} iterations, loss first {k} {np.mean(hist[:k]):.4f}"
          f" -> last {k} {np.mean(hist[-k:]):.4f}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--modality", choices=["ct", "mr"], required=True)
    b.add_argument("--split", default="train")
    b.add_argument("--n", type=int, default=20)
    b.add_argument("--seed0", type=int, default=0)
    b.add_argument("--slices", type=int, default=8)
    b.add_argument("--size", type=int, default=256)
    b.add_argument("--spacing", type=float, default=1.5)
    t = sub.add_parser("train")
    t.add_argument("--model", choices=["aqcf", "unet-ct", "unet-mr"], required=True)
    t.add_argument("--ct", nargs="*", default=[])
    t.add_argument("--mr", nargs="*", default=[])
    t.add_argument("--out", required=True)
    t.add_argument("--iters", type=int, default=0)
    t.add_argument("--minutes", type=float, default=0)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--base", type=int, default=16)
    t.add_argument("--depth", type=int, default=4)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--log-every", type=int, default=25)
    t.add_argument("--cosine", action="store_true", help="cosine lr decay over --iters")
    t.add_argument("--init", default="", help="start from these weights")
    t.add_argument("--ct-frac", type=float, default=0.5, help="A-QCF-Net: fraction of each batch from CT")
    t.add_argument("--save-every", type=int, default=0, help="write <model>-latest.pt every N iterations")
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "build":
        build(a)
    else:
        torch.set_num_threads(a.threads)
        train(a)


if __name__ == "__main__":
    main()
