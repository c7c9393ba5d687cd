"""Trained models that ship inside the package, by name: ``mindgap.load_model("scenes-gap5-l1")``.

Each shipped model is a file (or a refiner's folder) in ``mindgap/pretrained/`` with a record in
``mindgap/pretrained/models.json``: the command and seed that made it, its SHA-256, its test accuracy and what it
takes.  :func:`resolve` turns a name into the file's path wherever a model path is taken (``mindgap.load_model``,
``mindgap explain --model``, ``mindgap serve``, ``--refiner``, ``explain-video``); a path is returned unchanged.
The pretrained Tiny backbones ship beside them with their own records (``mindgap.pretrain``);
:func:`backbone_weights` resolves ``weights="pretrained"`` to the one that matches the scenes set.

``python -m mindgap.shipped add MODEL.keras --name NAME --command "…" --seed 0 --report report_test.json``
copies a trained model in without its optimizer state (a third of the file) and records it;
``python -m mindgap.shipped check`` says which shipped files no longer match their records.
Nothing here imports TensorFlow except ``add``, so the command line resolves names at once.
"""

import argparse
import dataclasses
import difflib
import hashlib
import json
import os
import shutil
import sys

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
REGISTRY_FILE = "models.json"
KINDS = ("image", "clips", "refiner")  # an image model with a CAM head, a CNN-LSTM, a Guided Zoom refiner folder
# weights="pretrained" is the scenes recipe's backbone (the main job's start); "pretrained:RECIPE" picks another.
PRETRAINED = "pretrained"
DEFAULT_BACKBONE_RECIPE = "scenes"
BACKBONE_FILES = {  # recipe of mindgap.pretrain -> its shipped weights file (the record is the same name, .json)
    "scenes": "tiny_scenes_seed0_r2_v1.weights.h5",
    "centred-digits": "tiny_centred_digits_seed0_r2.weights.h5",
    "printed-scenes": "tiny_printed_scenes_seed0_r2_v1.weights.h5",
}


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """One record of ``models.json``."""

    name: str
    file: str  # relative to the registry's folder
    kind: str  # one of KINDS
    architecture: str  # the registry name it was built as, e.g. "Tiny-GAP5-L1"
    takes: str  # what goes in, in words
    command: str  # the command that trained it
    seed: int
    test_accuracy: float
    sha256: str
    trained_on: str = ""
    size_bytes: int = 0
    keras: str = ""


