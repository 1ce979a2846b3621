#!/usr/bin/python3
"""models/docs/real-backgrounds.png: real-background TEST studies on the Siemens volunteer only (the Philips study has
no licence: never rendered into the repository). Columns: DWI (b 2500) | ADC (0-2000) | truth | each model's mask as
the node sends it (after the post-processing; eval_postprocess.ts with PP_SAVE_FINAL=1); one row per study, at the
slice with the most truth (or, without a lesion, the most marked) voxels. Red = truth / mask.

    /usr/bin/python3 figure_realbg.py ../docs/real-backgrounds.png dual-encoder:cache/pp-final [name:dir ...]
"""
from __future__ import annotations

import gzip
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TEST = HERE / "cache/studies/realbg-test"


def write_png(path: Path, img: np.ndarray) -> None:
    img = np.ascontiguousarray(img.astype(np.uint8))
    h, w = img.shape[:2]

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def read(d: Path, f: str, dt: str, sh) -> np.ndarray:
    return np.frombuffer(gzip.open(d / f).read(), dt).reshape(sh).astype(np.float32)


def main():
    out = Path(sys.argv[1])
    models = [a.split(":", 1) for a in sys.argv[2:]]
    studies = []
    for d in sorted(TEST.iterdir(), key=lambda p: int(p.name.split("-")[-1])):
        m = json.loads((d / "meta.json").read_text())
        if m["background"] == "siemens-xa30":
            studies.append((d, m))
    picks, seen = [], set()
    for kind in ("shower", "mixed", "real-map", "territorial", "none", "shower"):
        for d, m in studies:
            if m["studyType"] == kind and d.name not in seen:
                picks.append((d, m))
                seen.add(d.name)
                break
    rows = []
    for d, m in picks:
        sh = (m["slices"], m["rows"], m["columns"])
        dwi, adc, truth = read(d, "dwi.u16.gz", "<u2", sh), read(d, "adc.u16.gz", "<u2", sh), read(d, "mask.u8.gz", "u1", sh)
        masks = [read(HERE / p / name / "realbg-test", f"{d.name}.u8.gz", "u1", sh) for name, p in models]
        score = truth.reshape(sh[0], -1).sum(1) if truth.any() else sum(mm.reshape(sh[0], -1).sum(1) for mm in masks)
        z = int(np.argmax(score)) if np.any(score) else sh[0] // 2
        g = np.clip(dwi[z] / np.percentile(dwi[dwi > 0], 99.5) * 255, 0, 255)
        a = np.clip(adc[z] / 2000 * 255, 0, 255)
        rgb = lambda x: np.stack([x, x, x], -1)  # noqa: E731

        def over(msk):
            c = rgb(g * 0.8)
            c[msk > 0] = [255, 40, 40]
            return c
        row = [rgb(g), rgb(a), over(truth[z])] + [over(mm[z]) for mm in masks]
        sep = np.full((sh[1], 2, 3), 255, np.float32)
        rows.append(np.concatenate([np.concatenate([c, sep], 1) for c in row], 1))
        print(d.name, m["studyType"], "slice", z, "truth mL", m["lesionVolumeMl"])
    hsep = np.full((2, rows[0].shape[1], 3), 255, np.float32)
    img = np.concatenate([np.concatenate([r, hsep], 0) for r in rows], 0)
    img = np.kron(img, np.ones((2, 2, 1)))  # 72 x 72 @ 3 mm: twice the size to be readable
    write_png(out, img)
    print(out, out.stat().st_size, "bytes; columns: DWI | ADC | truth |", " | ".join(n for n, _ in models))


if __name__ == "__main__":
    main()
