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

if __name__ == "__main__":
    root = phantoms.REPO / "fixtures" / "phantoms"
    for case, seed, note in CASES:
        st = phantoms.generate_study("test", seed, matrix_choices=(128, 144, 160))
        meta = phantoms.write_fixture(st, root / case, note)
        print(case, meta["rows"], meta["slices"], meta["lesionVolumeMl"], meta["sourceLesionMap"])
