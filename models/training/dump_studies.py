#!/usr/bin/python3
"""Write phantom studies of one split to the fixture format (dwi/b0/adc/mask .gz + meta.json per study), for
evaluations that run the node's own TypeScript path on the acquisition grid (eval_postprocess.ts).

    nice -n 10 /usr/bin/python3 dump_studies.py val 40 --realism 2     # -> cache/studies/val-r2/val-<seed>/
"""
import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import phantoms  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("split")
    ap.add_argument("n", type=int)
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--realism", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "cache" / "studies"))
    a = ap.parse_args()
    out = Path(a.out) / f"{a.split}-r{a.realism}"
    subjects = phantoms.load_splits()[a.split]
    t0 = time.time()
    for seed in range(a.seed0, a.seed0 + a.n):
        d = out / f"{a.split}-{seed}"
        if (d / "meta.json").exists():
            continue
        st = phantoms.generate_study(a.split, seed, subjects, realism=a.realism)
        phantoms.write_fixture(st, d, f"{a.split} split, seed {seed}, realism {a.realism}")
        print(f"{a.split} {seed} {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
