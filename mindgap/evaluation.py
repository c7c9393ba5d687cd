"""Evaluate a trained model in one pass: probabilities and CAMs from the same forward pass.

``evaluate(model, dataset)`` takes a dataset from ``make_dataset(..., with_boxes=True)`` and returns an
:class:`EvaluationReport` with every classification and localization number of ``mindgap.metrics``.  CAMs of the
true and of the predicted class are upsampled (bilinear) to the input size batch by batch, so memory stays bounded.
"""

import dataclasses

import numpy as np

from mindgap import metrics, storage
from mindgap.cam import cam_model, upsample_map
from mindgap.data.pipeline import valid_boxes
from mindgap.models import model_info
from mindgap.plots import plot_iou_curves

ZHOU_BOX_THRESHOLD = 0.2  # Zhou et al.'s 20 % of the max
LOCALIZATION_SKIPPED = "localization measures skipped: no image of this split has a ground-truth box"


def _class_maps(cams, class_indices):
    """(b, h, w, c) CAMs → (b, h, w) maps of one class per image."""
    return np.take_along_axis(cams, np.asarray(class_indices)[:, None, None, None], axis=-1)[..., 0]


def cam_mass_on_class(cams, labels):
    """Share of each image's positive CAM mass (``cams`` (batch, h, w, c)) on class ``labels[i]`` (0 when there is
    none): the sparsity number of the paper's Figure 3 claim, L1 CAMs leave absent classes near zero."""
    positive = np.maximum(np.asarray(cams), 0).sum(axis=(1, 2))
    total = positive.sum(axis=-1)
    on_class = positive[np.arange(len(positive)), np.asarray(labels)]
    return np.where(total > 0, on_class / np.where(total > 0, total, 1), 0.0)


def batch_measures(probs, cams, labels, boxes, image_size, thresholds, *, box_threshold=ZHOU_BOX_THRESHOLD,
                   pointing_tolerance="scaled", with_max_box_acc_v2=False):
    """Per-image localization measures of one batch, from one forward pass.

    Args:
        probs: (b, c) probabilities; cams: (b, h, w, c) CAMs at the maps' resolution.
        labels: (b,) true classes.
        boxes: (b, k, 4) padded ground-truth boxes in input-image pixels.
        image_size: side of the square input; CAMs are upsampled to it.
        thresholds: CAM thresholds (fractions of the max) of the paper's box.

    Returns:
        dict of per-image arrays: ``correct``, ``com_true`` / ``com_pred`` (centre-of-mass hits of the true /
        predicted class's CAM), ``iou_true`` / ``iou_pred`` (b, T) best IoU of the paper's box, ``zhou_true`` /
        ``zhou_pred`` (Zhou's box at ``box_threshold``), ``pointing``, ``mass_true`` (share of positive CAM mass on the
        true class), and ``v2_true`` (b, T) when asked.  ``boxed`` marks the images with a ground-truth box; the box
        measures (and ``correct_boxed``) cover those only, and are absent when no image of the batch has a box.
    """
    probs, cams, labels = np.asarray(probs), np.asarray(cams), np.asarray(labels)
    predictions = probs.argmax(axis=-1)
    correct = predictions == labels
    all_gt = [valid_boxes(image_boxes) for image_boxes in np.asarray(boxes)]
    boxed = np.flatnonzero([len(g) > 0 for g in all_gt])  # the localization measures need a box
    measures = {"labels": labels, "probs": probs, "correct": correct, "mass_true": cam_mass_on_class(cams, labels),
                "boxed": np.isin(np.arange(len(labels)), boxed)}
    if len(boxed) == 0:
        return measures
    gt = [all_gt[index] for index in boxed]
    true_maps = upsample_map(_class_maps(cams[boxed], labels[boxed]), (image_size, image_size))
    predicted_maps = upsample_map(_class_maps(cams[boxed], predictions[boxed]), (image_size, image_size))
    measures.update({
        "correct_boxed": correct[boxed],
        "com_true": np.array([metrics.center_of_mass_hit(cam, g) for cam, g in zip(true_maps, gt)]),
        "com_pred": np.array([metrics.center_of_mass_hit(cam, g) for cam, g in zip(predicted_maps, gt)]),
        "iou_true": metrics.iou_over_thresholds(true_maps, gt, thresholds),
        "iou_pred": metrics.iou_over_thresholds(predicted_maps, gt, thresholds),
        "zhou_true": metrics.iou_over_thresholds(true_maps, gt, [box_threshold], "largest_component")[:, 0],
        "zhou_pred": metrics.iou_over_thresholds(predicted_maps, gt, [box_threshold], "largest_component")[:, 0],
        "pointing": np.array([metrics.pointing_game_hit(cam, g, pointing_tolerance) for cam, g in zip(true_maps, gt)]),
    })
    if with_max_box_acc_v2:
        measures["v2_true"] = metrics.all_contours_iou_over_thresholds(true_maps, gt, thresholds)
    return measures


