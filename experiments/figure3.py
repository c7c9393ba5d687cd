"""Figure 3: all class CAMs of one test image for each of the six models, one shared maximum per image and model."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import mindgap  # noqa: E402
from experiments import common  # noqa: E402
from mindgap.data import load_image  # noqa: E402
from mindgap.evaluation import cam_mass_on_class  # noqa: E402
from mindgap.plots import plot_cam_grid, save_figure  # noqa: E402


def cams_of_models(mode, dataset, paper_names, image_index=0):
    """{paper name: (model name, probabilities, cams (h, w, c))} for one test image, and the image."""
    record = dataset.test[image_index % len(dataset.test)]
    image, shown = load_image(record.path, mode.train["image_size"])
    found = {}
    for paper_name in paper_names:
        name = mode.model_name(paper_name)
        model, _, _ = common.trained_model(mode, name)
        probs, cams = mindgap.cam_model(model).predict(image[None], verbose=0)
        found[paper_name] = (name, probs[0], cams[0])
    return record, shown, found


def plot_figure3(shown, found, class_names, path, true_label):
    """Rows = models, columns = classes; each row divided by its own maximum (the paper's normalisation)."""
    count = len(class_names)
    figure, axes = plt.subplots(len(found), count + 1, figsize=(1.1 * (count + 1), 1.25 * len(found)), squeeze=False)
    for row, (paper_name, (name, probs, cams)) in zip(axes, found.items()):
        positive = np.maximum(cams, 0)
        peak = float(positive.max()) or 1.0
        row[0].imshow(shown)
        row[0].set_ylabel(name, fontsize=6)
        for column, axis in enumerate(row[1:]):
            axis.imshow(positive[..., column], cmap="jet", vmin=0, vmax=peak)
            if axis in axes[0]:
                axis.set_title(class_names[column][:10], fontsize=6, fontweight="bold" if column == true_label else "normal")
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    title = f"All class CAMs per model (true class: {class_names[true_label]}); each row / its own max"
    return save_figure(figure, path, title, dpi=110)


def make_figure3(mode, dataset, paper_names, out_dir, image_index=0):
    record, shown, found = cams_of_models(mode, dataset, paper_names, image_index)
    path = plot_figure3(shown, found, dataset.class_names, os.path.join(out_dir, "figure3.png"), record.label)
    results = {}
    for paper_name, (name, probs, cams) in found.items():
        plot_cam_grid(shown, cams, dataset.class_names, os.path.join(out_dir, f"figure3_{name}.png"),
                      title=name, highlight=record.label)
        results[paper_name] = {"model": name, "image": record.path, "true_class": dataset.class_names[record.label],
                               "predicted_class": dataset.class_names[int(np.argmax(probs))],
                               "cam_mass_on_true_class": float(cam_mass_on_class(cams[None], [record.label])[0])}
    return path, results


def main(argv=None):
    parser = common.main_parser(__doc__)
    parser.add_argument("--image-index", type=int, default=0, help="which test image")
    args = parser.parse_args(argv)
    mode = common.resolve_mode(args)
    dataset = common.prepare_data(mode)
    out_dir = common.output_dir(mode, "figure3")
    _, results = make_figure3(mode, dataset, common.PAPER_MODELS, out_dir, args.image_index)
    lines = ["## figure3", "", "| model | predicted | share of positive CAM mass on the true class |", "|---|---|---|"]
    lines += [f"| {r['model']} | {r['predicted_class']} | {100 * r['cam_mass_on_true_class']:.1f} % |" for r in results.values()]
    lines += ["", f"*{common.caption(mode, dataset)} Image: {next(iter(results.values()))['image']}.*",
              "- Paper (Figure 3, qualitative): with L1 the CAMs of absent classes are close to zero; with L2 they are not."]
    common.write_outputs(out_dir, mode, {"experiment": "figure3", "image_index": args.image_index}, results, "\n".join(lines))


if __name__ == "__main__":
    common.run_main(main)
