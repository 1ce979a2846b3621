#!/usr/bin/python3
"""Train one CT -> DWI generator adversarially on paired phantom slices, select on VAL, export ONNX.

  nice -n 10 /usr/bin/python3 train_ct2dwi.py --model ct2dwi --minutes 22 --out out/ct2dwi-run1 --export-to ..

Data: the model-grid npz files of phantoms.build_ct_split (train chunks, one val file). Per iteration one batch
of 64x64 crops (half centred on lesion pixels when the batch has any, the rest on brain) or, every
--full-every-th iteration, whole 128x128 slices (BatchNorm statistics and the 8x8 attention grid of inference).
Loss (both generators): G = lambda_l1 * mean(|G(x) - y| * (1 + 4 * brain mask + lesion_weight * lesion)) + LSGAN(D(x, G(x)), 1);
D = LSGAN(D(x, y), 1) + LSGAN(D(x, G(x)), 0), PatchGAN on concat(input, dwi / 3). Adam(2e-4 G, 2e-4 D,
betas 0.5, 0.999). Left-right mirror. VAL: PSNR over the brain (images / 3 clipped to [0, 1]) on every 3rd whole VAL slice,
every --val-every iterations and at the end; the best checkpoint is exported.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ct2dwi_nets import PatchDiscriminator, build

HERE = Path(__file__).resolve().parent
PEAK = 3.0  # images are compared as clip(y / 3, 0, 1): 1.0 = normal white matter, lesions reach ~2-2.5


def load(files):
    parts = {k: [] for k in ("ct", "bmask", "dwi", "lesion", "brain", "study")}
    off = 0
    for f in files:
        d = np.load(f)
        for k in parts:
            a = d[k]
            if k == "study":
                a = a.astype(np.int64) + off
            parts[k].append(a)
        off += 100000
    out = {k: np.concatenate(v) for k, v in parts.items()}
    st = out["study"]
    n = len(st)
    idx = np.arange(n)
    prev = np.where((idx > 0) & (np.roll(st, 1) == st), idx - 1, idx)
    nxt = np.where((idx < n - 1) & (np.roll(st, -1) == st), idx + 1, idx)
    out["prev"], out["next"] = prev, nxt
    return out


def inputs(d, ids):
    """[B, 4, H, W] float32: CT(z-1), CT(z), CT(z+1), brain mask(z)."""
    return np.stack([d["ct"][d["prev"][ids]], d["ct"][ids], d["ct"][d["next"][ids]], d["bmask"][ids]], 1).astype(np.float32)


def ssim_map(a, b):
    """SSIM (7x7 uniform window, data range 1, K1 0.01, K2 0.03) per pixel of 2D images [H, W]."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    u = lambda x: ndimage.uniform_filter(x, 7, mode="reflect")
    ma, mb = u(a), u(b)
    va = u(a * a) - ma * ma
    vb = u(b * b) - mb * mb
    cov = u(a * b) - ma * mb
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))


def image_metrics(pred, true, brain):
    """MSE, PSNR over the brain and mean SSIM over brain pixels, on clip(y / 3, 0, 1); stacks of slices."""
    p = np.clip(pred / PEAK, 0, 1).astype(np.float64)
    t = np.clip(true / PEAK, 0, 1).astype(np.float64)
    m = brain > 0
    mse = float(((p - t) ** 2)[m].mean())
    s = np.concatenate([ssim_map(p[i], t[i])[m[i]] for i in range(len(p)) if m[i].any()])
    return {"mse": mse, "psnr": float(10 * np.log10(1.0 / max(mse, 1e-12))), "ssim": float(s.mean())}


