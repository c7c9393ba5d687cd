"""Evidence grounding: is the free CAM of a GAPm head as good as Grad-CAM, RISE, EB and cEB on the same model?

For GAP5, GAP5-L1 and GAP-Zhou (Tiny backbone in quick mode, InceptionV3 with
``--full``), on test images spread over the classes, each method's map of the
**true** class is upsampled to the input size and scored
(``mindgap.saliency.scores`` and ``mindgap.saliency.causal``): pointing game
(15 px), box accuracy at IoU >= 0.5 (Zhou's box at 20 %), MaxBoxAccV2,
centre of mass in a box, insertion and deletion AUCs (Petsiuk et al. 2018),
and the cost per image as seconds and as a multiple of one predict.  Beside
them, the baselines that know no model (``mindgap.saliency.baselines``): the
image's centre, a uniformly random point (its expectation) and a bottom-up
contrast peak; a method is informative only where it beats all three.  Writes
``table.md``, ``results.json``, ``config.json`` and one figure per model
(``grounding_<model>.png``: one row per image, one column per method).
"""

import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import mindgap  # noqa: E402
from experiments import common  # noqa: E402
from mindgap import metrics  # noqa: E402
from mindgap.data import make_dataset  # noqa: E402
from mindgap.data.pipeline import valid_boxes  # noqa: E402
from mindgap.plots import TRUE_BOX_COLOUR, display_image, draw_box, overlay_cam, save_figure  # noqa: E402
from mindgap.saliency import baselines, causal, scores  # noqa: E402
from mindgap.saliency.rise import predictor  # noqa: E402

MODELS = ("Inception-GAP5", "Inception-GAP5-L1", "Inception-GAP-Zhou")
METHODS = tuple(mindgap.saliency.method_names("images", shown=True))  # the registry's: cam, gradcam, rise, eb, ceb
SCORES = (("pointing", "pointing game"), ("box_iou50", "box acc. IoU≥0.5"), ("max_box_acc_v2", "MaxBoxAccV2"),
          ("centre_of_mass", "centre of mass"), ("insertion", "insertion AUC ↑"), ("deletion", "deletion AUC ↓"))
MODE_DEFAULTS = {"quick": dict(images=50, rise_masks=1000, steps=100),
                 "full": dict(images=200, rise_masks=1000, steps=100),
                 "extra-small": dict(images=6, rise_masks=32, steps=8)}


def test_images(mode, dataset, count):
    """(images, labels, boxes per image) of ``count`` test images spread evenly over the test split."""
    picks = np.unique(np.linspace(0, len(dataset.test) - 1, min(count, len(dataset.test))).astype(int))
    records = [dataset.test[index] for index in picks]
    data = make_dataset(records, num_classes=dataset.num_classes, image_size=mode.train["image_size"],
                        batch_size=len(records), with_boxes=True)
    images, one_hot, boxes = next(iter(data))
    return np.asarray(images), np.asarray(one_hot).argmax(axis=-1), [valid_boxes(b) for b in np.asarray(boxes)]


def seconds_per_image(function, images, repeats=1, batch_size=16):
    function(images[:batch_size])  # warm-up: tracing, on every batch shape the timed run will see
    if len(images) > batch_size and len(images) % batch_size:
        function(images[:len(images) % batch_size])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(images)
        best = min(best, time.perf_counter() - started)
    return best / len(images)


def ground_model(model, images, labels, boxes, methods, options, steps, batch_size=16):
    """{method: (maps (n, H, W), numbers)} for one model."""
    predict = predictor(model)
    predict_time = seconds_per_image(
        lambda batch: [np.asarray(predict(batch[start:start + batch_size])) for start in range(0, len(batch), batch_size)],
        images, repeats=3, batch_size=batch_size)
    found = {}
    for method in methods:
        maps_holder = {}

        def run(batch, method=method):
            maps_holder["maps"] = mindgap.saliency.compute(model, batch, labels[:len(batch), None], method=method,
                                                           upsample=True, batch_size=batch_size,
                                                           **options.get(method, {}))[..., 0]

        cost = seconds_per_image(run, images, batch_size=batch_size)
        maps = maps_holder["maps"]
        numbers = scores.localization_scores(maps, boxes)
        causal_scores = causal.insertion_deletion(model, images, maps, labels, steps=steps)
        summary = {key: float(np.mean(numbers[key])) for key in ("pointing", "box_iou50", "centre_of_mass")}
        summary["max_box_acc_v2"] = numbers["max_box_acc_v2"]
        summary["insertion"] = float(causal_scores["insertion"].mean())
        summary["deletion"] = float(causal_scores["deletion"].mean())
        summary["seconds_per_image"] = cost
        summary["cost_vs_predict"] = cost / predict_time
        found[method] = (maps, summary)
    return found, predict_time


