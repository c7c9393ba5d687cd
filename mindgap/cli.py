"""The ``mindgap`` command: ``train``, ``evaluate``, ``explain`` (``--refiner``: Guided Zoom), ``explain-video``, ``explain-caption``, ``digits`` and ``serve``.

Bad input (a missing file, a file that is not an image, a ``.keras`` file that is not a mindgap model, an unknown
class, an empty folder, a broken dataset) ends with one line on stderr and exit code 2; so does a run folder in use by
another process or holding a run with other settings.  A full disk or an unwritable place ends with one line naming
the path and its free space, exit 1.  ``train`` and ``evaluate`` read any layout of ``mindgap.data.layouts``
(``--format``, detected by default) and, like ``explain`` on a folder, decode every image and check every box first
(``mindgap.data.check``; ``--skip-bad-images`` drops the bad ones instead).  Each command imports what it needs when
it runs (start-up time: ``mindgap --help`` loads no TensorFlow); the library does the work (``mindgap.explain``).
"""

import argparse
import dataclasses
import math
import numbers
import os
import sys
import typing

from mindgap import __version__, registry, shipped  # neither loads TensorFlow: `mindgap --help` stays fast
from mindgap.data.options import DataOptions
from mindgap.storage import StorageError, atomic_path, read_json, storage_error
from mindgap.training.config import TrainConfig

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
EXIT_BAD_INPUT = 2
EXIT_STORAGE = 1  # a full disk or an unwritable place
EXIT_WORKER_LOST = 3  # multi-worker training lost a peer: relaunch every worker
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def _add_config_flags(parser, config_class, names=None):
    """One ``--flag`` per config field (of ``names``, default all), typed from its default, with the help and the
    choices the field carries (``mindgap.data.options.option``; argparse checks the choices)."""
    for field in dataclasses.fields(config_class):
        if names is not None and field.name not in names:
            continue
        flag, default, said = "--" + field.name.replace("_", "-"), field.default, field.metadata.get("help")
        shown = f"{said}; default {default}" if said else f"default {default!r}"
        if "choices" in field.metadata:
            parser.add_argument(flag, choices=field.metadata["choices"], default=None, help=shown)
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=shown)
        elif default is None or isinstance(default, str):
            parser.add_argument(flag, type=int if int in typing.get_args(field.type) else str, default=None, help=shown)
        else:
            parser.add_argument(flag, type=type(default), default=None, help=shown)


def _config_overrides(args, config_class):
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)
            if getattr(args, field.name, None) is not None}


# What each command takes, and where a model of another kind fits (``mindgap.models.model_kind``).
_COMMAND_TAKES = {
    "explain": "'mindgap explain --model' takes image models with a CAM head (GAPm or GAP-Zhou, e.g. Tiny-GAP5)",
    "export": "'mindgap export' writes image models with a CAM head (GAPm or GAP-Zhou: probabilities and CAMs)",
    "evaluate": "'mindgap evaluate' measures image models with a CAM head (GAPm or GAP-Zhou)",
    "serve": "'mindgap serve' shows the CAMs of image models with a CAM head (GAPm or GAP-Zhou)",
    "explain-video": "{path!r} is not a CNN-LSTM, which 'mindgap explain-video' takes (Tiny-LSTM: clips in, a class per "
                     "frame; train one with 'mindgap train Tiny-LSTM --data-dir VIDEO_SET')",
}
_COMMAND_KINDS = {"explain-video": "clips"}  # the others take "cam"
_KIND_FITS = {
    "cam": "{path!r} is an image model with a CAM head: use 'mindgap explain IMAGE --model {path}'",
    "clips": "{path!r} is a CNN-LSTM (Tiny-LSTM: clips in, a class per frame): ground it with "
             "'mindgap explain-video CLIP_FOLDER --model {path}'",
    "frames": "{path!r} is a frame CNN (Tiny-Frames, no CAM head): it starts a CNN-LSTM, "
              "'mindgap train Tiny-LSTM --data-dir VIDEO_SET --weights {path}', then 'mindgap explain-video'",
    "dropout": "{path!r} is an Excitation Dropout classifier (no CAM head), measured by "
               "'python -m experiments.excitation_dropout'",
    "captioner": "{path!r} is a captioner (Tiny-Captioner): ground its words with "
                 "'mindgap explain-caption IMAGE_OR_CLIP --model {path}'",
    "other": "{path!r} is not a mindgap model (no 'gap_maps' and 'probabilities' layers); build one with "
             "mindgap.build_model or train one with 'mindgap train'",
}


