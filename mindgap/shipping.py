"""Put a trained model into the package: ``python -m mindgap.shipping add MODEL.keras --name NAME --command "…" --seed 0
--report report_test.json --takes "…"``; ``python -m mindgap.shipping check`` lists the shipped files that no longer
match their records (:mod:`mindgap.shipped`, which reads them)."""

import argparse
import dataclasses
import json
import os
import shutil
import sys

import keras

from mindgap import models
from mindgap.shipped import REGISTRY_FILE, SHIPPED_DIR, ShippedModel, file_sha256, mismatches, shipped_models


def _report_accuracy(report_path):
    with open(report_path) as handle:
        report = json.load(handle)
    for keys in (("classification", "accuracy"), ("test_accuracy",), ("accuracy",)):
        value = report
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            return float(value)
    raise ValueError(f"{report_path!r} holds no test accuracy (classification.accuracy, test_accuracy or accuracy).")


def add(source, name, command, seed, report, takes, trained_on="", directory=SHIPPED_DIR):
    """Copy a trained model into ``directory`` under ``name`` and record it in ``models.json``.

    A ``.keras`` file is loaded without compiling and saved again, so that no optimizer state ships; a refiner
    folder is copied as it is.  Returns the new ShippedModel.
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        kind, file_name = "refiner", name
        target = os.path.join(directory, file_name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        for inner in sorted(os.listdir(target)):
            if inner.endswith(".keras"):  # saved again uncompiled: no optimizer state ships
                models.load_model(os.path.join(target, inner)).save(os.path.join(target, inner))
        with open(os.path.join(target, "manifest.json")) as handle:
            architecture = json.load(handle).get("model_name", "Guided Zoom refiner")
    else:
        model = models.load_model(source)
        kind = {"cam": "image", "clips": "clips"}.get(models.model_kind(model))
        if kind is None:
            raise ValueError(f"{source!r} is a {models.model_kind(model)} model; only image models with a CAM head, "
                             "CNN-LSTMs and refiners ship.")
        file_name = f"{name}.keras"
        target = os.path.join(directory, file_name)
        model.save(target)  # loaded uncompiled: no optimizer state
        architecture = model.name
    sha256 = file_sha256(target)
    size = sum(os.path.getsize(os.path.join(root, one)) for root, _, files in os.walk(target) for one in files) \
        if os.path.isdir(target) else os.path.getsize(target)
    record = ShippedModel(name=name, file=file_name, kind=kind, architecture=architecture, takes=takes, command=command,
                          seed=int(seed), test_accuracy=round(_report_accuracy(report), 4), sha256=sha256,
                          trained_on=trained_on, size_bytes=size, keras=keras.__version__)
    registry_path = os.path.join(directory, REGISTRY_FILE)
    records = {}
    if os.path.isfile(registry_path):
        with open(registry_path) as handle:
            records = json.load(handle)
    records[name] = {key: value for key, value in dataclasses.asdict(record).items() if key != "name"}
    with open(registry_path, "w") as handle:
        json.dump(dict(sorted(records.items())), handle, indent=2)
        handle.write("\n")
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mindgap.shipping", description="Put a trained model into the package, or check the shipped ones.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_parser = commands.add_parser("add", help="copy a trained model in (without optimizer state) and record it")
    add_parser.add_argument("source", help="a .keras file, or a refiner folder (Refiner.save)")
    add_parser.add_argument("--name", required=True, help="e.g. scenes-gap5-l1")
    add_parser.add_argument("--command", required=True, dest="made_by", help="the command that trained it")
    add_parser.add_argument("--seed", type=int, required=True)
    add_parser.add_argument("--report", required=True, help="a JSON with its test accuracy (mindgap evaluate's report.json)")
    add_parser.add_argument("--takes", required=True, help="what goes in, in words")
    add_parser.add_argument("--trained-on", default="", help="the data set, e.g. scenes-5000-r1")
    commands.add_parser("check", help="list the shipped files that no longer match their records")
    args = parser.parse_args(argv)
    if args.command == "add":
        record = add(args.source, args.name, args.made_by, args.seed, args.report, args.takes, args.trained_on)
        print(f"shipped {record.name}: {record.file}, {record.size_bytes / 1e6:.2f} MB, test accuracy {record.test_accuracy:.4f}")
        return 0
    problems = mismatches()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(shipped_models())} shipped models, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
