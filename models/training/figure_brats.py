#!/usr/bin/python3
"""models/docs/brats-shaspec-test.png: one TEST case slice (the slice of largest whole-tumour area).

Top row: FLAIR, T1, T1c, T2 (each windowed to its brain 1st-99th percentile). Bottom row (on FLAIR): truth,
brats-shaspec with all four, with FLAIR only, with T1+T1c. Colours: red = necrotic / non-enhancing core, green =
oedema, yellow = enhancing tumour. Written as an 8-bit palette PNG with zlib (no imaging library on this machine).

    /usr/bin/python3 models/training/figure_brats.py [--case Brats18_TCIA02_370_1]
"""
from __future__ import annotations

import argparse
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brats_data as bd  # noqa: E402
import brats_nets as bn  # noqa: E402
from eval_brats import predict  # noqa: E402

COLOURS = {1: (230, 40, 40), 2: (40, 200, 60), 3: (250, 230, 40)}


def write_png_palette(path: Path, img: np.ndarray, palette: np.ndarray) -> None:
    h, w = img.shape

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    rows = np.zeros((h, w + 1), np.uint8)
    rows[:, 1] = img[:, 0]
    rows[:, 0] = 1  # "Sub" filter: each byte minus its left neighbour (mod 256)
    rows[:, 2:] = (img[:, 1:].astype(np.int16) - img[:, :-1].astype(np.int16)) % 256
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
    png += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    png += chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="Brats18_TCIA02_370_1")
    ap.add_argument("--run", default=str(HERE / "out" / "brats"))
    ap.add_argument("--model", default="brats-shaspec")
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "brats-shaspec-test.png"))
    a = ap.parse_args()
    assert a.case in bd.splits()["test"]
    torch.set_num_threads(1)
    raw, seg = bd.load_case_raw(a.case)
    truth = bd.labels_to_classes(seg)
    z = int(np.argmax((truth > 0).reshape(truth.shape[0], -1).sum(1)))
    d = bd.load_case(a.case)
    m128 = bd.brain_mask(d["raw"])
    x128 = bd.zscore_brain(d["raw"], m128)
    model = bn.build(a.model)
    model.load_state_dict(torch.load(Path(a.run) / f"{a.model}.pt"))
    model.eval()
    sl = slice(z, z + 1)
    preds = [predict(model, x128[:, sl], m128[sl], m)[0] for m in
             [(1.0, 1.0, 1.0, 1.0), (1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 1.0, 0.0)]]
    brain = (raw[:, z] != 0).any(0)
    rows_, cols_ = np.nonzero(brain)
    r0, r1 = max(0, rows_.min() - 4), min(240, rows_.max() + 5)
    c0, c1 = max(0, cols_.min() - 4), min(240, cols_.max() + 5)
    grays = []
    for c in range(4):
        v = raw[c, z]
        lo, hi = np.percentile(raw[c][(raw[c] != 0)], [1, 99])
        grays.append((np.clip((v - lo) / max(hi - lo, 1e-6), 0, 1) * 239).astype(np.uint8))
    panels = [g[r0:r1, c0:c1] for g in grays]
    for lab in [truth[z]] + preds:
        p = grays[0].copy()
        for k in (1, 2, 3):
            p[lab == k] = 240 + k
        panels.append(p[r0:r1, c0:c1])
    h, w = panels[0].shape
    gap = 4
    img = np.full((2 * h + gap, 4 * w + 3 * gap), 255, np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, 4)
        img[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = p
    pal = np.zeros((256, 3), np.uint8)
    pal[:240] = np.linspace(0, 255, 240)[:, None]
    for k, col in COLOURS.items():
        pal[240 + k] = col
    pal[255] = (255, 255, 255)
    write_png_palette(Path(a.out), img, pal)
    print(a.out, a.case, "slice", z, img.shape, Path(a.out).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