def load_mindgap_model(path, command="explain"):
    """Load a ``.keras`` file and check that it is a model ``command`` takes (a CAM model; a CNN-LSTM for
    ``explain-video``), or raise ``CliError``
    saying what the file is, what the command takes and which command fits it."""
    from mindgap.models import load_model_file, model_kind  # start-up time: loaded when the command runs

    path = resolve_model(path, ("image", "clips"))
    if os.path.isdir(path):
        inside = os.path.join(path, "best.keras")
        hint = f"pass {inside!r}" if os.path.isfile(inside) else "pass a .keras file saved by mindgap (e.g. a run's best.keras)"
        raise CliError(f"Model {path!r} is a folder, not a .keras file; {hint}.")
    if not os.path.isfile(path):
        raise CliError(f"Model file {path!r} does not exist; pass the best.keras written by 'mindgap train'.")
    try:
        model = load_model_file(path, "Model", fix="pass a model saved by mindgap with model.save('name.keras')")
    except ValueError as error:
        raise CliError(str(error)) from None
    kind = model_kind(model)
    if kind != _COMMAND_KINDS.get(command, "cam"):
        extra = "; keras' model.export(PATH) writes its probabilities alone" if command == "export" and kind != "other" else ""
        raise CliError(f"{_COMMAND_TAKES[command].format(path=path)}; {_KIND_FITS[kind].format(path=path)}{extra}.")
    return model


def resolve_model(name_or_path, kinds=shipped.KINDS):
    """``mindgap.shipped.resolve`` (a shipped model's name to its file; a path unchanged), its error a ``CliError``."""
    try:
        return shipped.resolve(name_or_path, kinds=kinds)
    except ValueError as error:
        raise CliError(str(error)) from None


def _check_top(top):
    if top is not None and (isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1):
        raise CliError(f"--top must be an integer >= 1, got {top!r}.")


def _check_threshold(threshold):
    if not isinstance(threshold, numbers.Real) or not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        raise CliError(f"--threshold must be a fraction of the CAM's max in [0, 1], got {float(threshold) if isinstance(threshold, numbers.Real) else threshold!r}.")


def _write_checked(path, write):
    """Run ``write(temporary_path)``, then rename over ``path``; a failed write raises ``StorageError`` and leaves nothing."""
    with atomic_path(path) as temporary:
        write(temporary)
    return path


def checked_image_paths(paths, skip_bad_images=False, warn=None):
    """The paths whose files decode (every file decoded once, in parallel, cached); else one ``CliError`` naming the bad ones."""
    from mindgap.data.check import check_images  # start-up time: loaded when the command runs
    from mindgap.data.records import summarize

    result = check_images(paths)
    bad = [f"{path} ({result.errors[os.path.abspath(path)]})" for path in paths if os.path.abspath(path) in result.errors]
    if bad and not skip_bad_images:
        raise CliError(summarize(bad, "unreadable images") + "; fix or remove them, or pass --skip-bad-images.")
    if bad:
        (warn or (lambda line: print(line, file=sys.stderr)))("warning: --skip-bad-images dropped " + summarize(bad, "unreadable images"))
    good = [path for path in paths if os.path.abspath(path) not in result.errors]
    if not good:
        raise CliError("No readable image is left; pass images TensorFlow can decode (JPEG, PNG, GIF or BMP).")
    return good


