#!/usr/bin/python3
"""Ship the real-background fine-tune of shaspec-missing as its own model, shaspec-realbg (issue 17).

    /usr/bin/python3 models/training/write_realbg_manifest.py [--run models/training/out/realbg-ft] [--version 0.4.0]

Copies <run>/shaspec-missing.onnx (finetune_realbg.py's export) to models/shaspec-realbg.onnx and writes
models/shaspec-realbg.json: the I/O contract of models/shaspec-missing.json (same network, same inputs), the
fine-tune's training record (<run>/shaspec-missing.train.json) and its TEST metrics through the node's own path
(eval_postprocess.ts JSONs under out/realbg/: real-background TEST, realism-2 phantom TEST with both / DWI only / ADC
only, the real scans). Numbers are copied, none is computed here.
"""
import argparse
import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent
NAME = "shaspec-realbg"


def pick(m: dict, keys=("dice", "diceMedian", "lesionF1", "falseComponentsPerStudy", "absVolDiffMl", "absVolDiffMlMedian",
                        "noLesionWithFp", "noLesionMeanFalseMl", "detection", "lesionStudies", "noLesionStudies")) -> dict:
    return {k: m[k] for k in keys if k in m}


def variants(path: Path) -> dict:
    d = json.loads(path.read_text())
    m = d["models"]["shaspec-missing"]
    return {"none": pick(m["none"]), "all (node default)": pick(m["all"])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(HERE / "out" / "realbg-ft"))
    ap.add_argument("--evals", default=str(HERE / "out" / "realbg"))
    ap.add_argument("--version", default="0.4.0")
    a = ap.parse_args()
    run, ev = Path(a.run), Path(a.evals)
    tr = json.loads((run / "shaspec-missing.train.json").read_text())
    base = json.loads((MODELS / "shaspec-missing.json").read_text())
    src = run / "shaspec-missing.onnx"
    data = src.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert sha == tr["sha256"], "the ONNX file is not the one the fine-tune exported"
    shutil.copyfile(src, MODELS / f"{NAME}.onnx")
    real = json.loads((ev / "real-ft.json").read_text())["results"]
    man = {
        "name": NAME,
        "version": a.version,
        "file": f"{NAME}.onnx",
        "sha256": sha,
        "bytes": len(data),
        "task": "lesion-segmentation",
        "description": (
            "ShaSpec (as shaspec-missing 0.3.0: shared + DWI- and ADC-specific encoders, modality_mask input) fine-tuned on "
            "acute lesions inserted into REAL diffusion scans (two real heads: Siemens XA30 b 2500, Philips Achieva b 1000; "
            "real SOOP lesion maps incl. embolic showers; 15 % untouched scans as negatives) mixed with realism-2 phantoms. "
            "The node's default lesion model for MR stroke studies (routes[].models.dwiAdc and singleModality: DWI+ADC, DWI "
            "only, ADC only); the CT route's lesion model on the synthetic DWI stays shaspec-missing 0.3.0 (ctLesion). Not "
            "trained on any patient infarct: not for clinical use."),
        "inputs": base["inputs"],
        "outputs": base["outputs"],
        "training": {
            "data": ("fine-tune of shaspec-missing 0.3.0 (weights recovered from its ONNX, BatchNorm frozen): 300 real-background "
                     "TRAIN studies (real_backgrounds.py train 300: TRAIN lesion subjects of splits.json in the two real heads) + "
                     "100 realism-2 phantom TRAIN studies (phantoms.py); selection on 24 real-background VAL studies"),
            "fineTunedFrom": "shaspec-missing 0.3.0 (models/shaspec-missing.onnx, sha256 " + base["sha256"] + ")",
            "trainFiles": tr["trainFiles"],
            "valFile": tr["valFile"],
            "iterations": tr["iterations"],
            "batch": tr["batch"],
            "lr": tr["lr"],
            "selection": tr["valCriterion"],
            "valStart": tr["valStart"],
            "valHistory": tr["valHistory"],
            "bestValDice": tr["bestValDice"],
            "trainSeconds": tr["trainSeconds"],
            "params": tr["params"],
            "hardware": "CPU (Debian torch 1.13, 1 thread, shared 2-core machine)",
        },
        "metrics": {
            "split": "test",
            "path": "the node's own pipeline and post-processing (models/training/eval_postprocess.ts), per 3D study",
            "realBackgroundTest": {
                "data": ("80 real-background TEST studies (real_backgrounds.py test 80: TEST lesion subjects, the SAME two heads as "
                         "training: lesion maps, warps and seeds are held out, the backgrounds are not)"),
                "DWI+ADC": variants(ev / "test-ft.json"),
                "DWI only": variants(ev / "test-ft-dwionly.json"),
                "ADC only": variants(ev / "test-ft-adconly.json"),
            },
            "phantomTest": {
                "data": "80 realism-2 TEST phantom studies (test-r2: seeds 0-79, TEST subjects, Colin27 anatomy)",
                "DWI+ADC": variants(ev / "test-r2-ft.json"),
                "DWI only": variants(ev / "test-r2-ft-dwionly.json"),
                "ADC only": variants(ev / "test-r2-ft-adconly.json"),
            },
            "realScansWithoutLesion": {
                "note": ("marked mL / components, all false; NOT a blind check for this model: the untouched Siemens and Philips "
                         "scans are its training negatives"),
                "results": [{k: r[k] for k in ("scan", "variant", "markedMl", "components")} for r in real if r["variant"] in ("none", "all")],
            },
        },
        "reproduce": ("see models/training/README.md (real backgrounds): finetune_realbg.py --model shaspec-missing --minutes 22 "
                      "--lr 5e-4 --out models/training/out/realbg-ft --train cache/data/realbg_train_300_0.npz "
                      "cache/data/train_100_0_r2.npz --val cache/data/realbg_val_40_0.npz, then this script"),
    }
    (MODELS / f"{NAME}.json").write_text(json.dumps(man, indent=1) + "\n")
    print(NAME, a.version, sha[:12], len(data))


if __name__ == "__main__":
    main()
