"""The README's main job from a fresh cache: wall time, CPU use, where the time goes, and the quality of what it trains.

Runs ``python -m experiments.quickstart`` in a subprocess with an empty runs folder and an
empty model cache (``MINDGAP_CACHE_DIR``), so the digits set (and the Tiny pretraining, unless
the package ships matching weights) are made again, then reads its results.json and each
run folder's ``timing.json``.  Targets (issue 18): the whole job ≤ 10 minutes on 2 cores at
≥ 185 % CPU; best quick model ≥ 95 % test accuracy and ≥ 90 % localization with the true class.

    python benchmarks/quickstart_quality.py [--keep DIR] [-- QUICKSTART FLAGS]

The time breakdown (per model: training steps, validation, each callback, the final
evaluation; the figures) is in wall seconds with its CPU use (100 % = one core busy).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CALLBACK_NAMES = ("BackboneFreeze", "PreciseBatchNorm", "LearningRateScheduler", "TerminateOnNaN", "LocalizationMetrics",
                  "AtomicBestCheckpoint", "CamSnapshots", "CSVLogger", "EpochSummary", "TensorBoard", "AtomicBackup")


def _cell(seconds):
    if not seconds:
        return "–"
    wall, cpu = seconds
    return f"{wall:.1f} s ({100 * cpu / wall:.0f} %)" if wall > 0 else "0"


def time_breakdown(runs_dir, models):
    """Markdown: one row per model, its parts summed over epochs."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from mindgap.training.callbacks import PhaseTimes

    rows, columns = [], ["training_steps", "validation"]
    for values in models.values():
        run_dir = values["run_dir"]
        with open(os.path.join(run_dir, "timing.json")) as handle:
            totals = PhaseTimes.totals(json.load(handle))
        evaluation_path = os.path.join(run_dir, "report_test_timing.json")
        if os.path.isfile(evaluation_path):
            with open(evaluation_path) as handle:
                totals["final evaluation"] = json.load(handle)["evaluation"]
        for name in totals:
            if name not in columns and name != "epoch":
                columns.append(name)
        rows.append((values["model"], totals))
    lines = ["| model | " + " | ".join(columns) + " | epochs total | outside the steps |",
             "|---|" + "---|" * (len(columns) + 2)]
    for model, totals in rows:
        epoch_wall = totals["epoch"][0]
        outside = epoch_wall - totals["training_steps"][0]
        lines.append(f"| {model} | " + " | ".join(_cell(totals.get(name)) for name in columns)
                     + f" | {_cell(totals['epoch'])} | {100 * outside / epoch_wall:.0f} % of the epochs |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="run in this (new) folder and keep it; default: a temporary folder")
    parser.add_argument("quickstart_flags", nargs="*", help="passed on to experiments.quickstart (after --)")
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="mindgap_quickstart_")
    os.makedirs(root, exist_ok=True)
    environment = dict(os.environ, MINDGAP_CACHE_DIR=os.path.join(root, "cache"))
    started = time.time()
    with open(os.path.join(root, "quickstart.log"), "w") as log:
        completed = subprocess.run([sys.executable, "-m", "experiments.quickstart", "--runs-dir", os.path.join(root, "runs"),
                                    *args.quickstart_flags], env=environment, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        sys.exit(f"the quickstart failed (exit {completed.returncode}); see {os.path.join(root, 'quickstart.log')}")
    with open(os.path.join(root, "runs", "quickstart", "results.json")) as handle:
        results = json.load(handle)
    models = results["models"]
    cpu = usage.ru_utime + usage.ru_stime
    print(f"wall time of the whole main job (fresh cache): {wall:.0f} s ({wall / 60:.1f} min); "
          f"CPU {cpu:.0f} s = {100 * cpu / wall:.0f} % of one core (200 % = both cores busy)")
    print("| model | test accuracy | loc. true class (CoM in a box) | loc. prediction |")
    print("|---|---|---|---|")
    for values in models.values():
        print(f"| {values['model']} | {100 * values['accuracy']:.1f} | {100 * values['com_ground_truth']:.1f} | "
              f"{100 * values['com_prediction']:.1f} |")
    if all(os.path.isfile(os.path.join(values["run_dir"], "timing.json")) for values in models.values()):
        print("\nWhere the time goes (wall seconds summed over epochs, CPU % of one core; each model in its own process):")
        print(time_breakdown(os.path.join(root, "runs"), models))
        for name, seconds in results.get("timing", {}).items():
            print(f"- {name}: {_cell(seconds)}")
    best = max(models.values(), key=lambda values: values["accuracy"])
    checks = [
        (f"best model ({best['model']}) test accuracy {100 * best['accuracy']:.1f} % ≥ 95 %", best["accuracy"] >= 0.95),
        (f"best model localization with the true class {100 * best['com_ground_truth']:.1f} % ≥ 90 %", best["com_ground_truth"] >= 0.90),
        (f"whole job {wall / 60:.1f} min ≤ 10 min", wall <= 600),
        (f"CPU {100 * cpu / wall:.0f} % ≥ 185 %", cpu / wall >= 1.85),
    ]
    for text, met in checks:
        print(f"- {'met' if met else 'NOT met'}: {text}")
    print(f"outputs in {root}")


if __name__ == "__main__":
    main()
