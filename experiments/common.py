"""What every experiment shares: modes, the model cache, evaluation, the paper's numbers, reports.

Modes (one flag each, quick is the default):

* quick: the embedded digits set (5,000 training images), the Tiny backbone
  with its pretrained start (``mindgap.pretrain``), 64² inputs, the paper's
  two phases in miniature (backbone frozen for 2 epochs, then fine-tuned for
  6), about 10 minutes on 2 CPU cores from a fresh cache (two models at a time, see ``workers``).
* ``--full``: the paper's settings: InceptionV3 (GoogLeNet for
  GoogLeNet-GAP-Zhou), ``--weights imagenet`` or a path, ``--data-dir`` to
  Stanford 40, 299², 125 epochs, backbone frozen for the first 10.
* ``--extra-small``: a handful of images and one epoch, for the test suite.

Every trained model lives in ``<runs>/models/<model>-<settings hash>/``: an
experiment that asks for a model with the same settings and data reuses it,
so running several experiments never trains the same model twice.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time

import mindgap  # first: it imports TensorFlow without its start-up chatter

import keras  # noqa: E402
from experiments import workers
from mindgap import storage
from mindgap.data import make_dataset
from mindgap.data.layouts import dataset_options, load_dataset
from mindgap.data.digits import ensure_digits_dataset
from mindgap.data.scenes import ensure_scenes_dataset
from mindgap.training import TrainConfig

PAPER_MODELS = ("Inception-GAP5", "Inception-GAP5-L1", "Inception-GAP5-L2",
                "Inception-GAP-Zhou", "Inception-GAP-Zhou-L1", "Inception-GAP-Zhou-L2")
DEFAULT_RUNS = "runs"

# The paper's numbers (shared/PAPER.md, Tables 2-4), in %.
PAPER_TABLE3 = {
    "Inception-GAP5": dict(accuracy=75.9, precision=80.1, recall=74.2, map=63.8),
    "Inception-GAP5-L1": dict(accuracy=75.5, precision=88.8, recall=63.5, map=78.1),
    "Inception-GAP5-L2": dict(accuracy=73.5, precision=88.1, recall=61.1, map=77.0),
    "Inception-GAP-Zhou": dict(accuracy=73.7, precision=75.7, recall=72.8, map=66.6),
    "Inception-GAP-Zhou-L1": dict(accuracy=75.8, precision=82.8, recall=70.5, map=76.5),
    "Inception-GAP-Zhou-L2": dict(accuracy=73.5, precision=77.3, recall=71.2, map=72.4),
}
PAPER_TABLE2 = {
    "Inception-GAP5": dict(accuracy=75.9, precision=80.1, recall=74.2),
    "Inception-GAP-Zhou": dict(accuracy=73.7, precision=75.7, recall=72.8),
    "GoogLeNet-GAP-Zhou": dict(accuracy=70.6, precision=None, recall=None),
}
PAPER_TABLE4 = {
    "Inception-GAP5": dict(com_ground_truth=72.8, com_prediction=50.3),
    "Inception-GAP5-L1": dict(com_ground_truth=65.1, com_prediction=46.6),
    "Inception-GAP5-L2": dict(com_ground_truth=70.3, com_prediction=49.6),
    "Inception-GAP-Zhou": dict(com_ground_truth=66.5, com_prediction=47.5),
    "Inception-GAP-Zhou-L1": dict(com_ground_truth=68.1, com_prediction=47.6),
    "Inception-GAP-Zhou-L2": dict(com_ground_truth=67.4, com_prediction=45.8),
}
# Tables 3 and 4 together: every measure the paper gives for each of its six models.
PAPER_MEASURES = {name: {**PAPER_TABLE3[name], **PAPER_TABLE4[name]} for name in PAPER_TABLE3}
# Only differences are given for m = 10: GAP10 1.3 points under GAP5, GAP10-L1 0.7 over GAP5-L1.
PAPER_MAPS_PER_CLASS = {"Inception-GAP5": dict(accuracy=75.9), "Inception-GAP5-L1": dict(accuracy=75.5),
                        "Inception-GAP10": dict(accuracy=74.6), "Inception-GAP10-L1": dict(accuracy=76.2)}
MAP_NOTE = ("MaP here is the standard mean over classes of average precision (scikit-learn); the paper's MaP is "
            "below its accuracy, which this definition rarely gives, so the two may not be comparable.")


# The quick mode (2 CPU cores, minutes): the paper's recipe, smaller.  5,000 training images so that
# fine-tuning does not overfit at once, 64² inputs so that six models (three with Zhou's 1,024-map
# head) train in minutes, the backbone frozen for 2 epochs and then fine-tuned for 6.  The paper's
# 125 epochs at x0.94 every second epoch end at 2 % of the first rate; compressed into 8 epochs that
# is about x0.7 a epoch.  Learning rate 0.001: at the paper's 0.002 fine-tuning survives the unfreeze
# but validation swings harder (BatchNorm's moving statistics lag the faster-moving weights).  PreciseBN
# over 20 training batches (640 images) instead of 50: 2.2 of a model's 21 CPU-seconds per epoch were
# spent there.
QUICK_DIGITS = dict(train_per_class=500, test_per_class=100)
# The embedded sets by name (the folder under <runs>/data/): how each is made and with which settings.
# scenes: a small class digit anywhere among look-alike letters (mindgap.data.scenes), the default since the
# digits set saturated every localization measure; digits-5000-r2: the set of renderer 2, reproducible by name.
EMBEDDED_SETS = {
    "scenes-5000-r1": (ensure_scenes_dataset, dict(QUICK_DIGITS)),
    "digits-5000-r2": (ensure_digits_dataset, dict(QUICK_DIGITS)),
}
# The pretrained start of the Tiny backbone for each set (mindgap.pretrain.RECIPES): at the scale of its digits.
PRETRAIN_RECIPE = {"scenes-5000-r1": "scenes-96k", "digits-5000-r2": "centred-digits"}
QUICK_DATA_FOLDER = "scenes-5000-r1"
EXTRA_SMALL_SET = (ensure_scenes_dataset, dict(train_per_class=3, test_per_class=3, canvas_size=48, digit_size=[12, 20],
                                               distractors=[1, 2]))
# The Zhou head in the paper's proportion: 1,024 maps on InceptionV3 mixed7's 768 channels is 4:3 of the
# backbone's width; on Tiny's 128 channels that is 171 maps (1,024 would cost 3.8x the whole backbone).
PAPER_ZHOU_RATIO = 1024 / 768
QUICK_ZHOU_UNITS = round(128 * PAPER_ZHOU_RATIO)
QUICK_TRAIN = dict(image_size=64, epochs=8, freeze_epochs=2, batch_size=32, localization_images=100,
                   learning_rate=0.001, lr_decay_factor=0.7, lr_decay_every=1, zhou_units=QUICK_ZHOU_UNITS,
                   precise_bn_batches=20)


@dataclasses.dataclass
class Mode:
    """Resolved settings of one experiment run."""

    name: str  # quick | full | extra-small
    data_dir: str
    runs_dir: str
    backbone_prefix: str  # "Tiny" or "Inception"
    weights: str | None
    train: dict
    digits: dict | None  # settings of the embedded set this mode generates (None: the user's data)
    evaluation_batch: int = 32
    googlenet_weights: str | None = None
    embedded_set: str | None = None  # a name of EMBEDDED_SETS, or "extra-small"

    def model_name(self, paper_name):
        """``Inception-GAP5-L1`` → the name this mode trains (``Tiny-GAP5-L1`` in quick mode)."""
        if paper_name.startswith("GoogLeNet") or self.backbone_prefix == "Inception":
            return paper_name
        return paper_name.replace("Inception", self.backbone_prefix, 1)


def add_mode_arguments(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true", help="the paper's settings (InceptionV3, Stanford 40, 125 epochs)")
    group.add_argument("--extra-small", action="store_true", help="a handful of images and one epoch (tests)")
    parser.add_argument("--data-dir", default=None, help="dataset folder (Stanford 40, class folders or WSOL metadata, detected); quick mode generates digits there")
    parser.add_argument("--format", default=None, choices=("auto", "stanford40", "folders", "wsol"), help="force the dataset layout")
    parser.add_argument("--image-root", default=None, help="wsol layout: the folder the image ids are relative to")
    parser.add_argument("--embedded-set", default=QUICK_DATA_FOLDER, choices=tuple(EMBEDDED_SETS),
                        help=f"quick mode: which embedded set to generate and use (default {QUICK_DATA_FOLDER})")
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS, help="where models are cached and results written")
    parser.add_argument("--weights", default=None, help="InceptionV3 / Tiny weights: 'imagenet' or a file (full mode); quick mode pretrains Tiny")
    parser.add_argument("--googlenet-weights", default=None, help="GoogLeNet weights file (none ship with Keras); default: from scratch")
    parser.add_argument("--epochs", type=int, default=None, help="override the mode's epoch count")
    parser.add_argument("--alpha", type=float, default=None, help="override the penalty weight (1e-7 in the paper)")
    parser.add_argument("--zhou-units", type=int, default=None,
                        help=f"maps of the GAP-Zhou heads (full mode 1024; quick mode {QUICK_ZHOU_UNITS}, the paper's 1024:768 ratio on Tiny)")
    workers.add_workers_argument(parser)
    return parser


def resolve_mode(args):
    """argparse namespace → :class:`Mode`."""
    runs_dir = os.path.abspath(args.runs_dir)
    if args.full:
        if not args.data_dir:
            raise SystemExit("error: --full needs --data-dir pointing at Stanford 40 (JPEGImages/, XMLAnnotations/, ImageSplits/).")
        train = dict(image_size=299, epochs=125, freeze_epochs=10, batch_size=32)
        mode = Mode("full", os.path.abspath(args.data_dir), runs_dir, "Inception", args.weights or "imagenet", train, None)
    elif args.extra_small:
        digits = dict(EXTRA_SMALL_SET[1])
        train = dict(image_size=32, epochs=1, freeze_epochs=0, batch_size=8, test_per_class=2, localization_images=8,
                     snapshot_images=1, tensorboard=False, verbose=0, zhou_units=QUICK_ZHOU_UNITS)
        data_dir = args.data_dir or os.path.join(runs_dir, "data", "scenes-extra-small")
        mode = Mode("extra-small", os.path.abspath(data_dir), runs_dir, "Tiny", args.weights, train, digits, evaluation_batch=8,
                    embedded_set="extra-small")
    else:
        # Batches of 128 for evaluation: small models keep both cores busy only with larger batches.
        embedded_set = getattr(args, "embedded_set", None) or QUICK_DATA_FOLDER
        mode = Mode("quick", "", runs_dir, "Tiny", args.weights, dict(QUICK_TRAIN), dict(EMBEDDED_SETS[embedded_set][1]),
                    evaluation_batch=128, embedded_set=embedded_set)
        mode.data_dir = os.path.abspath(args.data_dir or os.path.join(runs_dir, "data", embedded_set))
    mode.googlenet_weights = args.googlenet_weights
    if args.epochs is not None:
        mode.train["epochs"] = args.epochs
        mode.train["freeze_epochs"] = min(mode.train["freeze_epochs"], args.epochs)
    if args.alpha is not None:
        mode.train["alpha"] = args.alpha
    zhou_units = getattr(args, "zhou_units", None)
    if zhou_units is not None:
        mode.train["zhou_units"] = None if zhou_units == 1024 else zhou_units  # 1,024 is the default's own run
    for name in ("format", "image_root"):
        if getattr(args, name, None) is not None:
            mode.train[name] = getattr(args, name)
    return mode


def prepare_data(mode):
    """Generate the digits set if this mode uses it and it is absent; read the dataset (any layout) and check every image and box."""
    if mode.digits is not None:
        ensure = EXTRA_SMALL_SET[0] if mode.embedded_set == "extra-small" else EMBEDDED_SETS[mode.embedded_set or QUICK_DATA_FOLDER][0]
        ensure(mode.data_dir, **mode.digits)
    dataset, _ = load_dataset(mode.data_dir, **dataset_options(TrainConfig().replace(**mode.train)))
    return dataset


def _weights_for(mode, model_name):
    if model_name.startswith("Tiny") and mode.weights is None and mode.name == "quick":
        from mindgap.pretrain import pretrained_tiny_weights

        return pretrained_tiny_weights(verbose=1, recipe=PRETRAIN_RECIPE[mode.embedded_set or QUICK_DATA_FOLDER])
    if model_name.startswith("GoogLeNet"):
        return mode.googlenet_weights
    return mode.weights


def describe_start(mode, model_name):
    """How the backbone of ``model_name`` starts in this mode, for captions."""
    weights = _weights_for(mode, model_name)
    if mode.name == "quick" and model_name.startswith("Tiny") and mode.weights is None:
        recipe = PRETRAIN_RECIPE[mode.embedded_set or QUICK_DATA_FOLDER]
        return (f"Tiny backbone pretrained ({recipe}: training-half digits only; shipped in the package, "
                f"made by `python -m mindgap.pretrain --recipe {recipe}`), frozen for the first "
                f"{mode.train['freeze_epochs']} epochs, then fine-tuned")
    if weights is None:
        return "backbone from scratch (no weights), trained from the first epoch"
    return f"backbone weights {weights!r}, frozen for the first {mode.train['freeze_epochs']} epochs"


_TRAINED = {}  # run folder -> its best model, for this process (the latest _TRAINED_KEPT)
_TRAINED_KEPT = 6


def trained_model(mode, model_name, seed=None):
    """Train ``model_name`` with this mode's settings (and training ``seed``), or reuse the run that already did."""
    weights = _weights_for(mode, model_name)
    overrides = dict(mode.train, weights=weights)
    if seed is not None:
        overrides["seed"] = seed
    if model_name.startswith("GoogLeNet") and weights is None:
        overrides["freeze_epochs"] = 0  # nothing pretrained to protect
    config = TrainConfig().replace(**overrides)
    # Only the settings that differ from TrainConfig's defaults: a new option of train() leaves the cache keys alone.
    defaults = dataclasses.asdict(TrainConfig())
    settings = {name: value for name, value in dataclasses.asdict(config).items()
                if name != "verbose" and value != defaults.get(name)}
    key = json.dumps({"model": model_name, "data": mode.data_dir, "config": settings}, sort_keys=True)
    run_dir = os.path.join(mode.runs_dir, "models", f"{model_name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}")
    if run_dir in _TRAINED:  # asked again in this process (Figure 3 after the table): no second data check and load
        return _TRAINED[run_dir], run_dir, 0.0
    started = time.time()
    result = mindgap.train(model_name, mode.data_dir, run_dir, config=config)
    _TRAINED[run_dir] = result.best_model()
    if len(_TRAINED) > _TRAINED_KEPT:  # the oldest goes: full-mode models are large
        del _TRAINED[next(iter(_TRAINED))]
    return _TRAINED[run_dir], run_dir, time.time() - started


