#!/usr/bin/python3
"""Markdown tables of evaluate_liver.py results (models/README.md liver section) and the manifest's metrics block.

    liver_tables.py --run ../out/liver-cpu --split test --key post0.065 [--metrics-json metrics.json]
    liver_tables.py --choose ../out/liver-shape/ct-val-aqcf.json ../out/liver-shape/mr-val-aqcf.json

--choose ranks every post-processing key of VAL runs by the mean lesion F1 over the (modality, size bin) cells that
hold truth lesions (the rule minTumourMl and the shape rules were chosen by), then fewer false components.

Reads <run>/<mod>-<split>-<model>.json for (ct: aqcf, unet-ct) and (mr: aqcf, unet-mr).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

PAIRS = {"ct": ["aqcf", "unet-ct"], "mr": ["aqcf", "unet-mr"]}
NAMES = {"aqcf": "A-QCF-Net", "unet-ct": "CT-only U-Net", "unet-mr": "MRI-only U-Net"}


def f(v, nd=3):
    return "–" if v is None else f"{v:.{nd}f}"


def row(name, s):
    d = s["detection"]
    det = " | ".join(f"{f(d[b]['f1'], 2)} ({d[b]['tp']}/{d[b]['truth']}, FP {d[b]['fp']})" for b in ("<10", "10-20", ">20"))
    return (f"| {name} | {f(s['liver_dice_mean'])} | {f(s['tumour_dice_per_case_mean'])} | {f(s['tumour_dice_global'])} "
            f"| {det} | {f(s['liver_volume_error_pct_mean'], 1)} | {f(s['tumour_volume_error_ml_mean'], 1)} "
            f"| {f(s['negative_false_liver_ml_mean'], 1)} |")


def compact(s):
    return {"liverDice": s["liver_dice_mean"], "tumourDicePerCase": s["tumour_dice_per_case_mean"],
            "tumourDiceGlobal": s["tumour_dice_global"],
            "lesionF1": {b: {"f1": v["f1"], "tp": v["tp"], "truth": v["truth"], "fp": v["fp"]} for b, v in s["detection"].items()},
            "liverVolumeErrorPct": s["liver_volume_error_pct_mean"], "tumourVolumeErrorMl": s["tumour_volume_error_ml_mean"],
            "negativeCases": s["negative_cases"], "negativeFalseLiverMl": s["negative_false_liver_ml_mean"]}


def choose(paths):
    runs = [json.loads(Path(p).read_text()) for p in paths]
    rank = []
    for key in runs[0]["summary"]:
        cells, fp, tp = [], 0, 0
        for r in runs:
            for d in r["summary"][key]["detection"].values():
                fp += d["fp"]
                tp += d["tp"]
                if d["truth"]:
                    cells.append(d["f1"])
        rank.append((sum(cells) / len(cells), -fp, key, tp))
    rank.sort(reverse=True)
    print("| post-processing | mean lesion F1 | TP | FP |\n|---|---|---|---|")
    for f1, nfp, key, tp in rank:
        print(f"| {key} | {f1:.3f} | {tp} | {-nfp} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--choose", nargs="+", default=[], help="VAL evaluate_liver.py JSONs: rank their keys")
    ap.add_argument("--run", default="")
    ap.add_argument("--split", default="test")
    ap.add_argument("--key", default="post0.065")
    ap.add_argument("--metrics-json", default="")
    a = ap.parse_args()
    if a.choose:
        return choose(a.choose)
    hdr = ("| model | liver Dice | tumour Dice per case | tumour Dice global | lesion F1 < 10 mm (TP/truth, FP) | 10-20 mm "
           "| > 20 mm | liver vol. err. % | tumour vol. err. mL | false liver mL (negatives) |\n|---|---|---|---|---|---|---|---|---|---|")
    metrics = {}
    for mod, models in PAIRS.items():
        for key in ("raw", a.key):
            print(f"\n{mod.upper()} {a.split} ({'raw argmax' if key == 'raw' else 'post-processed, ' + key}):\n{hdr}")
            for m in models:
                p = Path(a.run) / f"{mod}-{a.split}-{m}.json"
                if not p.exists():
                    continue
                r = json.loads(p.read_text())
                print(row(NAMES[m], r["summary"][key]))
                if key != "raw":
                    metrics.setdefault(mod, {})[m] = compact(r["summary"][key])
                    metrics[mod]["cases"] = r["summary"][key]["cases"]
                    metrics[mod]["seeds"] = f"{r['split']} streams, seeds {r['seed0']}-{r['seed0'] + r['n'] - 1}"
                else:
                    metrics.setdefault(mod + "Raw", {})[m] = compact(r["summary"][key])
    if a.metrics_json:
        Path(a.metrics_json).write_text(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