def baseline_scores(images, boxes, tolerance=scores.POINTING_TOLERANCE):
    """{baseline: scores} of the centre, a uniform random point and the contrast peak on these images (in [0, 1]).

    The centre's pointing game is the exact centre (``metrics.centre_pointing_hit``), its other scores those of a
    cone peaking there; the random point has only its expected pointing game; the contrast map has every score
    but the causal ones (it is no model's evidence)."""
    shape = images.shape[1:3]
    found = {}
    for name, maps in (("centre", baselines.centre_maps(len(images), shape)), ("contrast", baselines.contrast_maps(images))):
        numbers = scores.localization_scores(maps, boxes, tolerance)
        found[name] = {key: float(np.mean(numbers[key])) for key in ("pointing", "box_iou50", "centre_of_mass")}
        found[name]["max_box_acc_v2"] = numbers["max_box_acc_v2"]
    found["centre"]["pointing"] = float(np.mean([metrics.centre_pointing_hit(b, shape, tolerance) for b in boxes]))
    found["random"] = {"pointing": float(np.mean([metrics.uniform_pointing_expectation(b, shape, tolerance) for b in boxes]))}
    return found


def informative_methods(results, baseline_numbers, key="pointing"):
    """Per model, the methods whose ``key`` beats every baseline's, and the best baseline."""
    best_name = max(baseline_numbers, key=lambda name: baseline_numbers[name].get(key, -1.0))
    best = baseline_numbers[best_name][key]
    return best_name, best, {model: [method for method, values in per_method.items()
                                     if isinstance(values, dict) and values[key] > best]
                             for model, per_method in results.items()}


def plot_grounding(images, labels, boxes, class_names, found, path, title, count=4):
    """One row per image (ground-truth boxes in green), one column per method (the true class's map)."""
    methods = list(found)
    picks = np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).astype(int))  # spread over classes
    figure, axes = plt.subplots(len(picks), len(methods) + 1, figsize=(1.7 * (len(methods) + 1), 1.8 * len(picks)),
                                squeeze=False)
    for row, index in enumerate(picks):
        shown = display_image(images[index])
        framed = shown
        for box in boxes[index]:
            framed = draw_box(framed, box, TRUE_BOX_COLOUR, 1)
        axes[row, 0].imshow(framed)
        axes[row, 0].set_title(class_names[labels[index]][:14], fontsize=7)
        for column, method in enumerate(methods, start=1):
            axes[row, column].imshow(overlay_cam(shown, scores.min_max(found[method][0][index])))
            if row == 0:
                axes[row, column].set_title(method, fontsize=8)
        for axis in axes[row]:
            axis.axis("off")
    return save_figure(figure, path, title)


