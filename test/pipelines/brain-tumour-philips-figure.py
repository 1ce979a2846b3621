#!/usr/bin/python3
"""models/docs/brats-philips-route.png: what brain-tumour-mr marks on the real Philips study (no tumour known).

Input: the raw arrays test/pipelines/brain-tumour-philips.test.ts writes with TUMOUR_PHILIPS_FIGURE=<dir>
(reference FLAIR on the common grid, the node's brain mask, the labels). Four panels of the reference FLAIR
(2 x 2): the four slices with the most marked voxels (or, if none, four evenly spaced slices), FLAIR windowed to
its brain 1st-99th percentile, brain-mask outline blue, labels blended in (red = necrotic / non-enhancing core,
green = oedema, yellow = enhancing). No text, no patient attribute. RGB PNG written with zlib (no imaging library).

    TUMOUR_PHILIPS_FIGURE=/tmp/philips-fig npx jest test/pipelines/brain-tumour-philips.test.ts
    /usr/bin/python3 test/pipelines/brain-tumour-philips-figure.py /tmp/philips-fig models/docs/brats-philips-route.png
"""
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

COLOURS = {1: (230, 40, 40), 2: (40, 200, 60), 3: (250, 230, 40)}


def write_png(path: Path, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].astype(np.uint8).tobytes() for r in range(h))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    meta = json.loads((src / "meta.json").read_text())
    s, r, c = meta["slices"], meta["rows"], meta["columns"]
    flair = np.fromfile(src / "flair.f32", dtype=np.float32).reshape(s, r, c)
    labels = np.fromfile(src / "labels.u8", dtype=np.uint8).reshape(s, r, c)
    brain = np.fromfile(src / "brain.u8", dtype=np.uint8).reshape(s, r, c)
    marked = (labels > 0).reshape(s, -1).sum(1)
    if marked.max() > 0:
        zs = sorted(np.argsort(-marked)[:4].tolist())
    else:
        zs = np.linspace(s * 0.3, s * 0.8, 4).astype(int).tolist()
    lo, hi = np.percentile(flair[brain > 0], [1, 99])
    panels = []
    for z in zs:
        g = np.clip((flair[z] - lo) / max(hi - lo, 1e-6), 0, 1) * 255
        rgb = np.stack([g, g, g], -1)
        for k, col in COLOURS.items():
            m = labels[z] == k
            rgb[m] = 0.45 * rgb[m] + 0.55 * np.array(col)
        b = brain[z] > 0
        edge = b & ~(np.roll(b, 1, 0) & np.roll(b, -1, 0) & np.roll(b, 1, 1) & np.roll(b, -1, 1))
        rgb[edge] = (60, 120, 255)
        panels.append(rgb)
    top = np.concatenate(panels[:2], 1)
    bottom = np.concatenate(panels[2:4], 1)
    write_png(out, np.concatenate([top, bottom], 0))
    print(f"slices {zs} marked voxels {[int(marked[z]) for z in zs]} -> {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