def evaluated(mode, model_name, dataset, split="test", seed=None):
    """(report dict, run folder, best model) of ``model_name``, trained and evaluated once per settings."""
    model, run_dir, _ = trained_model(mode, model_name, seed=seed)
    report_path = os.path.join(run_dir, f"report_{split}.json")
    cached = storage.read_json(report_path)  # written atomically: present means complete (an older torn file is redone)
    if cached is not None:
        return cached, run_dir, model
    records = getattr(dataset, split)
    data = make_dataset(records, num_classes=dataset.num_classes, image_size=mode.train["image_size"],
                        batch_size=mode.evaluation_batch, with_boxes=True)
    with Stopwatch() as clock:
        report = mindgap.evaluate(model, data, progress=sys.stderr.isatty())
    storage.write_json(os.path.join(run_dir, f"report_{split}_timing.json"), {"evaluation": clock.seconds})
    storage.write_json(report_path, report.to_dict())  # last: the cache entry
    return report.to_dict(), run_dir, model


class Stopwatch:
    """``with Stopwatch() as clock: ...`` then ``clock.seconds`` = [wall, CPU] seconds of the block (this process)."""

    def __enter__(self):
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc_info):
        self.seconds = [round(time.perf_counter() - self._start[0], 4), round(time.process_time() - self._start[1], 4)]
        return False


