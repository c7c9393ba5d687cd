"""The ``mindgap`` command: ``train``, ``evaluate``, ``explain`` and ``digits``.

Bad input (a missing file, a file that is not an image, a ``.keras`` file that
is not a mindgap model, an unknown class, an empty folder, a broken dataset)
ends with one line on stderr and exit code 2.
"""

import argparse
import dataclasses
import os
import sys
import zipfile

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def _add_config_flags(parser, config_class):
    """One ``--flag`` per config field, typed from its default."""
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"default {default}")
        elif default is None or isinstance(default, str):
            parser.add_argument(flag, type=str, default=None, help=f"default {default!r}")
        else:
            parser.add_argument(flag, type=type(default), default=None, help=f"default {default}")


def _config_overrides(args, config_class):
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class) if getattr(args, field.name) is not None}


def load_mindgap_model(path):
    """Load a ``.keras`` file and check that it is a mindgap model, or raise ``CliError``."""
    import keras

    from mindgap.models import model_info

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CliError(f"Model file {path!r} does not exist; pass the best.keras written by 'mindgap train'.")
    if not zipfile.is_zipfile(path):
        raise CliError(f"{path!r} is not a .keras model file; pass a model saved with model.save('name.keras').")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for foreign or broken files
        raise CliError(f"{path!r} could not be loaded as a mindgap model ({type(error).__name__}); pass a model saved by mindgap.") from None
    try:
        model_info(model)
    except ValueError as error:
        raise CliError(str(error)) from None
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


def _method_maps(model, images, probabilities, class_index, method):
    """One map per image (min-max normalised, at the maps' own resolution) of ``method`` (mindgap.saliency)."""
    import numpy as np

    from mindgap import saliency

    if method not in saliency.METHODS:
        raise CliError(f"Unknown method {method!r}; use one of {', '.join(saliency.METHODS)}.")
    classes = np.asarray(probabilities).argmax(axis=-1) if class_index is None else np.full(len(images), class_index)
    maps = saliency.compute(model, images, classes[:, None], method=method)[..., 0]
    return [saliency.scores.min_max(one) for one in maps]


def explain(target, model_path, out_dir, class_name=None, top=5, threshold=0.2, print_fn=print, method="cam"):
    """Top-k classes of each image, and per image an overlay of the evidence map of ``method`` (default the CAM)
    with its box, and a grid of all class CAMs."""
    import numpy as np

    from mindgap import plots
    from mindgap.cam import cam_model, upsample_map
    from mindgap.data.pipeline import load_image
    from mindgap.metrics import cam_to_box
    from mindgap.models import model_info

    model = load_mindgap_model(model_path)
    info = model_info(model)
    if class_name is not None and class_name not in info.class_names:
        raise CliError(f"Unknown class {class_name!r}; this model knows: {', '.join(info.class_names)}.")
    paths = _image_paths(target)
    size = int(info.input_shape[0])
    loaded = []
    for path in paths:
        try:
            loaded.append(load_image(path, size))
        except ValueError as error:
            raise CliError(str(error)) from None
    os.makedirs(out_dir, exist_ok=True)
    explainer = cam_model(model)
    probabilities, cams = explainer.predict(np.stack([image for image, _ in loaded]), verbose=0)
    method_maps = None if method == "cam" else dict(zip(paths, _method_maps(
        model, np.stack([image for image, _ in loaded]), probabilities,
        None if class_name is None else info.class_names.index(class_name), method)))
    written = []
    for path, (_, shown), probs, image_cams in zip(paths, loaded, probabilities, cams):
        order = np.argsort(-probs)[: max(1, top)]
        ranking = ", ".join(f"{info.class_names[index]} {probs[index]:.3f}" for index in order)
        print_fn(f"{path}: {ranking}")
        chosen = info.class_names.index(class_name) if class_name is not None else int(order[0])
        upsampled = upsample_map(image_cams[..., chosen] if method_maps is None else method_maps[path], shown.shape[:2])
        overlay = plots.draw_box(plots.overlay_cam(shown, upsampled), cam_to_box(upsampled, threshold), plots.CAM_BOX_COLOUR, 2)
        stem = os.path.splitext(os.path.basename(path))[0]
        overlay_path = os.path.join(out_dir, f"{stem}_{info.class_names[chosen]}_overlay.png")
        plots.save_rgb(overlay, overlay_path)
        grid_path = plots.plot_cam_grid(shown, image_cams, info.class_names, os.path.join(out_dir, f"{stem}_all_cams.png"),
                                        title=f"{os.path.basename(path)}: all class CAMs", highlight=chosen)
        written += [overlay_path, grid_path]
    return written


