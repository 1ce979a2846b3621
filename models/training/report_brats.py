#!/usr/bin/python3
"""The TEST table of models/README.md "Brain tumour models" from models/training/brats_metrics.json.

    /usr/bin/python3 models/training/report_brats.py
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brats_data as bd  # noqa: E402

PUBLISHED_ALL4 = {"ET": 78.1, "TC": 85.5, "WT": 90.9}
PUBLISHED_MEAN15 = {"ET": 61.6, "TC": 77.5, "WT": 85.9}


def row(label: str, r: dict, pub: dict | None = None) -> str:
    d = " | ".join(f"{100 * r[k]['dice']:.1f}" for k in ("ET", "TC", "WT"))
    h = " | ".join(f"{r[k]['hd95']:.1f}" for k in ("ET", "TC", "WT"))
    p = " / ".join(f"{pub[k]:.1f}" for k in ("ET", "TC", "WT")) if pub else ""
    return f"| {label} | {d} | {h} | {p} |"


def main():
    m = json.loads((HERE / "brats_metrics.json").read_text())
    sh = m["models"]["brats-shaspec"]
    un = m["models"].get("brats-unet4")
    out = ["| model, sequences present | Dice ET | Dice TC | Dice WT | HD95 ET (mm) | HD95 TC | HD95 WT | published ShaSpec (Dice ET / TC / WT) |",
           "|---|---|---|---|---|---|---|---|"]
    all4 = "FLAIR+T1+T1c+T2"
    for s in bd.SUBSETS:
        n = bd.subset_name(s)
        out.append(row(f"`brats-shaspec` {n}", sh["1mm"][n]["mean"], PUBLISHED_ALL4 if n == all4 else None))
    out.append(row("**`brats-shaspec` mean of the 15 subsets**", sh["1mm"]["meanOver15Subsets"], PUBLISHED_MEAN15))
    if un:
        out.append(row(f"`brats-unet4` {all4}", un["1mm"][all4]["mean"]))
    out.append(row(f"`brats-shaspec` {all4}, **5 mm slices**", sh["5mm"][all4]["mean"]))
    out.append(row("`brats-shaspec` mean of the 15 subsets, **5 mm slices**", sh["5mm"]["meanOver15Subsets"]))
    if un:
        out.append(row(f"`brats-unet4` {all4}, **5 mm slices**", un["5mm"][all4]["mean"]))
    print("\n".join(out))
    print()
    print("Per case, all four, 1 mm (Dice ET / TC / WT):")
    for name, mm in m["models"].items():
        for c, r in mm["1mm"][all4]["perCase"].items():
            print(f"- {name} {c}: " + " / ".join(f"{100 * r[k]['dice']:.1f}" for k in ("ET", "TC", "WT"))
                  + "; HD95 " + " / ".join(f"{r[k]['hd95']:.1f}" for k in ("ET", "TC", "WT")))


if __name__ == "__main__":
    main()
