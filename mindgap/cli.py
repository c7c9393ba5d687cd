"""The ``mindgap`` command: ``train``, ``evaluate``, ``explain`` (``--refiner``: Guided Zoom), ``explain-video``, ``explain-caption``, ``digits`` and ``serve``.

Bad input (a missing file, a file that is not an image, a ``.keras`` file that
is not a mindgap model, an unknown class, an empty folder, a broken dataset)
ends with one line on stderr and exit code 2; so does a run folder in use by
another process or holding a run with other settings.  A full disk or an
unwritable place ends with one line naming the path and its free space, exit 1.
``train`` and ``evaluate`` read
any layout of ``mindgap.data.layouts`` (``--format``, detected by default) and,
like ``explain`` on a folder, decode every image and check every box first
(``mindgap.data.check``; ``--skip-bad-images`` drops the bad ones instead).
"""

import argparse
import dataclasses
import math
import numbers
import os
import re
import sys
import typing

from mindgap.storage import StorageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
EXIT_BAD_INPUT = 2
EXIT_STORAGE = 1  # a full disk or an unwritable place
EXIT_WORKER_LOST = 3  # multi-worker training lost a peer: relaunch every worker
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def _add_config_flags(parser, config_class):
    """One ``--flag`` per config field, typed from its default."""
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"default {default}")
        elif default is None and int in typing.get_args(field.type):
            parser.add_argument(flag, type=int, default=None, help="default None")
        elif default is None or isinstance(default, str):
            parser.add_argument(flag, type=str, default=None, help=f"default {default!r}")
        else:
            parser.add_argument(flag, type=type(default), default=None, help=f"default {default}")


def _config_overrides(args, config_class):
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class) if getattr(args, field.name) is not None}


# What each command takes, and where a model of another kind fits (``mindgap.models.model_kind``).
_COMMAND_TAKES = {
    "explain": "'mindgap explain --model' takes image models with a CAM head (GAPm or GAP-Zhou, e.g. Tiny-GAP5)",
    "export": "'mindgap export' writes image models with a CAM head (GAPm or GAP-Zhou: probabilities and CAMs)",
    "evaluate": "'mindgap evaluate' measures image models with a CAM head (GAPm or GAP-Zhou)",
    "serve": "'mindgap serve' shows the CAMs of image models with a CAM head (GAPm or GAP-Zhou)",
}
_KIND_FITS = {
    "cam": "{path!r} is an image model with a CAM head: use 'mindgap explain IMAGE --model {path}'",
    "clips": "{path!r} is a CNN-LSTM (Tiny-LSTM: clips in, a class per frame): ground it with "
             "'mindgap explain-video CLIP_FOLDER --model {path}'",
    "frames": "{path!r} is a frame CNN (Tiny-Frames, no CAM head): it starts a CNN-LSTM, "
              "'mindgap train Tiny-LSTM --data-dir VIDEO_SET --weights {path}', then 'mindgap explain-video'",
    "dropout": "{path!r} is an Excitation Dropout classifier (no CAM head), measured by "
               "'python -m experiments.excitation_dropout'",
    "other": "{path!r} is not a mindgap model (no 'gap_maps' and 'probabilities' layers); build one with "
             "mindgap.build_model or train one with 'mindgap train'",
}


def load_mindgap_model(path, command="explain"):
    """Load a ``.keras`` file and check that it is a model ``command`` takes (a CAM model), or raise ``CliError``
    saying what the file is, what the command takes and which command fits it."""
    from mindgap.models import load_model_file, model_kind

    path = os.fspath(path)
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
    if kind != "cam":
        extra = "; keras' model.export(PATH) writes its probabilities alone" if command == "export" and kind != "other" else ""
        raise CliError(f"{_COMMAND_TAKES[command]}; {_KIND_FITS[kind].format(path=path)}{extra}.")
    return model