def markdown_table(results, methods, baseline_numbers=None):
    header = "| model | method | " + " | ".join(label for _, label in SCORES) + " | s / image | × predict |"
    lines = [header, "|" + "---|" * (len(SCORES) + 4)]
    for name, values in (baseline_numbers or {}).items():
        cells = [f"{100 * values[key]:.1f}" if key in values else "–" for key, _ in SCORES]
        lines.append(f"| no model | baseline: {name} | " + " | ".join(cells) + " | – | – |")
    for name, per_method in results.items():
        for method in methods:
            values = per_method[method]
            cells = [f"{100 * values[key]:.1f}" for key, _ in SCORES]
            lines.append(f"| {name} | {method} | " + " | ".join(cells) +
                         f" | {values['seconds_per_image']:.4f} | {values['cost_vs_predict']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = common.main_parser(__doc__)
    parser.add_argument("--images", type=int, default=None, help="test images (quick 50, full 200)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from " + ", ".join(METHODS))
    parser.add_argument("--rise-masks", type=int, default=None, help="RISE's N (default 1000; the paper's 4000)")
    parser.add_argument("--steps", type=int, default=None, help="insertion/deletion steps (default 100)")
    parser.add_argument("--layer", default="backbone", help="layer of Grad-CAM, EB and cEB (default: the backbone's output)")
    parser.add_argument("--figure-images", type=int, default=4)
    args = parser.parse_args(argv)
    mode = common.resolve_mode(args)
    defaults = MODE_DEFAULTS[mode.name]
    count = args.images or defaults["images"]
    steps = args.steps or defaults["steps"]
    methods = [method.strip() for method in args.methods.split(",") if method.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; use some of {', '.join(METHODS)}.")
    options = {method: {"layer": args.layer} if mindgap.saliency.METHODS[method].takes_layer else {} for method in METHODS}
    options["rise"] = dict(num_masks=args.rise_masks or defaults["rise_masks"])
    dataset = common.prepare_data(mode)
    out_dir = common.output_dir(mode, "grounding")
    images, labels, boxes = test_images(mode, dataset, count)
    baseline_numbers = baseline_scores(images, boxes)
    results, figures, starts = {}, {}, {}
    for paper_name in MODELS:
        name = mode.model_name(paper_name)
        print(f"== {name}", flush=True)
        model, run_dir, _ = common.trained_model(mode, name)
        found, predict_time = ground_model(model, images, labels, boxes, methods, options, steps)
        results[name] = {method: summary for method, (_, summary) in found.items()}
        results[name]["predict_seconds_per_image"] = predict_time
        starts[name] = common.describe_start(mode, name)
        figures[name] = plot_grounding(images, labels, boxes, dataset.class_names, found,
                                       os.path.join(out_dir, f"grounding_{name}.png"),
                                       f"{name}: true-class evidence per method", args.figure_images)
    best_baseline, best_value, informative = informative_methods(results, baseline_numbers)
    markdown = "\n".join([
        "## grounding: the one-pass CAM beside Grad-CAM, RISE, EB and cEB",
        "",
        markdown_table(results, methods, baseline_numbers),
        "",
        f"Best baseline on the pointing game: {best_baseline} ({100 * best_value:.1f} %). Above it: " + "; ".join(
            f"{name}: {', '.join(found) or 'none'}" for name, found in informative.items()) + ".",
        "",
        f"*{common.caption(mode, dataset)} Grounding on {len(images)} test images spread over the classes, maps of "
        "the true class upsampled to the input size.*",
        *[f"- {name}: {start}" for name, start in starts.items()],
        f"- Grad-CAM, EB and cEB at layer {args.layer!r}; RISE with N = {options['rise']['num_masks']}, s = 7, p = 0.5; "
        f"insertion/deletion with {steps} steps (deletion to mid-grey, insertion from a blurred image).",
        f"- Scores in %: pointing game (max within 15 · {min(images.shape[1:3])} / 224 = "
        f"{metrics.pointing_tolerance('scaled', images.shape[1:3]):.1f} px of a box), Zhou's box at 20 % of the min-max range with "
        "IoU ≥ 0.5, MaxBoxAccV2 (Choe et al. 2020), centre of mass in a box; insertion (higher is better) and "
        "deletion (lower is better) AUCs of the true-class probability.",
        "- Baselines (no model): the image's centre (pointing: the exact centre; other scores: a cone peaking there), a "
        "uniformly random point (its expected pointing game), the bottom-up contrast peak (centre-surround contrast of "
        "the luminance, `mindgap.saliency.baselines.contrast_maps`).",
        "- Cost: seconds per image for the maps of one class (batches of 16, tracing excluded), and as a multiple of "
        "one predict on the same batches.",
        "",
        "Figures: " + ", ".join(figures.values()),
    ])
    config = {"experiment": "grounding", "models": list(MODELS), "methods": methods, "images": len(images),
              "steps": steps, "options": options}
    common.write_outputs(out_dir, mode, config, {**results, "baselines": baseline_numbers}, markdown)
    return results


if __name__ == "__main__":
    common.run_main(main)
