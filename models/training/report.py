#!/usr/bin/python3
"""Print the markdown results table of models/README.md from the manifests in models/ (their test metrics).

    /usr/bin/python3 report.py
    /usr/bin/python3 report.py out/run3 out/run4 out/run3/real-volunteer.json out/run4/real-volunteer.json   (0.2.0 vs 0.3.0)
"""
import json
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent
NAMES = ["unet2d-baseline", "dual-encoder", "shaspec-missing"]

def table() -> None:
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


def compare(old_run: Path, new_run: Path, old_real: Path, new_real: Path) -> None:
    """Both versions on both TEST sets (realism 1 and 2, told apart by the test file's name) and on the volunteer."""
    def scores(run: Path) -> dict:
        out = {}
        for f in sorted(run.glob("*.test*.json")):
            te = json.loads(f.read_text())
            out[(te["model"], "r2" if "_r2" in te["testFile"] else "r1")] = te["metrics"]
        return out

    def fp(t: dict) -> str:
        return f"{round(t['noLesionFalsePositiveRate'] * t['noLesionStudies'])}/{t['noLesionStudies']}"

    def real(p: Path) -> dict:
        return {(r["model"], r["input"]): r["markedMl"] for r in json.loads(p.read_text())["results"]}
    so, sn, ro, rn = scores(old_run), scores(new_run), real(old_real), real(new_real)
    print("| model | inputs | Dice realism-1 TEST old → new | Dice realism-2 TEST old → new | lesion-wise F1 realism-2 old → new | "
          "no-lesion studies with FP, realism 2, old → new | healthy volunteer mL (scanner maps) old → new |")
    print("|---|---|---|---|---|---|---|")
    for n in NAMES:
        for sub in (["DWI+ADC", "DWI only", "ADC only"] if n == "shaspec-missing" else ["DWI+ADC"]):
            a1, b1, a2, b2 = so[(n, "r1")][sub], sn[(n, "r1")][sub], so[(n, "r2")][sub], sn[(n, "r2")][sub]
            vol = (f"{ro[(n, 'scanner TRACEW + ADC')]:.1f} → {rn[(n, 'scanner TRACEW + ADC')]:.1f}" if sub == "DWI+ADC" else "")
            print(f"| `{n}` | {sub} | {a1['dice']:.3f} → {b1['dice']:.3f} | {a2['dice']:.3f} → {b2['dice']:.3f} | "
                  f"{a2['lesionF1']:.3f} → {b2['lesionF1']:.3f} | {fp(a2)} → {fp(b2)} | {vol} |")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 5:
        compare(*[Path(x) for x in sys.argv[1:]])
    else:
        table()