def _output_folder(out_dir):
    """Make ``out_dir`` before the work: an unwritable place is one line (``StorageError``) naming it, at once."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise storage_error(out_dir, error) from None


def explain(target, model_path, out_dir, class_name=None, top=None, threshold=0.2, print_fn=print, skip_bad_images=False, method="cam"):
    """Top-k classes of each image (stdout), and per image an overlay of the evidence map of ``method`` (default the
    one-pass CAM; any image method of ``mindgap.saliency``) with its box and a grid of all class CAMs; a folder also
    gets ``predictions.csv`` and a progress bar (``mindgap.explain_folder``).

    The overlay is drawn on the image at its own size (``mindgap.explain``); output names keep the image's whole
    file name (``cat.jpg_owl_overlay.png``, ``cat.jpg_all_cams.png``).  ``top`` (default 5) is capped at the class
    count, with a note when it was asked for explicitly.  Every image of a folder is decoded first: unreadable
    ones end the command with one error naming them, or are skipped with a warning (``skip_bad_images``).
    """
    from mindgap import explanation as explaining, plots, saliency  # start-up time: loaded when the command runs
    from mindgap.data.pipeline import deprocess, model_input
    from mindgap.models import model_info

    _check_top(top)
    _check_threshold(threshold)
    model = load_mindgap_model(model_path)
    info = model_info(model)
    if top is None:
        top = min(5, info.num_classes)
    elif top > info.num_classes:
        print(f"note: --top {top} is more than the model's {info.num_classes} classes; showing {info.num_classes}.", file=sys.stderr)
        top = info.num_classes
    if class_name is not None and class_name not in info.class_names:
        raise CliError(f"Unknown class {class_name!r}; this model knows: {', '.join(info.class_names)}.")
    folder = os.path.isdir(target)
    paths = explaining.image_files(target)
    paths = checked_image_paths(paths, skip_bad_images) if folder else [explaining.read_image(paths[0])[1]]
    _output_folder(out_dir)
    explanations, written = explaining.explain_folder(model, paths, out_dir, methods=(method,), predictions=folder,
                                                      top_k=top, class_name=class_name, threshold=threshold)
    size = int(info.input_shape[0])
    for item in explanations:
        print_fn(f"{item.source}: " + ", ".join(f"{name} {probability:.3f}" for name, probability in item.top_k))
        shown = model_input(item.image, size)
        cams = saliency.compute(model, shown[None], None, method=saliency.DEFAULT_METHOD)[0]
        name = os.path.basename(item.source)
        written.append(_write_checked(os.path.join(out_dir, f"{name}_all_cams.png"), lambda temporary: plots.plot_cam_grid(
            deprocess(shown), cams, info.class_names, temporary, title=f"{name}: all class CAMs",
            highlight=info.class_names.index(item.class_name))))
    print(f"wrote {len(written)} files to {out_dir}", file=sys.stderr)
    return written


def explain_refined(target, refiner_dir, out_dir, top=None, print_fn=print, skip_bad_images=False):
    """Guided Zoom on each image (``mindgap.guided_zoom.Refiner`` saved in ``refiner_dir``): print the conventional
    CNN's top classes and the refined ones (Algorithm 2's totals), and write the evidence patches that were scored,
    one figure per image (``cat.jpg_guided_zoom.png``).  Images are loaded at the refiner's ``source_size``."""
    from mindgap import explanation as explaining, plots  # start-up time: loaded when the command runs
    from mindgap.guided_zoom import Refiner

    refiner_dir = resolve_model(refiner_dir, ("refiner",))
    if not os.path.isdir(refiner_dir):
        raise CliError(f"Refiner folder {refiner_dir!r} does not exist; pass a folder written by Refiner.save "
                       "(experiments.guided_zoom writes one per seed: runs/guided_zoom/seed0/refiner).")
    try:
        refiner = Refiner.load(refiner_dir)
    except ValueError as error:
        raise CliError(str(error)) from None
    _check_top(top)
    paths = explaining.image_files(target)
    if os.path.isdir(target):
        paths = checked_image_paths(paths, skip_bad_images)
    _output_folder(out_dir)
    names, written = refiner.class_names, []
    for item in explaining.explain_refined(refiner, paths, top):
        print_fn(f"{item.source}: conventional: " + ", ".join(f"{name} {value:.3f}" for name, value in item.top_k))
        print_fn(f"{item.source}: refined: " + ", ".join(f"{name} {value:.3f}" for name, value in item.refined))
        name = os.path.basename(item.source)
        written.append(_write_checked(os.path.join(out_dir, f"{name}_guided_zoom.png"), lambda temporary: plots.plot_evidence_patches(
            item.patches, item.scores, item.classes, names, temporary, methods=refiner.methods,
            title=f"{name}: conventional {item.top_k[0][0]}, refined {item.refined[0][0]} (Evidence CNN probability of "
                  "each row's class)")))
    return written