def output_dir(mode, experiment):
    return results_folder(mode.runs_dir, experiment, mode.name)


def results_folder(runs_dir, experiment, mode_name, variant=None):
    """``<runs>/<experiment>[-<mode> unless quick][-<variant>]``, created: a mode or a variant writes its own tables."""
    path = os.path.join(os.path.abspath(runs_dir), experiment + ("" if mode_name == "quick" else f"-{mode_name}")
                        + ("" if variant is None else f"-{variant}"))
    os.makedirs(path, exist_ok=True)
    return path


def caption(mode, dataset):
    train = mode.train
    return (f"{mode.name} mode: data {mode.data_dir} ({len(dataset.train)} train / {len(dataset.val)} val / "
            f"{len(dataset.test)} test images, {dataset.num_classes} classes), input {train['image_size']}², "
            f"{train['epochs']} epochs, backbone frozen for {train['freeze_epochs']}, batch {train['batch_size']}, "
            f"learning rate {train.get('learning_rate', 0.002)} x{train.get('lr_decay_factor', 0.94)} every "
            f"{train.get('lr_decay_every', 2)} epoch(s), alpha {train.get('alpha', 1e-7)}; {_zhou_caption(mode)}; "
            "numbers on the test split.")


def _zhou_caption(mode):
    units = mode.train.get("zhou_units")
    if units is None:
        return "GAP-Zhou heads of 1,024 maps (Zhou et al.)"
    if mode.backbone_prefix == "Tiny" and units == QUICK_ZHOU_UNITS:
        return (f"GAP-Zhou heads of {units} maps: the paper's 1,024 maps on 768 channels, in proportion to Tiny's 128 "
                "(--zhou-units 1024 for Zhou's width)")
    return f"GAP-Zhou heads of {units} maps (--zhou-units)"


