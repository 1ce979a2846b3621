#!/usr/bin/python3
"""Markdown tables of models/README.md "Sequence synthesis (M2DN)" from models/training/m2dn_metrics.json.

    /usr/bin/python3 models/training/report_m2dn.py
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEQ = ["FLAIR", "T1", "T1c", "T2"]


def f(v, k):
    return f"{v[k]:.2f}" if k == "psnr" else f"{v[k]:.3f}"


def main():
    m = json.loads((HERE / "m2dn_metrics.json").read_text())
    meths = [k for k in ("m2dn", "unet", "mean") if k in m["overall"]]
    head = {"m2dn": "M2DN", "unet": "regression U-Net", "mean": "mean of acquired"}
    print("| | " + " | ".join(head[k] for k in meths) + " | published M2DN |")
    print("|---|" + "---|" * (len(meths) + 1))
    print("| PSNR dB (all 28 split x sequence pairs) | " + " | ".join(f(m["overall"][k], "psnr") for k in meths)
          + " | 24.3 (BraTS 2023 re-run), 28.1 (IXI) |")
    print("| SSIM | " + " | ".join(f(m["overall"][k], "ssim") for k in meths) + " | 0.897 (BraTS 2023 re-run) |")
    print()
    print("| synthesised sequence (mean over the 7 splits where it is missing) | "
          + " | ".join(f"{head[k]} PSNR / SSIM" for k in meths) + " |")
    print("|---|" + "---|" * len(meths))
    for s in SEQ:
        print(f"| {s} | " + " | ".join(f"{f(m['bySequence'][k][s], 'psnr')} / {f(m['bySequence'][k][s], 'ssim')}"
                                       for k in meths) + " |")
    print()
    print("| missing (acquired = the rest) | " + " | ".join(f"{head[k]} PSNR / SSIM" for k in meths) + " |")
    print("|---|" + "---|" * len(meths))
    for sn, row in m["bySplit"].items():
        print(f"| {sn.replace('missing ', '')} | " + " | ".join(
            f"{f(row[k]['mean'], 'psnr')} / {f(row[k]['mean'], 'ssim')}" for k in meths) + " |")
    ds = m.get("downstream")
    if not ds:
        return
    print()
    routes = [r for r in ("acquired-only", "with-synthesis", "with-unet-synthesis") if r in ds["overall"]]
    print("| missing | " + " | ".join(f"{r} WT / TC / ET" for r in routes) + " | better |")
    print("|---|" + "---|" * (len(routes) + 1))
    for sn, row in ds["bySplit"].items():
        print(f"| {sn.replace('missing ', '')} | " + " | ".join(
            f"{row[r]['WT']:.3f} / {row[r]['TC']:.3f} / {row[r]['ET']:.3f}" for r in routes) + f" | {row['better']} |")
    print("| **mean Dice over the 14 splits** | " + " | ".join(f"{ds['overall'][r]:.3f}" for r in routes)
          + f" | **{ds['bestRoute']}** |")
    print()
    print("| sequence | segmentation on the M2DN image ALONE, WT / TC / ET | on the TRUE image alone |")
    print("|---|---|---|")
    for s in SEQ:
        a, t = ds["synthesisedAlone"][s], ds["trueAlone"][s]
        print(f"| {s} | {a['WT']:.3f} / {a['TC']:.3f} / {a['ET']:.3f} | {t['WT']:.3f} / {t['TC']:.3f} / {t['ET']:.3f} |")


if __name__ == "__main__":
    main()