@dataclasses.dataclass
class EvaluationReport:
    """Every number of one evaluation; ``to_dict`` / ``save_json`` / ``to_markdown`` / ``plot_iou_curve``."""

    model_name: str
    num_images: int
    classification: dict
    localization: dict
    thresholds: list
    iou_curve_true: list
    iou_curve_pred: list
    per_class: list
    confusion: list
    notes: list = dataclasses.field(default_factory=list)  # e.g. localization skipped: no image has a box

    def to_dict(self):
        return dataclasses.asdict(self)

    def save_json(self, path):
        storage.write_json(path, self.to_dict())  # atomically: a kill leaves the previous report or none

    def to_markdown(self):
        rows = [("accuracy (top-1)", self.classification["accuracy"]), ("top-5 accuracy", self.classification["top5"]),
                ("precision (Keras 1)", self.classification["precision"]), ("recall (Keras 1)", self.classification["recall"]),
                ("MaP", self.classification["map"])]
        rows += [(name.replace("_", " "), value) for name, value in self.localization.items() if not name.endswith("threshold")]
        lines = [f"| {self.model_name} ({self.num_images} images) | % |", "|---|---|"]
        lines += [f"| {name} | {100 * value:.1f} |" for name, value in rows]
        return "\n".join(lines + [f"\n{note}" for note in self.notes])

    def plot_iou_curve(self, path):
        """Write the IoU-vs-threshold figure; returns None (and writes nothing) when no image had a box."""
        if not self.iou_curve_true:
            return None
        plot_iou_curves({f"{self.model_name} (true class)": self.iou_curve_true,
                         f"{self.model_name} (prediction)": self.iou_curve_pred}, self.thresholds, path)