def file_sha256(path):
    """SHA-256 of a file, or of a folder (every file's relative path and bytes, in sorted order)."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        for root, folders, files in os.walk(path):
            folders.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(os.path.relpath(full, path).encode())
                with open(full, "rb") as handle:
                    digest.update(handle.read())
        return digest.hexdigest()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_models(directory=SHIPPED_DIR):
    """{name: ShippedModel} of ``directory``'s ``models.json`` (empty when there is none)."""
    path = os.path.join(directory, REGISTRY_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as handle:
        records = json.load(handle)
    fields = {field.name for field in dataclasses.fields(ShippedModel)}
    return {name: ShippedModel(name=name, **{key: value for key, value in record.items() if key in fields})
            for name, record in records.items()}


def shipped_path(model, directory=SHIPPED_DIR):
    return os.path.join(directory, model.file)


def find(name, directory=SHIPPED_DIR):
    """The ShippedModel called ``name`` (case-insensitive), or None."""
    models = shipped_models(directory)
    return models.get(name) or next((model for key, model in models.items() if key.lower() == str(name).lower()), None)


def looks_like_a_name(text):
    """A bare word such as ``scenes-gap5-l1``: no folder separator and no file extension of a model."""
    text = os.fspath(text)
    return os.sep not in text and "/" not in text and not text.endswith((".keras", ".h5")) and text not in (".", "..")


def unknown_name_message(name, directory=SHIPPED_DIR):
    names = sorted(shipped_models(directory))
    close = difflib.get_close_matches(str(name).lower(), [known.lower() for known in names], n=1, cutoff=0.6)
    hint = f"did you mean {next(known for known in names if known.lower() == close[0])!r}? " if close else ""
    listed = f"the shipped models are {', '.join(names)}" if names else "no model ships with this installation"
    return (f"{str(name)!r} is neither a file nor a shipped model; {hint}{listed} "
            "('mindgap models' lists them), or pass the path of a .keras file.")


def resolve(name_or_path, directory=SHIPPED_DIR, kinds=KINDS):
    """The path of ``name_or_path``: an existing path unchanged, a shipped model's name (any case) as its file.

    A bare word that is neither raises ``ValueError`` with the closest shipped name; any other path is returned
    unchanged, so that the caller reports a missing file in its own words.  ``kinds``: the kinds of shipped model
    the caller takes (a name of another kind is an error saying what it is).
    """
    path = os.fspath(name_or_path)
    if os.path.exists(path) or not looks_like_a_name(path):
        return path
    model = find(path, directory)
    if model is None:
        raise ValueError(unknown_name_message(path, directory))
    if model.kind not in kinds:
        raise ValueError(f"The shipped model {model.name!r} ({model.architecture}) is of kind {model.kind!r}; here "
                         f"{' or '.join(repr(kind) for kind in kinds)} is taken: 'mindgap models' lists each with what it takes.")
    return shipped_path(model, directory)


def names_of_kind(kind, directory=SHIPPED_DIR):
    return [name for name, model in sorted(shipped_models(directory).items()) if model.kind == kind]


def mismatches(directory=SHIPPED_DIR):
    """What differs between the shipped files and their records; [] when every file matches."""
    problems = []
    for name, model in sorted(shipped_models(directory).items()):
        path = shipped_path(model, directory)
        if not os.path.exists(path):
            problems.append(f"{name}: {path} is missing")
        elif file_sha256(path) != model.sha256:
            problems.append(f"{name}: the SHA-256 of {path} is not the recorded {model.sha256} (remake it with: {model.command})")
        if model.kind not in KINDS:
            problems.append(f"{name}: kind {model.kind!r} is not one of {', '.join(KINDS)}")
    return problems


def backbone_weights(weights, backbone="tiny", directory=SHIPPED_DIR):
    """The shipped weights file that ``weights`` names (``"pretrained"``: the scenes recipe's Tiny backbone;
    ``"pretrained:RECIPE"``: another recipe of :data:`BACKBONE_FILES`), checked against its record's SHA-256.
    Any other value is returned unchanged."""
    if not isinstance(weights, str) or not (weights == PRETRAINED or weights.startswith(PRETRAINED + ":")):
        return weights
    if backbone != "tiny":
        raise ValueError(f"No pretrained weights ship for the {backbone} backbone (only for Tiny); pass "
                         f"{'imagenet, ' if backbone == 'inception_v3' else ''}None or a weights file.")
    recipe = weights.partition(":")[2] or DEFAULT_BACKBONE_RECIPE
    if recipe not in BACKBONE_FILES:
        raise ValueError(f"Unknown pretrained Tiny weights {weights!r}; use 'pretrained' (the scenes recipe) or one of "
                         f"{', '.join(PRETRAINED + ':' + name for name in BACKBONE_FILES)}.")
    path = os.path.join(directory, BACKBONE_FILES[recipe])
    with open(path.replace(".weights.h5", ".json")) as handle:
        recorded = json.load(handle)["sha256"]
    if file_sha256(path) != recorded:
        raise ValueError(f"The shipped weights {path} do not match their record's SHA-256; reinstall mindgap or remake "
                         f"them with: python -m mindgap.pretrain --recipe {recipe}.")
    return path


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
    import keras

    from mindgap import models

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
    parser = argparse.ArgumentParser(prog="python -m mindgap.shipped", description=__doc__.splitlines()[0])
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