def _refuse_video_set_root(folder):
    """A video set's root (or its clips/ folder) holds clip folders, not frames: say which folder to pass."""
    from mindgap.data.clips import CLIPS_DIR  # start-up time: loaded when the command runs

    if not os.path.isdir(folder) or any(name.lower().endswith(IMAGE_EXTENSIONS) for name in os.listdir(folder)):
        return
    inner = os.path.join(folder, CLIPS_DIR) if os.path.isdir(os.path.join(folder, CLIPS_DIR)) else folder
    clips = sorted(name for name in os.listdir(inner) if os.path.isdir(os.path.join(inner, name)))
    if clips:
        kind = "a video set's root" if inner != folder else "a folder of clips"
        raise CliError(f"{folder!r} is {kind}, not a clip: pass one clip's folder of frames, e.g. "
                       f"{os.path.join(inner, clips[0])!r} ({len(clips)} clips in {inner!r}).")


def explain_video(clip, model_path, out_dir, method="ceb_r", class_name=None, layer="backbone", print_fn=print):
    """Classify a clip with a CNN-LSTM and ground the class in space and time (thesis ch. 7).

    ``clip``: a folder of frames (``mindgap.data.video``'s clip folders, or any folder of images of one size, in name
    order).  Prints the class (the last step's prediction, or ``class_name``) and the localized segment (§7.2: from
    the highest frame sum, grown until a negative sum; for the non-negative ``eb_r``/``bp_r`` the sums minus their
    mean), and writes ``<clip>_<method>.png`` (the frames, their maps, the curve over time) and
    ``<clip>_<method>.json`` into ``out_dir``.  Returns the JSON record.
    """
    from mindgap import explanation as explaining, saliency, storage  # start-up time: loaded when the command runs
    from mindgap.data.check import load_checked_clip
    from mindgap.plots import plot_clip_grounding

    saliency.method_of(method, takes="clips")
    model_path = resolve_model(model_path, ("clips",))
    _refuse_video_set_root(os.fspath(clip))
    model = load_mindgap_model(model_path, "explain-video")
    _output_folder(out_dir)
    size = int(model.inputs[0].shape[2])
    # the training check's rules (DatasetError, a ValueError: one line, exit 2)
    clip_record, frames, _ = load_checked_clip(os.fspath(clip), size, num_classes=int(model.output.shape[-1]),
                                               warn=lambda line: print(line, file=sys.stderr))
    found = explaining.explain_clip(model, frames, method=method, class_name=class_name, layer=layer)
    start, end = found.segment
    name = os.path.basename(os.path.normpath(os.fspath(clip)))
    files = [os.path.basename(path) for path in clip_record.frames]
    span = f"frames {start + 1}-{end} of {len(frames)} (files {files[start]}-{files[end - 1]})"
    figure = os.path.join(out_dir, f"{explaining.file_part(name)}_{method}.png")
    _write_checked(figure, lambda path: plot_clip_grounding(
        frames, [found.maps], [f"{method} '{found.class_name}'"], path, title=f"{name}: {found.class_name} "
        f"({100 * found.probability:.1f} % at the last frame), localized in {span}", segments=[(start, end)]))
    record = {"clip": os.path.abspath(os.fspath(clip)), "frames": int(len(frames)), "class": found.class_name,
              "predicted": found.predicted, "probability": found.probability, "method": method,
              "segment": [start, end], "segment_files": [files[start], files[end - 1]],
              "frame_files": files, "frame_scores": [float(value) for value in found.frame_scores], "figure": figure}
    if clip_record.label >= 0:  # its clip.json: the ground truth beside the answer
        record["ground_truth"] = {"class": explaining.class_names(model)[clip_record.label], "segment": list(clip_record.segment)}
    storage.write_json(os.path.join(out_dir, f"{explaining.file_part(name)}_{method}.json"), record)
    print_fn(f"{name}: {found.class_name} ({100 * found.probability:.1f} %"
             + ("" if found.class_name == found.predicted else f"; predicted {found.predicted}") +
             f"), localized in {span} ({method}); wrote {figure}")
    return record


def _run_explain_caption(args):
    import numpy as np

    from mindgap.explain_caption import explain_caption  # start-up time: loaded when the command runs
    from mindgap.models import load_model_file

    model = load_model_file(args.model, "captioner", "train one with python -m experiments.caption_grounding")
    words = None if args.words is None else [word.strip() for word in args.words.split(",") if word.strip()]
    caption, maps = explain_caption(args.input, model, words, args.out, caption=args.caption)
    print(" ".join(caption))
    for word, values in maps.items():
        print(f"{word}: peak at (x, y) = {tuple(int(v) for v in np.unravel_index(int(np.argmax(values)), values.shape)[::-1])}")
    print(f"wrote {args.out}")