def evaluate(model, dataset, *, thresholds=metrics.DEFAULT_THRESHOLDS, box_threshold=ZHOU_BOX_THRESHOLD,
             pointing_tolerance="scaled", with_max_box_acc_v2=True, progress=True):
    """Classification and localization report of ``model`` on ``dataset`` in a single pass.

    Args:
        model: a mindgap model (or its ``cam_model``).
        dataset: batches ``(images, one-hot labels, padded boxes)`` from ``make_dataset(..., with_boxes=True)``.
        thresholds: CAM thresholds (fractions of the max) for the IoU curve (Figure 4) and MaxBoxAcc.
        box_threshold: threshold of Zhou's box (largest component) for GT-known Loc and Top-1 Loc (Hide-and-Seek's).
        pointing_tolerance: slack of the pointing game: ``"scaled"`` (15 px · side / 224),
            ``"fixed"`` (15 px) or pixels (:func:`mindgap.metrics.pointing_tolerance`).
        with_max_box_acc_v2: also compute MaxBoxAccV2 (all contours; slower).
        progress: show a progress bar.
    """
    from tqdm.auto import tqdm  # an optional dependency, loaded only to show progress

    info = model_info(model)
    explainer = model if len(model.outputs) == 2 else cam_model(model)
    image_size = int(info.input_shape[0])
    thresholds = np.asarray(thresholds, dtype=np.float64)
    gathered = {}
    for images, one_hot, boxes in tqdm(dataset, desc="evaluate", unit="batch", disable=not progress):
        probs, cams = explainer(images, training=False)
        measures = batch_measures(probs, cams, np.asarray(one_hot).argmax(axis=-1), boxes, image_size, thresholds,
                                  box_threshold=box_threshold, pointing_tolerance=pointing_tolerance,
                                  with_max_box_acc_v2=with_max_box_acc_v2)
        for key, value in measures.items():
            gathered.setdefault(key, []).append(value)
    if not gathered:
        raise ValueError("The dataset is empty; nothing to evaluate.")
    data = {key: np.concatenate(parts) for key, parts in gathered.items()}
    labels, probs = data["labels"], data["probs"]
    precision, recall = metrics.precision_recall_keras1(labels, probs)
    classification = {"accuracy": metrics.top_k_accuracy(labels, probs, 1),
                      "top5": metrics.top_k_accuracy(labels, probs, min(5, probs.shape[1])), "precision": precision,
                      "recall": recall, "map": metrics.mean_average_precision(labels, probs)}
    localization, curve_true, curve_pred, notes = _localization(data, thresholds)
    return EvaluationReport(model_name=model.name.removesuffix("-cam"), num_images=int(len(labels)),
                            classification=classification, localization=localization, thresholds=thresholds.tolist(),
                            iou_curve_true=curve_true.tolist(), iou_curve_pred=curve_pred.tolist(),
                            per_class=metrics.per_class_table(labels, probs, list(info.class_names)),
                            confusion=metrics.confusion_matrix(labels, probs).tolist(), notes=notes)


def _localization(data, thresholds):
    """(localization measures, IoU curves of the true class and of the prediction, notes) from the gathered
    per-image measures of :func:`batch_measures`."""
    labels = data["labels"]
    notes, localization = [], {"cam_mass_on_true_class": float(data["mass_true"].mean())}
    boxed = int(data["boxed"].sum())
    if boxed == 0:
        return localization, np.zeros(0), np.zeros(0), [LOCALIZATION_SKIPPED]
    if boxed < len(labels):
        notes.append(f"localization measures over the {boxed} of {len(labels)} images that have a box")
    correct_boxed = data["correct_boxed"]
    curve_true = (data["iou_true"] > 0.5).mean(axis=0)
    curve_pred = ((data["iou_pred"] > 0.5) & correct_boxed[:, None]).mean(axis=0)
    best_true, best_pred = int(np.argmax(curve_true)), int(np.argmax(curve_pred))
    localization = {
        "com_ground_truth": float(data["com_true"].mean()),
        "com_prediction": float((data["com_pred"] & correct_boxed).mean()),
        "best_box_iou50_true": float(curve_true[best_true]),
        "best_box_iou50_true_threshold": float(thresholds[best_true]),
        "best_box_iou50_pred": float(curve_pred[best_pred]),
        "best_box_iou50_pred_threshold": float(thresholds[best_pred]),
        "gt_known_loc": float((data["zhou_true"] >= 0.5).mean()),
        "top1_loc": float(((data["zhou_pred"] >= 0.5) & correct_boxed).mean()),
        # Choe et al.'s rule (IoU >= 0.5; the Figure 4 curves above use the paper's IoU > 0.5), the paper's box
        "max_box_acc": float((data["iou_true"] >= 0.5).mean(axis=0).max()),
        "pointing_game": float(data["pointing"].mean()),
        **localization,
    }
    if "v2_true" in data:
        localization["max_box_acc_v2"] = float(np.mean([(data["v2_true"] >= delta).mean(axis=0).max()
                                                        for delta in metrics.CHOE_IOU_THRESHOLDS]))
    return localization, curve_true, curve_pred, notes