def percent(value):
    return "–" if value is None else f"{100 * value:.1f}"


def comparison_table(rows, columns, paper, title_column="model"):
    """Markdown table with, per column, our value and the paper's (ours / paper)."""
    header = f"| {title_column} | " + " | ".join(f"{label} (ours / paper)" for _, label in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for paper_name, ours_name, values in rows:
        cells = []
        for key, _ in columns:
            theirs = paper.get(paper_name, {}).get(key)
            cells.append(f"{percent(values.get(key))} / {'–' if theirs is None else f'{theirs:.1f}'}")
        label = paper_name if paper_name == ours_name else f"{ours_name} (paper: {paper_name})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(out_dir, mode, config_extra, results, markdown):
    """config.json, results.json and table.md in ``out_dir``, each written atomically; the table is printed too."""
    storage.write_json(os.path.join(out_dir, "config.json"),
                       {"mode": dataclasses.asdict(mode), **config_extra, "keras": keras.__version__})
    storage.write_json(os.path.join(out_dir, "results.json"), results)
    storage.write_text(os.path.join(out_dir, "table.md"), markdown + "\n")
    print(markdown)
    print(f"\nwritten to {out_dir}")


def cached_model(path):
    """The model cached at ``path`` by :func:`mindgap.storage.save_model`, or None to train it (again).

    Files are written atomically, so one that exists is complete; a torn file an older version left
    (a kill during ``model.save``) is removed with a note and the model trained again."""
    if not os.path.isfile(path):
        return None
    try:
        return mindgap.models.load_model_file(path)
    except ValueError as error:
        print(f"note: {str(error).splitlines()[0]}; training it again.", file=sys.stderr)
        os.remove(path)
        return None


def flat_numbers(report):
    """The numbers of one evaluation report as one flat dict."""
    return {**report["classification"], **report["localization"]}


def run_comparison(experiment, paper_names, columns, paper, argv=None, description="", extra_notes=()):
    """Train (or reuse) and evaluate each model, write the table beside the paper's numbers.

    Returns (mode, out_dir, {paper name: flat numbers}).
    """
    args = main_parser(description).parse_args(argv)
    mode = resolve_mode(args)
    dataset = prepare_data(mode)
    out_dir = output_dir(mode, experiment)
    results, rows, starts = {}, [], {}
    for paper_name in paper_names:
        name = mode.model_name(paper_name)
        report, run_dir, _ = evaluated(mode, name, dataset)
        numbers = flat_numbers(report)
        results[paper_name] = {"model": name, "run_dir": run_dir, **numbers}
        rows.append((paper_name, name, numbers))
        starts[name] = describe_start(mode, name)
    notes = [f"*{caption(mode, dataset)}*", *[f"- {name}: {start}" for name, start in starts.items()], *extra_notes]
    markdown = f"## {experiment}\n\n" + comparison_table(rows, columns, paper) + "\n\n" + "\n".join(notes)
    write_outputs(out_dir, mode, {"experiment": experiment, "models": list(paper_names)}, results, markdown)
    return mode, out_dir, results


def run_main(main):
    """Run an experiment's ``main``; bad input (a dataset, a weights file) ends with one line and exit 2, Ctrl-C with one line."""
    try:
        main()
    except (ValueError, FileExistsError) as error:
        print(f"error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        sys.exit(2)
    except storage.StorageError as error:  # a full disk or an unwritable place: what was saved is whole, rerun resumes
        print(f"error: {error.strerror}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as error:  # TrainingInterrupted names the epoch; the same command resumes
        print(str(error) or "interrupted; run the same command to resume (finished models are kept)", file=sys.stderr)
        sys.exit(130)


def main_parser(description):
    return add_mode_arguments(argparse.ArgumentParser(description=description))