def _run_train(args):
    from mindgap.training import TrainConfig, train

    result = train(args.model, args.data_dir, args.out, **_config_overrides(args, TrainConfig))
    print(f"best model: {result.best_path}")


def _run_evaluate(args):
    from mindgap.data import make_dataset, read_stanford40
    from mindgap.evaluation import evaluate
    from mindgap.models import model_info

    model = load_mindgap_model(args.model)
    info = model_info(model)
    dataset = read_stanford40(args.data_dir, test_per_class=args.test_per_class)
    if len(dataset.class_names) != info.num_classes:
        raise CliError(f"The model has {info.num_classes} classes but {args.data_dir} has {len(dataset.class_names)}; pass the dataset it was trained on.")
    records = getattr(dataset, args.split)
    data = make_dataset(records, num_classes=info.num_classes, image_size=int(info.input_shape[0]), batch_size=args.batch_size, with_boxes=True)
    report = evaluate(model, data)
    os.makedirs(args.out, exist_ok=True)
    report.save_json(os.path.join(args.out, "report.json"))
    report.plot_iou_curve(os.path.join(args.out, "iou_curve.png"))
    print(report.to_markdown())


def _run_explain(args):
    explain(args.target, args.model, args.out, class_name=args.class_name, top=args.top, threshold=args.threshold,
            method=args.method)


def _run_digits(args):
    from mindgap.data.digits import main as digits_main

    return digits_main([args.out_dir, "--seed", str(args.seed)])


def build_parser():
    from mindgap.training.config import TrainConfig

    parser = argparse.ArgumentParser(prog="mindgap", description="Regularized GAP models: train, evaluate, explain.")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train a model with the paper's recipe")
    train_parser.add_argument("model", help="model name, e.g. Inception-GAP5-L1 or Tiny-GAP5")
    train_parser.add_argument("--data-dir", required=True, help="Stanford 40 (or digits) folder")
    train_parser.add_argument("--out", required=True, help="output folder (the same one resumes a run)")
    _add_config_flags(train_parser, TrainConfig)
    train_parser.set_defaults(handler=_run_train)

    evaluate_parser = commands.add_parser("evaluate", help="every classification and localization number of a saved model")
    evaluate_parser.add_argument("--model", required=True)
    evaluate_parser.add_argument("--data-dir", required=True)
    evaluate_parser.add_argument("--out", required=True)
    evaluate_parser.add_argument("--split", choices=("train", "val", "test"), default="test")
    evaluate_parser.add_argument("--test-per-class", type=int, default=50)
    evaluate_parser.add_argument("--batch-size", type=int, default=32)
    evaluate_parser.set_defaults(handler=_run_evaluate)

    explain_parser = commands.add_parser("explain", help="classify images and show where the evidence is")
    explain_parser.add_argument("target", help="an image or a folder of images")
    explain_parser.add_argument("--model", required=True, help="a .keras file saved by mindgap")
    explain_parser.add_argument("--class", dest="class_name", default=None, help="explain this class instead of the top one")
    explain_parser.add_argument("--top", type=int, default=5)
    explain_parser.add_argument("--threshold", type=float, default=0.2, help="CAM threshold of the box, fraction of the max")
    explain_parser.add_argument("--out", required=True)
    explain_parser.add_argument("--method", choices=("cam", "gradcam", "rise", "eb", "ceb"), default="cam",
                                help="evidence map of the overlay (mindgap.saliency); default the one-pass CAM")
    explain_parser.set_defaults(handler=_run_explain)

    digits_parser = commands.add_parser("digits", help="write the embedded digits localization set")
    digits_parser.add_argument("out_dir")
    digits_parser.add_argument("--seed", type=int, default=0)
    digits_parser.set_defaults(handler=_run_digits)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except (CliError, ValueError, FileExistsError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