def _run_explain_video(args):  # the exit code is main's: explain_video's record is for library callers
    explain_video(args.clip, args.model, args.out, method=args.method, class_name=args.class_name, layer=args.layer)


def _run_train(args):
    from mindgap.training.loop import train  # start-up time: loaded when the command runs

    result = train(args.model, args.data_dir, args.out, **_config_overrides(args, TrainConfig))
    print(f"best model: {result.best_path}")


def _data_options(args):
    """The data options of ``evaluate``: its flags, else the training run's ``config.json`` beside the model, else the
    defaults; so a class-folder set without split files is split exactly as it was for training."""
    saved = read_json(os.path.join(os.path.dirname(os.path.abspath(args.model)), "config.json")) or {}
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{name: value for name, value in saved.items() if name in known}).replace(
        **_config_overrides(args, TrainConfig))


def _run_evaluate(args):
    from mindgap.data import LAYOUTS, load_dataset, make_dataset  # start-up time: loaded when the command runs
    from mindgap.evaluation import evaluate
    from mindgap.models import model_info

    model = load_mindgap_model(args.model, "evaluate")
    info = model_info(model)
    options = _data_options(args)
    dataset, _ = load_dataset(args.data_dir, splits=(args.split,), require=(args.split,), **options.dataset_options())
    if LAYOUTS[dataset.layout].holds != "images":
        raise CliError(f"{args.data_dir} is a {dataset.layout} set of clips; 'mindgap evaluate' measures image models on "
                       "images (a clip model's grounding: python -m experiments.spatiotemporal).")
    if len(dataset.class_names) != info.num_classes:
        raise CliError(f"The model has {info.num_classes} classes but {args.data_dir} has {len(dataset.class_names)}; pass the dataset it was trained on.")
    records = getattr(dataset, args.split)
    data = make_dataset(records, num_classes=info.num_classes, image_size=int(info.input_shape[0]),
                        batch_size=options.batch_size, with_boxes=True)
    report = evaluate(model, data)
    os.makedirs(args.out, exist_ok=True)
    report.save_json(os.path.join(args.out, "report.json"))
    report.plot_iou_curve(os.path.join(args.out, "iou_curve.png"))  # nothing when no image has a box
    print(report.to_markdown())


def _run_explain(args):
    if (args.model is None) == (args.refiner is None):
        raise CliError("pass either --model MODEL.keras (the CAM and other maps) or --refiner DIR (Guided Zoom), not "
                       f"{'both' if args.model else 'neither'}.")
    if args.refiner is not None:
        if args.class_name is not None or args.method != "cam":
            raise CliError("--class and --method belong to --model; with --refiner the classes are the refiner's top-k and "
                           "its grounding method is its own.")
        explain_refined(args.target, args.refiner, args.out, top=args.top, skip_bad_images=args.skip_bad_images)
        return
    explain(args.target, args.model, args.out, class_name=args.class_name, top=args.top, threshold=args.threshold,
            skip_bad_images=args.skip_bad_images, method=args.method)


