#!/usr/bin/python3
"""Write the committed phantom fixtures (TEST split only) to fixtures/phantoms/<case>/ (format in fixtures/README.md)."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import phantoms  # noqa: E402

CASES = [
    ("test-1037-lesion", 1037, "Acute lesion (test-split lesion map), ADC reduced ~58%, b=1000, 5 mm slices."),
    ("test-1114-nolesion", 1114, "No lesion (about 15% of generated studies have none), b=1000."),
    ("test-1084-lesion-mimic", 1084, "Acute lesion plus a T2 shine-through mimic (a second lesion map, bright on b0/DWI "
                                      "with RAISED ADC, not in the mask): a DWI-only reader over-calls it."),
]

# CT phantoms (paired with the true b=1000 DWI on the CT grid): (case, seed, matrix, slices kept [z0, z1), note)
CT_CASES = [
    ("ct-test-5-lesion", 5, 256, (12, 24), "CT-only study: TEST-split CT phantom seed 5 (matrix 256, 5 mm, STANDARD kernel), "
     "slices 12-23 of 24 kept (partial coverage, keeps the fixture small); acute lesion hypodense by ~2 HU (nearly "
     "invisible) plus a T2 shine-through mimic; dwi-true = the phantom's own b=1000 DWI on the CT grid."),
]


def write_ct_fixtures(root: Path):
    """CT cases go to fixtures/phantoms/ct/<case>/ (a folder without meta.json: the MR phantom loops skip it)."""
    root = root / "ct"
    for case, seed, matrix, (z0, z1), note in CT_CASES:
        st = phantoms.crop_ct_study(phantoms.generate_ct_study("test", seed, matrix_choices=(matrix,)), z0, z1)
        meta = phantoms.write_ct_fixture(st, root / case, note)
        meta["generator"] = (f"models/training/make_fixtures.py: phantoms.crop_ct_study(phantoms.generate_ct_study('test', {seed}, "
                             f"matrix_choices=({matrix},)), {z0}, {z1})")
        (root / case / "meta.json").write_text(phantoms.json.dumps(meta, indent=1) + "\n")
        print(case, meta["rows"], meta["slices"], meta["lesionVolumeMl"], meta["sourceLesionMapId"])


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--ct":
    write_ct_fixtures(phantoms.REPO / "fixtures" / "phantoms")
    sys.exit(0)

if __name__ == "__main__":
    root = phantoms.REPO / "fixtures" / "phantoms"
    for case, seed, note in CASES:
        st = phantoms.generate_study("test", seed, matrix_choices=(128, 144, 160))
        meta = phantoms.write_fixture(st, root / case, note)
        print(case, meta["rows"], meta["slices"], meta["lesionVolumeMl"], meta["sourceLesionMap"])
    write_ct_fixtures(root)