@torch.no_grad()
def predict(g, d, ids, bs=16):
    g.eval()
    out = []
    for i in range(0, len(ids), bs):
        out.append(g(torch.from_numpy(inputs(d, ids[i:i + bs]))).numpy()[:, 0])
    g.train()
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=["ct2dwi", "ct2dwi-pix2pix"])
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--export-to", default=None)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--max-iters", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--full-every", type=int, default=4)
    ap.add_argument("--full-batch", type=int, default=4)
    ap.add_argument("--lambda-l1", type=float, default=100.0)
    ap.add_argument("--gan", type=float, default=1.0)
    ap.add_argument("--val-every", type=int, default=150)
    ap.add_argument("--val-stride", type=int, default=3, help="every n-th VAL brain slice (CPU budget)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lesion-weight", type=float, default=0.0, help="extra L1 weight on lesion pixels (experiment)")
    ap.add_argument("--init", default=None, help="start from this generator state_dict (fine-tuning)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tr, va = load(a.train), load([a.val])
    brain_slices = np.nonzero(tr["brain"].reshape(len(tr["brain"]), -1).sum(1) > 200)[0]
    les_slices = np.nonzero(tr["lesion"].reshape(len(tr["lesion"]), -1).any(1))[0]
    val_ids = np.nonzero(va["brain"].reshape(len(va["brain"]), -1).sum(1) > 200)[0][::a.val_stride]
    print(f"train slices {len(tr['ct'])} (brain {len(brain_slices)}, lesion {len(les_slices)}), val slices {len(val_ids)}", flush=True)
    g = build(a.model)
    if a.init:
        g.load_state_dict(torch.load(a.init))
    dnet = PatchDiscriminator()
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(dnet.parameters(), 2e-4, betas=(0.5, 0.999))
    H = tr["ct"].shape[-1]
    hist, best, best_state = [], -1.0, None
    t0 = time.time()
    seen = 0
    it = 0

    def validate():
        pr = predict(g, va, val_ids)
        m = image_metrics(pr, va["dwi"][val_ids].astype(np.float32), va["brain"][val_ids])
        les = va["lesion"][val_ids] > 0
        nb = (va["brain"][val_ids] > 0) & ~les
        if les.any():  # lesion / normal-brain mean ratio, synthetic vs true (1.0 = lesion not synthesised)
            tv = va["dwi"][val_ids].astype(np.float32)
            m["lesion_ratio_pred"] = float(pr[les].mean() / max(pr[nb].mean(), 1e-6))
            m["lesion_ratio_true"] = float(tv[les].mean() / max(tv[nb].mean(), 1e-6))
        m.update(iter=it, images=seen, minutes=round((time.time() - t0) / 60, 2))
        hist.append(m)
        print(json.dumps(m), flush=True)
        return m

    while it < a.max_iters and time.time() - t0 < a.minutes * 60:
        it += 1
        full = a.full_every > 0 and it % a.full_every == 0
        if full:
            ids = rng.choice(brain_slices, a.full_batch)
            x = inputs(tr, ids)
            y = tr["dwi"][ids].astype(np.float32)[:, None]
            w = (1 + 4 * tr["bmask"][ids].astype(np.float32) + a.lesion_weight * tr["lesion"][ids].astype(np.float32))[:, None]
        else:
            ids = rng.choice(brain_slices, a.batch)
            cs = a.crop
            xs, ys, ws = [], [], []
            for k, i in enumerate(ids):
                if k < a.batch // 2 and len(les_slices):
                    i = les_slices[rng.integers(len(les_slices))]
                    ids[k] = i
                    pts = np.argwhere(tr["lesion"][i])
                else:
                    pts = np.argwhere(tr["brain"][i])
                cy, cx = pts[rng.integers(len(pts))] if len(pts) else (H // 2, H // 2)
                y0 = int(np.clip(cy - cs // 2 + rng.integers(-cs // 4, cs // 4 + 1), 0, H - cs))
                x0 = int(np.clip(cx - cs // 2 + rng.integers(-cs // 4, cs // 4 + 1), 0, H - cs))
                xi = inputs(tr, np.array([i]))[0, :, y0:y0 + cs, x0:x0 + cs]
                xs.append(xi)
                ys.append(tr["dwi"][i, y0:y0 + cs, x0:x0 + cs].astype(np.float32)[None])
                ws.append((1 + 4 * tr["bmask"][i, y0:y0 + cs, x0:x0 + cs].astype(np.float32)
                           + a.lesion_weight * tr["lesion"][i, y0:y0 + cs, x0:x0 + cs].astype(np.float32))[None])
            x, y, w = np.stack(xs), np.stack(ys), np.stack(ws)
        if rng.random() < 0.5:
            x, y, w = x[..., ::-1], y[..., ::-1], w[..., ::-1]
        x, y, w = (torch.from_numpy(np.ascontiguousarray(v)) for v in (x, y, w))
        seen += len(x)
        fake = g(x)
        # D step
        od.zero_grad()
        ld = 0.5 * (((dnet(x, y) - 1) ** 2).mean() + (dnet(x, fake.detach()) ** 2).mean())
        ld.backward()
        od.step()
        # G step
        og.zero_grad()
        l1 = (torch.abs(fake - y) * w).mean()
        lg = ((dnet(x, fake) - 1) ** 2).mean()
        loss = a.lambda_l1 * l1 + a.gan * lg
        loss.backward()
        og.step()
        if it % 25 == 0:
            print(f"it {it} {time.time() - t0:.0f}s l1 {l1.item():.4f} g {lg.item():.3f} d {ld.item():.3f}", flush=True)
        if it % a.val_every == 0:
            m = validate()
            if m["psnr"] > best:
                best, best_state = m["psnr"], {k: v.clone() for k, v in g.state_dict().items()}
                torch.save(best_state, out / "best.pt")
    m = validate()
    if m["psnr"] > best:
        best, best_state = m["psnr"], {k: v.clone() for k, v in g.state_dict().items()}
        torch.save(best_state, out / "best.pt")
    g.load_state_dict(best_state)
    g.eval()
    sel = max(hist, key=lambda h: h["psnr"])
    rec = {"model": a.model, "args": vars(a), "iterations": it, "images_seen": seen, "wall_minutes": round((time.time() - t0) / 60, 2),
           "train_slices": int(len(tr["ct"])), "train_studies": int(len(np.unique(tr["study"]))),
           "val_slices": int(len(val_ids)), "val_studies": int(len(np.unique(va["study"]))),
           "selected": sel, "val_history": hist, "params": int(sum(p.numel() for p in g.parameters())),
           "torch": torch.__version__}
    (out / "record.json").write_text(json.dumps(rec, indent=1) + "\n")
    dst = Path(a.export_to) if a.export_to else out
    onnx_path = dst / f"{a.model}.onnx"
    torch.onnx.export(g, torch.zeros(1, 4, H, H), str(onnx_path), opset_version=17, input_names=["input"], output_names=["dwi"],
                      dynamic_axes={"input": {0: "N"}, "dwi": {0: "N"}}, do_constant_folding=True)
    print("exported", onnx_path, "selected", json.dumps(sel), flush=True)


if __name__ == "__main__":
    main()