def _image_paths(target):
    if os.path.isdir(target):
        paths = sorted(os.path.join(target, name) for name in os.listdir(target) if name.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise CliError(f"Folder {target!r} holds no image ({', '.join(IMAGE_EXTENSIONS)}); pass an image or a folder of images.")
        return paths
    if not os.path.exists(target):
        raise CliError(f"{target!r} does not exist; pass an image file or a folder of images.")
    return [target]


def _name_part(text):
    """``text`` reduced to letters, digits and '-' (so no '/', '..', '_' or '.'): safe in a file name, and the
    '_'-separated parts of an output name stay unambiguous."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-") or "class"


def _check_explain_arguments(top, threshold):
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise CliError(f"--top must be an integer >= 1, got {top!r}.")
    if not isinstance(threshold, numbers.Real) or not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        raise CliError(f"--threshold must be a fraction of the CAM's max in [0, 1], got {float(threshold) if isinstance(threshold, numbers.Real) else threshold!r}.")


def _write_checked(path, write):
    """Run ``write(temporary_path)``, then rename over ``path``; a failed write raises ``StorageError`` and leaves nothing."""
    from mindgap.storage import atomic_path

    with atomic_path(path) as temporary:
        write(temporary)
    return path


def checked_image_paths(paths, skip_bad_images=False, warn=None):
    """The paths whose files decode (every file decoded once, in parallel, cached); else one ``CliError`` naming the bad ones."""
    from mindgap.data.check import check_images
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


def _loaded_images(paths, size, out_dir):
    """``load_image(path, size)`` of every path (a ``CliError`` naming a bad one), then ``out_dir`` made."""
    from mindgap.data.pipeline import load_image

    loaded = []
    for path in paths:
        try:
            loaded.append(load_image(path, size))
        except ValueError as error:
            raise CliError(str(error)) from None
    _output_folder(out_dir)
    return loaded


def _output_folder(out_dir):
    """Make ``out_dir`` before the work: an unwritable place is one line (``StorageError``) naming it, at once."""
    from mindgap.storage import storage_error

    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise storage_error(out_dir, error) from None


def _method_maps(model, images, probabilities, class_index, method):
    """One map per image (min-max normalised, at the maps' own resolution) of ``method`` (mindgap.saliency)."""
    import numpy as np

    from mindgap import saliency

    if method not in saliency.METHODS:
        raise CliError(f"Unknown method {method!r}; use one of {', '.join(saliency.METHODS)}.")
    classes = np.asarray(probabilities).argmax(axis=-1) if class_index is None else np.full(len(images), class_index)
    maps = saliency.compute(model, images, classes[:, None], method=method)[..., 0]
    return [saliency.scores.min_max(one) for one in maps]


def explain(target, model_path, out_dir, class_name=None, top=None, threshold=0.2, print_fn=print, skip_bad_images=False, method="cam"):
    """Top-k classes of each image, and per image an overlay of the evidence map of ``method`` (default the
    one-pass CAM; any of ``mindgap.saliency``) with its box, and a grid of all class CAMs.

    The overlay is drawn on the image at its own size and aspect ratio: the CAM
    is upsampled to it, and the box (found on the model's square input, as in
    evaluation) is moved back to it.  Output names keep the image's whole file
    name (``cat.jpg_owl_overlay.png``, ``cat.jpg_all_cams.png``), so that
    ``cat.jpg`` and ``cat.png`` never overwrite each other, and reduce the
    class name to letters, digits and '-'.  ``top`` (default 5) is capped at
    the class count, with a note when it was asked for explicitly.
    Every image is decoded first: unreadable ones end the command with one
    error naming them, or are skipped with a warning (``skip_bad_images``).
    """
    import numpy as np
    import tensorflow as tf

    from mindgap import plots
    from mindgap.cam import cam_model, upsample_map
    from mindgap.metrics import cam_to_box
    from mindgap.models import model_info

    _check_explain_arguments(5 if top is None else top, threshold)
    model = load_mindgap_model(model_path)
    info = model_info(model)
    if top is None:
        top = min(5, info.num_classes)
    elif top > info.num_classes:
        print(f"note: --top {top} is more than the model's {info.num_classes} classes; showing {info.num_classes}.", file=sys.stderr)
        top = info.num_classes
    if class_name is not None and class_name not in info.class_names:
        raise CliError(f"Unknown class {class_name!r}; this model knows: {', '.join(info.class_names)}.")
    paths = _image_paths(target)
    if os.path.isdir(target):
        paths = checked_image_paths(paths, skip_bad_images)
    loaded = _loaded_images(paths, int(info.input_shape[0]), out_dir)
    explainer = cam_model(model)
    probabilities, cams = explainer.predict(np.stack([image for image, _ in loaded]), verbose=0)
    method_maps = None if method == "cam" else dict(zip(paths, _method_maps(
        model, np.stack([image for image, _ in loaded]), probabilities,
        None if class_name is None else info.class_names.index(class_name), method)))
    suffix = "" if method == "cam" else f"_{method}"  # the method in the name: runs of several methods never collide
    written = []
    for path, (_, shown), probs, image_cams in zip(paths, loaded, probabilities, cams):
        order = np.argsort(-probs)[:top]
        ranking = ", ".join(f"{info.class_names[index]} {probs[index]:.3f}" for index in order)
        print_fn(f"{path}: {ranking}")
        chosen = info.class_names.index(class_name) if class_name is not None else int(order[0])
        evidence = image_cams[..., chosen] if method_maps is None else method_maps[path]
        original = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).numpy()
        height, width = original.shape[:2]
        x_min, y_min, x_max, y_max = cam_to_box(upsample_map(evidence, shown.shape[:2]), threshold)
        scale_x, scale_y = width / shown.shape[1], height / shown.shape[0]
        box = (x_min * scale_x, y_min * scale_y, x_max * scale_x, y_max * scale_y)
        overlay = plots.overlay_cam(original, upsample_map(evidence, (height, width)))
        overlay = plots.draw_box(overlay, box, plots.CAM_BOX_COLOUR, max(2, round(min(height, width) / 150)))
        name = os.path.basename(path)
        overlay_path = _write_checked(os.path.join(out_dir, f"{name}_{_name_part(info.class_names[chosen])}{suffix}_overlay.png"),
                                      lambda temporary: plots.save_rgb(overlay, temporary))
        grid_path = _write_checked(os.path.join(out_dir, f"{name}_all_cams.png"), lambda temporary: plots.plot_cam_grid(
            shown, image_cams, info.class_names, temporary, title=f"{name}: all class CAMs", highlight=chosen))
        written += [overlay_path, grid_path]
    return written


def explain_refined(target, refiner_dir, out_dir, top=None, print_fn=print, skip_bad_images=False):
    """Guided Zoom on each image (``mindgap.guided_zoom.Refiner`` saved in ``refiner_dir``): print the conventional
    CNN's top classes and the refined ones (Algorithm 2's totals), and write the evidence patches that were scored,
    one figure per image (``cat.jpg_guided_zoom.png``).  Images are loaded at the refiner's ``source_size``."""
    import numpy as np

    from mindgap import plots
    from mindgap.guided_zoom import Refiner

    if not os.path.isdir(refiner_dir):
        raise CliError(f"Refiner folder {refiner_dir!r} does not exist; pass a folder written by Refiner.save "
                       "(experiments.guided_zoom writes one per seed: runs/guided_zoom/seed0/refiner).")
    try:
        refiner = Refiner.load(refiner_dir)
    except ValueError as error:
        raise CliError(str(error)) from None
    if top is not None and (isinstance(top, bool) or top < 1):
        raise CliError(f"--top must be an integer >= 1, got {top!r}.")
    top = refiner.top_k if top is None else min(top, refiner.top_k)
    paths = _image_paths(target)
    if os.path.isdir(target):
        paths = checked_image_paths(paths, skip_bad_images)
    images = np.stack([image for image, _ in _loaded_images(paths, refiner.source_size or int(refiner.model.input.shape[1]),
                                                            out_dir)])
    result = refiner.refine(images, keep_patches=True)
    names = refiner.class_names
    written = []
    for index, path in enumerate(paths):
        conventional = ", ".join(f"{names[c]} {result.probabilities[index, c]:.3f}" for c in result.top_classes[index, :top])
        order = np.argsort(-result.totals[index], kind="stable")[:top]
        refined = ", ".join(f"{names[result.top_classes[index, j]]} {result.totals[index, j]:.3f}" for j in order)
        print_fn(f"{path}: conventional: {conventional}")
        print_fn(f"{path}: refined: {refined}")
        name = os.path.basename(path)
        figure_path = os.path.join(out_dir, f"{name}_guided_zoom.png")
        _write_checked(figure_path, lambda temporary: plots.plot_evidence_patches(
            result.patches[index], result.scores[index], result.top_classes[index], names, temporary,
            title=f"{name}: conventional {names[result.conventional[index]]}, refined {names[result.refined[index]]} "
                  "(Evidence CNN probability of each row's class)", methods=refiner.methods))
        written.append(figure_path)
    return written


VIDEO_METHODS = ("ceb_r", "eb_r", "bp_r")


def explain_video(clip, model_path, out_dir, method="ceb_r", class_name=None, layer="backbone", print_fn=print):
    """Classify a clip with a CNN-LSTM and ground the class in space and time (thesis ch. 7).

    ``clip``: a folder of frames (``mindgap.data.video``'s clip folders, or any folder of
    images of one size, in name order).  Prints the class (the last step's prediction, or
    ``class_name``) and the localized segment (§7.2: from the highest frame sum, grown until
    a negative sum; for the non-negative ``eb_r``/``bp_r`` the sums minus their mean), and
    writes ``<clip>_<method>.png`` (the frames, their maps, the curve over time) and
    ``<clip>_<method>.json`` into ``out_dir``.  Returns the JSON record.
    """
    import numpy as np

    import mindgap
    from mindgap import recurrent, storage
    from mindgap.data.video import load_checked_clip
    from mindgap.models import load_model_file, model_kind
    from mindgap.plots import plot_clip_grounding
    from mindgap.temporal import frame_sums, localize_unknown_length

    if method not in VIDEO_METHODS:
        raise CliError(f"Unknown method {method!r} for a clip; use one of {', '.join(VIDEO_METHODS)}.")
    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
        raise CliError(f"Model file {model_path!r} does not exist; pass a CNN-LSTM's best.keras (mindgap train Tiny-LSTM).")
    try:
        model = load_model_file(model_path, "Model", fix="pass a CNN-LSTM saved by mindgap (mindgap train Tiny-LSTM)")
    except ValueError as error:
        raise CliError(str(error)) from None
    kind = model_kind(model)
    if kind != "clips":
        raise CliError(f"{model_path!r} is not a CNN-LSTM, which 'mindgap explain-video' takes (Tiny-LSTM: clips in, a class "
                       "per frame; train one with 'mindgap train Tiny-LSTM --data-dir VIDEO_SET'); "
                       f"{_KIND_FITS[kind].format(path=model_path)}.")
    _output_folder(out_dir)
    size = int(model.inputs[0].shape[2])
    # the training check's rules (DatasetError, a ValueError: one line, exit 2)
    clip_record, frames, _ = load_checked_clip(os.fspath(clip), size, num_classes=int(model.output.shape[-1]),
                                               warn=lambda line: print(line, file=sys.stderr))
    class_names = list(model.get_layer(recurrent.PROBABILITIES_LAYER).class_names or
                       [f"class_{index}" for index in range(int(model.output.shape[-1]))])
    clips = (frames.astype(np.float32) / 127.5 - 1.0)[None]
    probabilities = np.asarray(model(clips, training=False))[0]  # (T, c)
    predicted = int(probabilities[-1].argmax())
    if class_name is None:
        index = predicted
    elif class_name in class_names:
        index = class_names.index(class_name)
    else:
        raise CliError(f"Unknown class {class_name!r}; the model's classes: {', '.join(class_names)}.")
    options = {} if method == "bp_r" else {"layer": layer}
    maps = mindgap.saliency.compute(model, clips, [[index]], method=method, **options)[0, ..., 0]
    sums = frame_sums(maps)
    start, end = localize_unknown_length(sums if method == "ceb_r" else sums - sums.mean())
    name = os.path.basename(os.path.normpath(os.fspath(clip)))
    files = [os.path.basename(path) for path in clip_record.frames]
    span = f"frames {start + 1}-{end} of {len(frames)} (files {files[start]}-{files[end - 1]})"
    figure = os.path.join(out_dir, f"{_name_part(name)}_{method}.png")
    label = f"{method} '{class_names[index]}'"
    _write_checked(figure, lambda path: plot_clip_grounding(
        frames, [maps], [label], path, title=f"{name}: {class_names[index]} ({100 * probabilities[-1, index]:.1f} % at the "
        f"last frame), localized in {span}", segments=[(start, end)]))
    record = {"clip": os.path.abspath(os.fspath(clip)), "frames": int(len(frames)), "class": class_names[index],
              "predicted": class_names[predicted], "probability": float(probabilities[-1, index]), "method": method,
              "segment": [int(start), int(end)], "segment_files": [files[start], files[end - 1]],
              "frame_files": files, "frame_scores": [float(value) for value in sums], "figure": figure}
    if clip_record.label >= 0:  # its clip.json: the ground truth beside the answer
        record["ground_truth"] = {"class": class_names[clip_record.label], "segment": list(clip_record.segment)}
    storage.write_json(os.path.join(out_dir, f"{_name_part(name)}_{method}.json"), record)
    print_fn(f"{name}: {class_names[index]} ({100 * probabilities[-1, index]:.1f} %"
             + ("" if index == predicted else f"; predicted {class_names[predicted]}") +
             f"), localized in {span} ({method}); wrote {figure}")
    return record


def _run_explain_caption(args):
    import numpy as np

    from mindgap.explain_caption import explain_caption
    from mindgap.models import load_model_file

    model = load_model_file(args.model, "captioner", "train one with python -m experiments.caption_grounding")
    words = None if args.words is None else [word.strip() for word in args.words.split(",") if word.strip()]
    caption, maps = explain_caption(args.input, model, words, args.out)
    print(" ".join(caption))
    for word, values in maps.items():
        print(f"{word}: peak at (x, y) = {tuple(int(v) for v in np.unravel_index(int(np.argmax(values)), values.shape)[::-1])}")
    print(f"wrote {args.out}")


def _run_explain_video(args):
    explain_video(args.clip, args.model, args.out, method=args.method, class_name=args.class_name, layer=args.layer)


def _run_train(args):
    from mindgap.training import TrainConfig, train

    result = train(args.model, args.data_dir, args.out, **_config_overrides(args, TrainConfig))
    print(f"best model: {result.best_path}")


_DATA_DEFAULTS = dict(format="auto", image_root=None, test_per_class=50, seed=0, val_fraction=0.1, test_fraction=0.1,
                      allow_empty_classes=False)


def _data_settings(args):
    """Data flags of ``evaluate``: given ones, else the training run's ``config.json`` beside the model, else the defaults.

    So a class-folder set without split files is split exactly as it was for training.
    """
    import json

    saved = {}
    config_path = os.path.join(os.path.dirname(os.path.abspath(args.model)), "config.json")
    if os.path.isfile(config_path):
        try:
            with open(config_path) as handle:
                saved = json.load(handle)
        except (OSError, ValueError):
            saved = {}
    return {name: getattr(args, name) if getattr(args, name) is not None else saved.get(name, default)
            for name, default in _DATA_DEFAULTS.items()}


def _run_evaluate(args):
    from mindgap.data import load_dataset, make_dataset
    from mindgap.evaluation import evaluate
    from mindgap.models import model_info

    model = load_mindgap_model(args.model, "evaluate")
    info = model_info(model)
    dataset, _ = load_dataset(args.data_dir, splits=(args.split,), require=(args.split,), skip_bad_images=args.skip_bad_images,
                              allow_train_duplicates=args.allow_train_duplicates, **_data_settings(args))
    if len(dataset.class_names) != info.num_classes:
        raise CliError(f"The model has {info.num_classes} classes but {args.data_dir} has {len(dataset.class_names)}; pass the dataset it was trained on.")
    records = getattr(dataset, args.split)
    data = make_dataset(records, num_classes=info.num_classes, image_size=int(info.input_shape[0]), batch_size=args.batch_size, with_boxes=True)
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


def _run_export(args):
    from mindgap.exporting import export

    model = load_mindgap_model(args.model, "export")
    try:
        path = export(model, args.out, format=args.format)
    except ImportError as error:
        raise CliError(str(error)) from None
    print(f"wrote {path} (outputs: probabilities, cams)", flush=True)


def _run_digits(args):
    from mindgap.data.digits import main as digits_main

    return digits_main([args.out_dir, "--seed", str(args.seed)])


def _served_names(paths):
    """Short unique names for the served models: the file stem, or ``folder/stem`` when two stems clash."""
    stems = [os.path.splitext(os.path.basename(os.fspath(path)))[0] for path in paths]
    names = [stem if stems.count(stem) == 1 else f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}/{stem}" for path, stem in zip(paths, stems)]
    if len(set(names)) != len(names):
        raise CliError(f"Two models would be served under the same name ({', '.join(names)}); pass each file once.")
    return names


def _run_serve(args):
    try:
        import uvicorn

        from mindgap.serve import create_app
    except ImportError as error:
        raise CliError(f"mindgap serve needs {error.name!r}; pip install fastapi uvicorn python-multipart.") from None
    names = _served_names(args.models)
    models = {name: load_mindgap_model(path, "serve") for name, path in zip(names, args.models)}
    app = create_app(models, examples=args.examples, max_upload_bytes=int(args.max_upload_mb * 2**20), cache_images=args.cache_images)
    print(f"serving {', '.join(names)} on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def build_parser():
    from mindgap.training.config import TrainConfig

    parser = argparse.ArgumentParser(prog="mindgap", description="Regularized GAP models: train, evaluate, explain.")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train a model with the paper's recipe")
    train_parser.add_argument("model", help="model name, e.g. Inception-GAP5-L1 or Tiny-GAP5")
    train_parser.add_argument("--data-dir", required=True, help="dataset folder: Stanford 40 (or digits), class folders, or WSOL metadata (--format)")
    train_parser.add_argument("--out", required=True, help="output folder (the same one resumes a run)")
    _add_config_flags(train_parser, TrainConfig)
    train_parser.set_defaults(handler=_run_train)

    evaluate_parser = commands.add_parser("evaluate", help="every classification and localization number of a saved model")
    evaluate_parser.add_argument("--model", required=True)
    evaluate_parser.add_argument("--data-dir", required=True)
    evaluate_parser.add_argument("--out", required=True)
    evaluate_parser.add_argument("--split", choices=("train", "val", "test"), default="test")
    evaluate_parser.add_argument("--batch-size", type=int, default=32)
    data_flags = evaluate_parser.add_argument_group("data (default: the training run's config.json beside the model, else as shown)")
    data_flags.add_argument("--format", choices=("auto", "stanford40", "folders", "wsol"), default=None, help="dataset layout, default auto")
    data_flags.add_argument("--image-root", default=None, help="wsol: the folder the image ids are relative to")
    data_flags.add_argument("--test-per-class", type=int, default=None, help="stanford40: test images per class, default 50")
    data_flags.add_argument("--seed", type=int, default=None, help="folders without split files: split seed, default 0")
    data_flags.add_argument("--val-fraction", type=float, default=None, help="folders without split files, default 0.1")
    data_flags.add_argument("--test-fraction", type=float, default=None, help="folders without split files, default 0.1")
    data_flags.add_argument("--skip-bad-images", action="store_true", help="drop unreadable images and bad boxes with a warning")
    data_flags.add_argument("--allow-train-duplicates", action="store_true", help="an image may be listed twice in train")
    data_flags.add_argument("--allow-empty-classes", action="store_true", default=None,
                            help="folders: a class folder without images is still a class")
    evaluate_parser.set_defaults(handler=_run_evaluate)

    explain_parser = commands.add_parser("explain", help="classify images and show where the evidence is")
    explain_parser.add_argument("target", help="an image or a folder of images")
    explain_parser.add_argument("--model", default=None, help="a .keras file saved by mindgap")
    explain_parser.add_argument("--refiner", default=None, metavar="DIR",
                                help="instead of --model: a Guided Zoom refiner folder; prints the conventional and the "
                                     "refined top classes and writes the evidence patches scored")
    explain_parser.add_argument("--class", dest="class_name", default=None, help="explain this class instead of the top one")
    explain_parser.add_argument("--top", type=int, default=None, help="classes listed per image, >= 1 (default 5)")
    explain_parser.add_argument("--threshold", type=float, default=0.2, help="CAM threshold of the box, fraction of the max, in [0, 1]")
    explain_parser.add_argument("--out", required=True)
    explain_parser.add_argument("--skip-bad-images", action="store_true", help="skip unreadable images of a folder with a warning")
    explain_parser.add_argument("--method", choices=("cam", "gradcam", "rise", "eb", "ceb"), default="cam",
                                help="evidence map of the overlay (mindgap.saliency); default the one-pass CAM")
    explain_parser.set_defaults(handler=_run_explain)

    video_parser = commands.add_parser("explain-video", help="classify a clip with a CNN-LSTM and show where and when the evidence is")
    video_parser.add_argument("clip", help="a folder of frames (a clip of mindgap.data.video, or any images of one size)")
    video_parser.add_argument("--model", required=True, help="a CNN-LSTM .keras file (mindgap train Tiny-LSTM)")
    video_parser.add_argument("--method", choices=VIDEO_METHODS, default="ceb_r",
                              help="saliency through time (default cEB-R, thesis ch. 7)")
    video_parser.add_argument("--class", dest="class_name", default=None, help="ground this class instead of the predicted one")
    video_parser.add_argument("--layer", default="backbone", help="layer of the frame CNN the maps are taken at")
    video_parser.add_argument("--out", required=True)
    video_parser.set_defaults(handler=_run_explain_video)

    caption_parser = commands.add_parser("explain-caption", help="caption an image or clip and map each word (cEB-R)")
    caption_parser.add_argument("input", help="an image, or a folder of frames for a Tiny-Captioner-Clips")
    caption_parser.add_argument("--model", required=True, help="a captioner .keras file (experiments.caption_grounding)")
    caption_parser.add_argument("--words", default=None, help="comma-separated words of the caption (default: its content words)")
    caption_parser.add_argument("--out", required=True, help="the PNG to write (one map per word)")
    caption_parser.set_defaults(handler=_run_explain_caption)

    export_parser = commands.add_parser("export", help="write the model (probabilities and every class's CAM) for another runtime")
    export_parser.add_argument("model", metavar="MODEL.keras", help="a .keras file saved by mindgap")
    export_parser.add_argument("--format", choices=("savedmodel", "litert", "onnx"), default="savedmodel",
                               help="TensorFlow SavedModel (default), LiteRT .tflite or ONNX")
    export_parser.add_argument("--out", required=True, help="output folder (savedmodel/, model.tflite or model.onnx inside)")
    export_parser.set_defaults(handler=_run_export)

    digits_parser = commands.add_parser("digits", help="write the embedded digits localization set")
    digits_parser.add_argument("out_dir")
    digits_parser.add_argument("--seed", type=int, default=0)
    digits_parser.set_defaults(handler=_run_digits)

    serve_parser = commands.add_parser("serve", help="a web page and JSON API: upload an image, see the top-5 and the CAM of any class")
    serve_parser.add_argument("models", nargs="+", metavar="MODEL.keras", help="one or more .keras files saved by mindgap")
    serve_parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only); 0.0.0.0 opens it to the network")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--examples", default=None, help="a folder of example images (default: a few digits canvases)")
    serve_parser.add_argument("--max-upload-mb", type=float, default=32.0, help="larger uploads get HTTP 413")
    serve_parser.add_argument("--cache-images", type=int, default=32, help="images (and their CAMs per model) kept in memory")
    serve_parser.set_defaults(handler=_run_serve)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
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
        from mindgap.training.loop import WorkerLost

        if not isinstance(error, WorkerLost):
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_WORKER_LOST


if __name__ == "__main__":
    sys.exit(main())
