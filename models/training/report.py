#!/usr/bin/python3
"""Print the markdown results table of models/README.md from the manifests in models/ (their test metrics)."""
import json
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent
NAMES = ["unet2d-baseline", "dual-encoder", "shaspec-missing"]

rows = ["| model | params | ONNX | inputs given | Dice (mean / median) | lesion-wise F1 | abs. volume diff mL (mean / median) | no-lesion studies with any FP | mean false volume mL |",
        "|---|---|---|---|---|---|---|---|---|"]
for n in NAMES:
    m = json.loads((MODELS / f"{n}.json").read_text())
    for sub in ["DWI+ADC", "DWI only", "ADC only"]:
        t = m["metrics"][sub]
        rows.append(f"| `{n}` | {m['training']['params'] / 1e6:.2f} M | {m['bytes'] / 1e6:.1f} MB | {sub} | "
                    f"{t['dice']:.3f} / {t['diceMedian']:.3f} | {t['lesionF1']:.3f} | "
                    f"{t['absVolumeDiffMl']:.2f} / {t['absVolumeDiffMlMedian']:.2f} | "
                    f"{round(t['noLesionFalsePositiveRate'] * t['noLesionStudies'])}/{t['noLesionStudies']} | {t['noLesionMeanFalseVolumeMl']:.2f} |")
print("\n".join(rows))
m = json.loads((MODELS / f"{NAMES[0]}.json").read_text())
print("\n" + m["metrics"]["data"])