def _export_folder(out_dir):
    """``--out`` of export: a folder that is, or can be, made; else one line naming the problem, before the model loads."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CliError(f"--out {out_dir!r} is a file; pass a folder (the export writes savedmodel/, model.tflite or "
                       "model.onnx inside it).")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except NotADirectoryError:
        raise CliError(f"--out {out_dir!r} lies under a file, not a folder; pass a folder.") from None
    except OSError as error:
        parent = os.path.dirname(os.path.abspath(out_dir))
        raise CliError(f"--out {out_dir!r} cannot be made in {parent!r} ({error.strerror}); pass a folder you can "
                       "write to.") from None


def _run_export(args):
    from mindgap.exporting import export  # start-up time: loaded when the command runs

    _export_folder(args.out)
    model = load_mindgap_model(args.model, "export")
    try:
        path = export(model, args.out, format=args.format)
    except ImportError as error:
        raise CliError(str(error)) from None
    print(f"wrote {path} (outputs: probabilities, cams)", flush=True)


def _run_digits(args):
    from mindgap.data.digits import main as digits_main  # start-up time: loaded when the command runs

    return digits_main([args.out_dir, "--seed", str(args.seed)])


def _run_models(args):
    names = registry.list_models(args.pattern)
    if not names:
        raise CliError(f"No model name matches {args.pattern!r}; 'mindgap models' lists them all.")
    for family in registry.families():
        listed = [name for name in family.listed if name in names]
        if listed:
            print(f"{family.description} (takes {family.takes}):\n  " + "\n  ".join(listed))


def _served_names(paths):
    """Short unique names for the served models: the file stem, or ``folder/stem`` when two stems clash."""
    stems = [os.path.splitext(os.path.basename(os.fspath(path)))[0] for path in paths]
    names = [stem if stems.count(stem) == 1 else f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}/{stem}" for path, stem in zip(paths, stems)]
    if len(set(names)) != len(names):
        raise CliError(f"Two models would be served under the same name ({', '.join(names)}); pass each file once.")
    return names


def _run_serve(args):
    try:
        import uvicorn  # an optional dependency (pip install fastapi uvicorn)

        from mindgap.serve import create_app
    except ImportError as error:
        raise CliError(f"mindgap serve needs {error.name!r}; pip install fastapi uvicorn python-multipart.") from None
    paths = args.models or shipped.names_of_kind("image")
    if not paths:
        raise CliError("No model to serve: pass MODEL.keras files (no shipped model is installed).")
    names = [path if shipped.looks_like_a_name(path) and not os.path.exists(path) else name
             for path, name in zip(paths, _served_names(paths))]
    models = {name: load_mindgap_model(path, "serve") for name, path in zip(names, paths)}
    app = create_app(models, examples=args.examples, max_upload_bytes=int(args.max_upload_mb * 2**20), cache_images=args.cache_images)
    print(f"serving {', '.join(names)} on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


_SHIPPED_HINT = "a .keras file saved by mindgap, or a shipped model's name (mindgap models)"


def build_parser():
    parser = argparse.ArgumentParser(prog="mindgap", description="Regularized GAP models: train, evaluate, explain.")
    parser.add_argument("--version", action="version", version=f"mindgap {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train a model with the paper's recipe")
    train_parser.add_argument("model", help="model name, e.g. Inception-GAP5-L1 or Tiny-GAP5")
    train_parser.add_argument("--data-dir", required=True, help="dataset folder: Stanford 40 (or digits), class folders, or WSOL metadata (--format)")
    train_parser.add_argument("--out", required=True, help="output folder (the same one resumes a run)")
    _add_config_flags(train_parser, TrainConfig)
    train_parser.set_defaults(handler=_run_train)

    evaluate_parser = commands.add_parser("evaluate", help="every classification and localization number of a saved model")
    evaluate_parser.add_argument("--model", required=True, help=_SHIPPED_HINT)
    evaluate_parser.add_argument("--data-dir", required=True, help="the dataset it was trained on")
    evaluate_parser.add_argument("--out", required=True, help="output folder: report.json and iou_curve.png")
    evaluate_parser.add_argument("--split", choices=("train", "val", "test"), default="test")
    data_flags = evaluate_parser.add_argument_group("data (default: the training run's config.json beside the model, else as shown)")
    _add_config_flags(data_flags, DataOptions, names=DataOptions.EVALUATION)
    evaluate_parser.set_defaults(handler=_run_evaluate)

    explain_parser = commands.add_parser("explain", help="classify images and show where the evidence is")
    explain_parser.add_argument("target", help="an image or a folder of images")
    explain_parser.add_argument("--model", default=None, help=_SHIPPED_HINT)
    explain_parser.add_argument("--refiner", default=None, metavar="DIR",
                                help="instead of --model: a Guided Zoom refiner folder; prints the conventional and the "
                                     "refined top classes and writes the evidence patches scored")
    explain_parser.add_argument("--class", dest="class_name", default=None, help="explain this class instead of the top one")
    explain_parser.add_argument("--top", type=int, default=None, help="classes listed per image, >= 1 (default 5)")
    explain_parser.add_argument("--threshold", type=float, default=0.2, help="CAM threshold of the box, fraction of the max, in [0, 1]")
    explain_parser.add_argument("--out", required=True, help="output folder: an overlay and a grid of all class CAMs per image")
    explain_parser.add_argument("--skip-bad-images", action="store_true", help="skip unreadable images of a folder with a warning")
    explain_parser.add_argument("--method", choices=registry.method_names("images", shown=True), default=registry.DEFAULT_METHOD,
                                help="evidence map of the overlay (mindgap.saliency); default the one-pass CAM")
    explain_parser.set_defaults(handler=_run_explain)

    video_parser = commands.add_parser("explain-video", help="classify a clip with a CNN-LSTM and show where and when the evidence is")
    video_parser.add_argument("clip", help="a folder of frames (a clip of mindgap.data.video, or any images of one size)")
    video_parser.add_argument("--model", required=True, help="a CNN-LSTM .keras file (mindgap train Tiny-LSTM) or a shipped one's name")
    video_parser.add_argument("--method", choices=registry.method_names("clips"), default="ceb_r",
                              help="saliency through time (default cEB-R, thesis ch. 7)")
    video_parser.add_argument("--class", dest="class_name", default=None, help="ground this class instead of the predicted one")
    video_parser.add_argument("--layer", default="backbone", help="layer of the frame CNN the maps are taken at")
    video_parser.add_argument("--out", required=True, help="output folder: the frames with their maps and a JSON record")
    video_parser.set_defaults(handler=_run_explain_video)

    caption_parser = commands.add_parser("explain-caption", help="caption an image or clip and map each word (cEB-R)")
    caption_parser.add_argument("input", help="an image, or a folder of frames for a Tiny-Captioner-Clips")
    caption_parser.add_argument("--model", required=True, help="a captioner .keras file (experiments.caption_grounding)")
    caption_parser.add_argument("--words", default=None, help="comma-separated words of the caption (default: its content words)")
    caption_parser.add_argument("--caption", default=None,
                                help="a caption to feed and ground instead of the model's own (e.g. the ground truth)")
    caption_parser.add_argument("--out", required=True, help="the PNG to write (one map per word)")
    caption_parser.set_defaults(handler=_run_explain_caption)

    export_parser = commands.add_parser("export", help="write the model (probabilities and every class's CAM) for another runtime")
    export_parser.add_argument("model", metavar="MODEL.keras", help=_SHIPPED_HINT)
    export_parser.add_argument("--format", choices=("savedmodel", "litert", "onnx"), default="savedmodel",
                               help="TensorFlow SavedModel (default), LiteRT .tflite or ONNX")
    export_parser.add_argument("--out", required=True, help="output folder (savedmodel/, model.tflite or model.onnx inside)")
    export_parser.set_defaults(handler=_run_export)

    models_parser = commands.add_parser("models", help="list the model names of every family, e.g. mindgap models '*LSTM*'")
    models_parser.add_argument("pattern", nargs="?", default="*", help="a shell pattern, any case (default: every name)")
    models_parser.set_defaults(handler=_run_models)
    digits_parser = commands.add_parser("digits", help="write the embedded digits localization set")
    digits_parser.add_argument("out_dir", help="output folder of the set")
    digits_parser.add_argument("--seed", type=int, default=0)
    digits_parser.set_defaults(handler=_run_digits)

    serve_parser = commands.add_parser("serve", help="a web page and JSON API: upload an image, see the top-5 and the CAM of any class")
    serve_parser.add_argument("models", nargs="*", metavar="MODEL.keras",
                              help=f"{_SHIPPED_HINT}; none: every shipped image model")
    serve_parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only); 0.0.0.0 opens it to the network")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--examples", default=None, help="a folder of example images (default: a few digits canvases)")
    serve_parser.add_argument("--max-upload-mb", type=float, default=32.0, help="larger uploads get HTTP 413")
    serve_parser.add_argument("--cache-images", type=int, default=32, help="images (and their CAMs per model) kept in memory")
    serve_parser.set_defaults(handler=_run_serve)
    return parser


def _parse(parser, argv):
    """``parser.parse_args``, but a flag the command does not know is refused with the command's own usage and
    the closest flag it has."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        import difflib  # start-up time: only for a mistyped flag

        subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        subparser = subparsers.choices[args.command]
        flags = [flag for action in subparser._actions for flag in action.option_strings]
        close = difflib.get_close_matches(unknown[0].split("=")[0], flags, n=1)
        subparser.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" (did you mean {close[0]}?)" if close else ""))
    return args


def main(argv=None):
    args = _parse(build_parser(), argv)
    try:
        return args.handler(args) or 0
    except (CliError, ValueError, FileExistsError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StorageError as error:
        print(f"error: {error.strerror}", file=sys.stderr)
        return EXIT_STORAGE
    except KeyboardInterrupt as error:  # TrainingInterrupted says where and how to resume
        print(str(error) or "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as error:
        from mindgap.training.loop import WorkerLost  # start-up time: loaded when the command runs

        if not isinstance(error, WorkerLost):
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_WORKER_LOST


if __name__ == "__main__":
    sys.exit(main())
