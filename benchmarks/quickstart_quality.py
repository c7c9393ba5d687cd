"""The README's main job from a fresh cache: wall time, CPU use, and the quality of what it trains.

Runs ``python -m experiments.quickstart`` in a subprocess with an empty runs folder and an
empty model cache (``MINDGAP_CACHE_DIR``), so the Tiny pretraining and the digits set are
made again, then reads its results.json.  Targets (issue 9): best quick model ≥ 95 % test
accuracy and ≥ 90 % localization with the true class; GAP5 within 2 points of GAP-Zhou on
accuracy; the whole job ≤ 10 minutes on 2 cores.

    python benchmarks/quickstart_quality.py [--keep DIR]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="run in this (new) folder and keep it; default: a temporary folder")
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="mindgap_quickstart_")
    os.makedirs(root, exist_ok=True)
    environment = dict(os.environ, MINDGAP_CACHE_DIR=os.path.join(root, "cache"))
    started = time.time()
    with open(os.path.join(root, "quickstart.log"), "w") as log:
        completed = subprocess.run([sys.executable, "-m", "experiments.quickstart", "--runs-dir", os.path.join(root, "runs")],
                                   env=environment, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        sys.exit(f"the quickstart failed (exit {completed.returncode}); see {os.path.join(root, 'quickstart.log')}")
    with open(os.path.join(root, "runs", "quickstart", "results.json")) as handle:
        models = json.load(handle)["models"]
    cpu = usage.ru_utime + usage.ru_stime
    print(f"wall time of the whole main job (fresh cache, pretraining included): {wall:.0f} s ({wall / 60:.1f} min); "
          f"CPU {cpu:.0f} s = {100 * cpu / wall:.0f} % of one core (200 % = both cores busy)")
    print("| model | test accuracy | loc. true class (CoM in a box) | loc. prediction |")
    print("|---|---|---|---|")
    for values in models.values():
        print(f"| {values['model']} | {100 * values['accuracy']:.1f} | {100 * values['com_ground_truth']:.1f} | "
              f"{100 * values['com_prediction']:.1f} |")
    best = max(models.values(), key=lambda values: values["accuracy"])
    gap = 100 * (models["Inception-GAP5"]["accuracy"] - models["Inception-GAP-Zhou"]["accuracy"])
    checks = [
        (f"best model ({best['model']}) test accuracy {100 * best['accuracy']:.1f} % ≥ 95 %", best["accuracy"] >= 0.95),
        (f"best model localization with the true class {100 * best['com_ground_truth']:.1f} % ≥ 90 %", best["com_ground_truth"] >= 0.90),
        (f"GAP5 − GAP-Zhou accuracy {gap:+.1f} points, within 2", abs(gap) <= 2.0 or gap > 0),
        (f"whole job {wall / 60:.1f} min ≤ 10 min", wall <= 600),
    ]
    for text, met in checks:
        print(f"- {'met' if met else 'NOT met'}: {text}")
    print(f"outputs in {root}")


if __name__ == "__main__":
    main()
