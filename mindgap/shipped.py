"""Trained models that ship inside the package, by name: ``mindgap.load_model("scenes-gap5-l1")``.

Each shipped model is a file (or a refiner's folder) in ``mindgap/pretrained/`` with a record in
``mindgap/pretrained/models.json``: the command and seed that made it, its SHA-256, its test accuracy and what it
takes.  :func:`resolve` turns a name into the file's path wherever a model path is taken (``mindgap.load_model``,
``mindgap explain --model``, ``mindgap serve``, ``--refiner``, ``explain-video``); a path is returned unchanged.
The pretrained Tiny backbones ship beside them with their own records (``mindgap.pretrain``);
:func:`backbone_weights` resolves ``weights="pretrained"`` to the main job's start (the scenes-96k recipe).

``python -m mindgap.shipping add …`` copies a trained model in and records it; ``python -m mindgap.shipping check``
says which shipped files no longer match their records.  Nothing here imports TensorFlow (nor another mindgap
module), so the command line resolves names at once.
"""

import dataclasses
import difflib
import json
import os

from mindgap.storage import file_sha256  # noqa: F401 (mindgap.shipped.file_sha256, as before)

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
REGISTRY_FILE = "models.json"
KINDS = ("image", "clips", "refiner")  # an image model with a CAM head, a CNN-LSTM, a Guided Zoom refiner folder
# weights="pretrained" is the scenes-96k recipe's backbone (the main job's start); "pretrained:RECIPE" picks another.
PRETRAINED = "pretrained"
DEFAULT_BACKBONE_RECIPE = "scenes-96k"
BACKBONE_FILES = {  # recipe of mindgap.pretrain -> its shipped weights file (the record is the same name, .json)
    "scenes-96k": "tiny_scenes_96k_seed0_r2_v1.weights.h5",
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
    """The shipped weights file that ``weights`` names (``"pretrained"``: the main job's Tiny backbone, scenes-96k;
    ``"pretrained:RECIPE"``: another recipe of :data:`BACKBONE_FILES`), checked against its record's SHA-256.
    Any other value is returned unchanged."""
    if not isinstance(weights, str) or not (weights == PRETRAINED or weights.startswith(PRETRAINED + ":")):
        return weights
    if backbone != "tiny":
        raise ValueError(f"No pretrained weights ship for the {backbone} backbone (only for Tiny); pass "
                         f"{'imagenet, ' if backbone == 'inception_v3' else ''}None or a weights file.")
    recipe = weights.partition(":")[2] or DEFAULT_BACKBONE_RECIPE
    if recipe not in BACKBONE_FILES:
        raise ValueError(f"Unknown pretrained Tiny weights {weights!r}; use 'pretrained' (the scenes-96k recipe) or one of "
                         f"{', '.join(PRETRAINED + ':' + name for name in BACKBONE_FILES)}.")
    path = os.path.join(directory, BACKBONE_FILES[recipe])
    with open(path.replace(".weights.h5", ".json")) as handle:
        recorded = json.load(handle)["sha256"]
    if file_sha256(path) != recorded:
        raise ValueError(f"The shipped weights {path} do not match their record's SHA-256; reinstall mindgap or remake "
                         f"them with: python -m mindgap.pretrain --recipe {recipe}.")
    return path
