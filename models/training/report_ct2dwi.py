#!/usr/bin/python3
"""Markdown table of the CT -> DWI TEST evaluation (eval_ct2dwi.ts output) for models/README.md."""
import json
import sys

ev = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "out/ct2dwi-eval/test.json"))
s = ev["summary"]
rec = {n: json.load(open(f"out/{n}-run1/record.json")) for n in ("ct2dwi", "ct2dwi-pix2pix")}
print(f"{s['studies']} TEST studies, {s['withLesion']} with lesion voxels on the CT slab; brain-mask Dice mean "
      f"{s['brainMaskDice']['mean']:.3f} (min {s['brainMaskDice']['min']:.3f})\n")
print("| generator | params | MSE (mean) | PSNR dB (mean / median / min) | SSIM (mean / median / min) | lesion Dice on synthetic DWI (mean / median) | no-lesion studies with FP / mean FP mL | CPU synthesis ms (median) |")
print("|---|---|---|---|---|---|---|---|")
for n in ("ct2dwi", "ct2dwi-pix2pix"):
    x = s[n]
    print(f"| `{n}` | {rec[n]['params'] / 1e6:.2f} M | {x['mse']['mean']:.4f} | {x['psnr']['mean']:.2f} / {x['psnr']['median']:.2f} / {x['psnr']['min']:.2f} | "
          f"{x['ssim']['mean']:.3f} / {x['ssim']['median']:.3f} / {x['ssim']['min']:.3f} | {x['diceSynthetic']['mean']:.3f} / {x['diceSynthetic']['median']:.3f} | "
          f"{x['fpMlSynthetic']['noLesionWithFp']}/{s['studies'] - s['withLesion']} / {x['fpMlSynthetic']['mean']:.2f} | {x['synthesisMsMedian']:.0f} |")
c = s["constant"]
print(f"| constant in the CT brain mask (reference) | – | {c['mse']['mean']:.4f} | {c['psnr']['mean']:.2f} | {c['ssim']['mean']:.3f} | – | – | – |")
t = s["trueDwi"]
print(f"| true DWI (reference for the lesion model) | – | – | – | – | {t['diceMean']:.3f} / {t['diceMedian']:.3f} | {t['noLesionWithFp']}/{s['studies'] - s['withLesion']} / {t['fpMlMean']:.2f} | – |")
for n in ("ct2dwi", "ct2dwi-pix2pix"):
    r = rec[n]
    print(f"\n`{n}`: {r['iterations']} iterations, {r['images_seen']} images (crops and whole slices), {r['wall_minutes']} min wall; "
          f"selected: iteration {r['selected']['iter']} (VAL PSNR {r['selected']['psnr']:.2f}, SSIM {r['selected']['ssim']:.3f}, absolute scale, model grid)")
