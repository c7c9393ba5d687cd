"""Classification and localization measures: the paper's (§4) and the standard WSOL ones.

Pure functions on numpy arrays.  Conventions, used everywhere here:

* Labels are integer class indices; ``probs`` is (n, c).
* A box is ``(x_min, y_min, x_max, y_max)`` in **pixel-edge coordinates**:
  0-based, ends exclusive, so a box covers the pixel columns ``x_min … x_max - 1`` and its area is ``(x_max - x_min) *
  (y_max - y_min)``.  Stanford 40's 1-based inclusive ``[a, b]`` is ``[a - 1, b)`` here.  A point (centre of mass, CAM
  maximum) is in the same frame: pixel ``i`` has its centre at ``i + 0.5``.
* A CAM is a 2-D map on its own pixel grid.  Evidence is its positive part:
  negative values (possible in Zhou CAMs) are clipped to 0 and the map is divided by its maximum before thresholding.
  A map whose maximum is not positive has no box (``(0, 0, 0, 0)``, IoU 0) and no centre of mass.  Choe et al. (2020)
  min-max normalise instead; the two agree on any non-negative map whose minimum is 0.
* ``threshold`` is a fraction of the maximum: a pixel is kept when ``cam >= threshold * max`` and ``cam > 0`` (so t =
  0 keeps all evidence, not the whole image, and t = 1 keeps the maximum).
* Components are 8-connected (OpenCV's ``connectedComponentsWithStats``
  with connectivity 8; ``findContours`` follows 8-connected borders too).

Hit rules, per measure:

===============================  ==================================  =============================================
measure                          a hit when                          source
===============================  ==================================  =============================================
MaxBoxAcc (:func:`max_box_acc`)  best IoU >= δ (δ = 0.5)             Choe et al. 2020 and their code
                                 ``inclusive=False``: IoU > δ        the paper's Figure 4 ("over 50 %")
MaxBoxAccV2                      best IoU >= δ, δ in {.3, .5, .7}    Choe et al. 2020 and their code
GT-known / Top-1 Loc             IoU >= 0.5 (Zhou's box, t = 0.2)    Zhou et al., Hide-and-Seek
pointing game                    distance <= τ, τ = 15 px · min(H,   Zhang et al. 2016 (:func:`pointing_game_hit`);
                                 W) / 224 (``"scaled"``) or 15 px    τ scaled with the input
                                 (``"fixed"``)
                                 ``convention="torchray"``: < τ      TorchRay's ``PointingGame``
centre of mass                   inside a ground-truth box           the paper, Table 4
temporal mAP                     segment IoU >= δ (δ = 0.5), each    Table 7.2 (:func:`temporal_average_precision`);
(:func:`temporal_mean_ap`)       GT matched once, by score           VOC all-point AP per class, mean over classes
temporal pointing game           the peak frame is inside the GT     Table 7.3 (:func:`temporal_pointing_hit`)
                                 segment ``[start, end)``
===============================  ==================================  =============================================

Boxes from a CAM differ from Choe et al.'s ``wsolevaluation`` code by design:

==================  ===========================================  ==========================================
                    mindgap                                      wsolevaluation
==================  ===========================================  ==========================================
box ends            pixel edges, exclusive: ``x + w``            ``x + w`` clipped to ``width - 1``, then
                                                                 IoU with ``+ 1`` (inclusive ends)
map values          float, positive part / max                   ``uint8(255 · map)`` of a min-max
                                                                 normalised map; a pixel is kept when
                                                                 its value is ``> int(t · max)``
t = 0               all positive evidence                        every pixel with ``255 · map >= 1``
t = 1               the pixels at the maximum: a box             nothing kept: box ``(0, 0, 0, 0)``
largest contour     largest ``contourArea``, ties: larger box    largest ``contourArea``, ties: first
==================  ===========================================  ==========================================

Speed: the component and contour boxes of every threshold come from one pass over the pixels
(``mindgap._component_tree``), equal to one OpenCV call per threshold (the ``_reference_*`` functions, kept for the
tests); evaluations over many images run on threads (``workers``).
"""

import numbers
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix as _sk_confusion_matrix

from mindgap.cores import usable_cores

BOX_METHODS = ("paper", "largest_component", "largest_contour")
EMPTY_BOX = np.zeros(4, dtype=np.float64)
DEFAULT_THRESHOLDS = np.linspace(0.0, 1.0, 101)
CHOE_IOU_THRESHOLDS = (0.3, 0.5, 0.7)


# ----------------------------------------------------------------- validation
def _check_labels_probs(labels, probs):
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if labels.size == 0 or probs.size == 0:
        raise ValueError("labels and probs are empty; pass at least one sample.")
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (n, num_classes), got {probs.shape}.")
    if labels.ndim != 1 or len(labels) != len(probs):
        raise ValueError(f"labels has shape {labels.shape} but probs has {len(probs)} rows; pass one label per row.")
    if np.isnan(probs).any():
        raise ValueError("probs contains NaN; check the model's outputs.")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must be in [0, {probs.shape[1] - 1}], got values from {labels.min()} to {labels.max()}.")
    return labels.astype(np.int64), probs


def _check_cam(cam):
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"A CAM must be a non-empty 2-D map (h, w), got shape {cam.shape}.")
    if np.isnan(cam).any():
        raise ValueError("The CAM contains NaN; check the model's outputs.")
    return cam


def _check_boxes(boxes):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        raise ValueError("An image has no ground-truth box; every image needs at least one.")
    return boxes


def _check_cams_boxes(cams, boxes_per_image):
    if len(cams) == 0:
        raise ValueError("cams is empty; pass at least one CAM.")
    if len(cams) != len(boxes_per_image):
        raise ValueError(f"{len(cams)} CAMs but {len(boxes_per_image)} box lists; pass one box list per CAM.")


def _evidence_mask(normalized, threshold):
    return ((normalized >= threshold) & (normalized > 0)).astype(np.uint8)


def _normalized(cam):
    """Positive part divided by the maximum; None when there is no positive evidence."""
    cam = np.maximum(_check_cam(cam), 0.0)
    peak = cam.max()
    return None if peak <= 0 else cam / peak


# ------------------------------------------------------------- classification
def top_k_accuracy(labels, probs, k=1):
    """Share of samples whose true class is among the k highest probabilities."""
    labels, probs = _check_labels_probs(labels, probs)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def precision_recall_keras1(labels, probs):
    """Precision and recall as Keras 1 computed them (paper §4).

    A label counts as predicted when its probability is over 0.5; both are micro-averaged over the one-hot matrix:
    precision = TP / #(p > 0.5), recall = TP / #positives.  Keras 1 averaged these per batch during ``evaluate``; here
    they are computed over the whole set at once.  With no predicted label at all the precision is 0 (Keras 1's
    epsilon gave 0 too).
    """
    labels, probs = _check_labels_probs(labels, probs)
    predicted = probs > 0.5
    true_positives = predicted[np.arange(len(labels)), labels].sum()
    precision = true_positives / predicted.sum() if predicted.any() else 0.0
    return float(precision), float(true_positives / len(labels))


def mean_average_precision(labels, probs):
    """MaP: the mean over classes of scikit-learn's average precision of each class's scores.

    Classes with no positive sample are left out of the mean.  The paper's MaP (63.8 % for GAP5) is below its accuracy
    (75.9 %), which this standard definition rarely gives; its exact computation is not stated, so the numbers may
    differ from the paper's for that reason alone.
    """
    labels, probs = _check_labels_probs(labels, probs)
    scores = [
        average_precision_score(labels == class_index, probs[:, class_index])
        for class_index in range(probs.shape[1])
        if (labels == class_index).any()
    ]
    return float(np.mean(scores))


def confusion_matrix(labels, probs):
    """(c, c) counts: row = true class, column = predicted class."""
    labels, probs = _check_labels_probs(labels, probs)
    return _sk_confusion_matrix(labels, probs.argmax(axis=1), labels=np.arange(probs.shape[1]))


def per_class_table(labels, probs, class_names=None):
    """One row per class: support, accuracy (recall of the argmax), average precision."""
    labels, probs = _check_labels_probs(labels, probs)
    predictions = probs.argmax(axis=1)
    rows = []
    for class_index in range(probs.shape[1]):
        members = labels == class_index
        some = members.any()
        rows.append({"class": class_names[class_index] if class_names is not None else str(class_index),
                     "support": int(members.sum()),
                     "accuracy": float((predictions[members] == class_index).mean()) if some else float("nan"),
                     "average_precision": float(average_precision_score(members, probs[:, class_index]))
                     if some else float("nan")})
    return rows


# ------------------------------------------------------------- boxes from CAMs
def _paper_boxes(normalized, thresholds):
    """Smallest rectangle around every pixel >= t, for all thresholds at once."""
    height, width = normalized.shape
    row_peaks = normalized.max(axis=1)
    column_peaks = normalized.max(axis=0)
    rows_on = (row_peaks[None, :] >= thresholds[:, None]) & (row_peaks[None, :] > 0)
    columns_on = (column_peaks[None, :] >= thresholds[:, None]) & (column_peaks[None, :] > 0)
    boxes = np.stack([columns_on.argmax(axis=1), rows_on.argmax(axis=1), width - columns_on[:, ::-1].argmax(axis=1),
                      height - rows_on[:, ::-1].argmax(axis=1)], axis=1).astype(np.float64)
    boxes[~rows_on.any(axis=1)] = EMPTY_BOX
    return boxes


def _largest_component_box(mask):
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return EMPTY_BOX
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = stats[largest, :4]
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def _contour_boxes(mask):
    """Boxes around every contour (cv2.RETR_TREE, as Choe et al.), largest contour (by area) first."""
    contours, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return EMPTY_BOX[None]
    # cv2.contourArea is 0 for one-pixel-wide contours: break ties by the box area.
    rects = [cv2.boundingRect(contour) for contour in contours]
    order = sorted(range(len(contours)), key=lambda i: (cv2.contourArea(contours[i]), rects[i][2] * rects[i][3]),
                   reverse=True)
    return np.array([[x, y, x + w, y + h] for x, y, w, h in (rects[i] for i in order)], dtype=np.float64)


def _reference_cam_boxes(cam, thresholds, method="paper"):
    """The per-threshold code (one OpenCV labelling per threshold): the reference of :func:`cam_boxes`."""
    if method not in BOX_METHODS:
        raise ValueError(f"Unknown box method {method!r}; use one of {BOX_METHODS}.")
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    normalized = _normalized(cam)
    if normalized is None:
        return np.repeat(EMPTY_BOX[None], len(thresholds), axis=0)
    if method == "paper":
        return _paper_boxes(normalized, thresholds)
    boxes = np.empty((len(thresholds), 4))
    for index, threshold in enumerate(thresholds):
        mask = _evidence_mask(normalized, threshold)
        boxes[index] = _largest_component_box(mask) if method == "largest_component" else _contour_boxes(mask)[0]
    return boxes


def _check_thresholds(thresholds):
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D list of fractions of the max, got shape {thresholds.shape}.")
    if np.isnan(thresholds).any():
        raise ValueError("thresholds contain NaN; pass fractions of the max such as np.linspace(0, 1, 101).")
    return thresholds


def _sweep(normalized, thresholds, gt_boxes=None, largest_contour=True):
    """All thresholds of one normalized CAM in one pass (mindgap._component_tree), in the caller's threshold order.

    Returns the largest component's boxes, the largest contour's boxes and the all-contours best IoU (None without
    ``gt_boxes``), each (T, ...), equal to the per-threshold code's: levels the pass cannot decide (holes, ties in
    contour area) are redone with OpenCV.  ``largest_contour=False`` skips that for the largest contour's boxes, which
    are then not to be used.
    """
    from mindgap import _component_tree  # numba: compiled only when a sweep runs

    order = np.argsort(thresholds, kind="stable")
    ascending = np.ascontiguousarray(thresholds[order])
    gt = np.zeros((0, 4)) if gt_boxes is None else np.ascontiguousarray(gt_boxes, dtype=np.float64)
    steps = np.diff(ascending)
    uniform = bool(len(steps) > 0 and steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-6, atol=0))
    component, contour, contour_sure, ious, ious_sure = _component_tree.sweep(normalized, ascending, gt, uniform)
    component = component.astype(np.float64)
    contour = contour.astype(np.float64)
    for index in np.flatnonzero(~contour_sure) if largest_contour else ():
        contour[index] = _contour_boxes(_evidence_mask(normalized, ascending[index]))[0]
    if gt_boxes is not None:
        for index in np.flatnonzero(~ious_sure):
            # the same boxes as _contour_boxes, unsorted: the best IoU does not depend on their order
            contours, _ = cv2.findContours(_evidence_mask(normalized, ascending[index]), cv2.RETR_TREE,
                                           cv2.CHAIN_APPROX_SIMPLE)
            rects = np.array([cv2.boundingRect(contour) for contour in contours], np.float64).reshape(-1, 4)
            rects[:, 2:] += rects[:, :2]
            ious[index] = best_iou(rects if len(rects) else EMPTY_BOX[None], gt).max()
    restore = np.empty_like(order)
    restore[order] = np.arange(len(order))
    return component[restore], contour[restore], (ious[restore] if gt_boxes is not None else None)


# Below this many thresholds, one OpenCV call per threshold is faster than the one-pass sweep
# (on 299x299 maps here: the sweep ~2.5 ms; per threshold, connectedComponentsWithStats ~1 ms,
# findContours with the largest contour ~0.12 ms, with every contour's IoU ~0.2 ms).
_SWEEP_MIN_THRESHOLDS = {"largest_component": 3, "largest_contour": 20, "all_contours": 12}


def cam_boxes(cam, thresholds, method="paper"):
    """Boxes (len(thresholds), 4) from one CAM, one per threshold (fractions of the max).

    Methods:
        ``"paper"``: smallest rectangle around every pixel >= t·max (paper §4.4).
        ``"largest_component"``: Zhou et al.'s, the box of the largest 8-connected component (their default t is 0.2);
        between components of equal size, the first in OpenCV's label order.
        ``"largest_contour"``: the box of the contour (``cv2.RETR_TREE``, as Choe et al.'s code) of largest
        ``cv2.contourArea``, ties broken by the larger box (Choe et al.'s code takes the first).

    With many thresholds the two component methods use one pass over the pixels for all thresholds (see
    ``mindgap._component_tree``); the boxes are those of one OpenCV labelling per threshold, identical, only faster.
    """
    if method not in BOX_METHODS:
        raise ValueError(f"Unknown box method {method!r}; use one of {BOX_METHODS}.")
    thresholds = _check_thresholds(thresholds)
    if method == "paper" or len(thresholds) < _SWEEP_MIN_THRESHOLDS[method]:
        return _reference_cam_boxes(cam, thresholds, method)
    normalized = _normalized(cam)
    if normalized is None:
        return np.repeat(EMPTY_BOX[None], len(thresholds), axis=0)
    component, contour, _ = _sweep(normalized, thresholds)
    return component if method == "largest_component" else contour


def cam_to_box(cam, threshold, method="paper"):
    """One box ``(x_min, y_min, x_max, y_max)`` from a CAM on its own pixel grid at ``threshold`` (a fraction of its
    maximum, 0.2 = 20 %); the methods as in :func:`cam_boxes`."""
    return cam_boxes(cam, [threshold], method)[0]


# ----------------------------------------------------------------- IoU, points
def box_iou(box_a, box_b):
    """IoU of boxes in pixel-edge coordinates; broadcasts over leading axes."""
    box_a = np.asarray(box_a, dtype=np.float64)
    box_b = np.asarray(box_b, dtype=np.float64)
    if box_a.shape[-1] != 4 or box_b.shape[-1] != 4:
        raise ValueError(f"Boxes must end in 4 coordinates, got shapes {box_a.shape} and {box_b.shape}.")
    width = np.clip(np.minimum(box_a[..., 2], box_b[..., 2]) - np.maximum(box_a[..., 0], box_b[..., 0]), 0, None)
    height = np.clip(np.minimum(box_a[..., 3], box_b[..., 3]) - np.maximum(box_a[..., 1], box_b[..., 1]), 0, None)
    intersection = width * height
    area_a = np.clip(box_a[..., 2] - box_a[..., 0], 0, None) * np.clip(box_a[..., 3] - box_a[..., 1], 0, None)
    area_b = np.clip(box_b[..., 2] - box_b[..., 0], 0, None) * np.clip(box_b[..., 3] - box_b[..., 1], 0, None)
    union = area_a + area_b - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def best_iou(boxes, gt_boxes):
    """For each of ``boxes`` (n, 4), the highest IoU with any ground-truth box."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return box_iou(boxes[:, None, :], _check_boxes(gt_boxes)[None, :, :]).max(axis=1)


def center_of_mass(cam):
    """The CAM's centre of mass ``(x, y)`` (pixel centres at i + 0.5); NaNs if it has no positive mass."""
    weights = np.maximum(_check_cam(cam), 0.0)
    total = weights.sum()
    if total <= 0:
        return (float("nan"), float("nan"))
    height, width = weights.shape
    x = (weights.sum(axis=0) * (np.arange(width) + 0.5)).sum() / total
    y = (weights.sum(axis=1) * (np.arange(height) + 0.5)).sum() / total
    return (float(x), float(y))


def _box_gaps(x, y, x_min, y_min, x_max, y_max):
    """How far (x, y) lies outside [x_min, x_max] and [y_min, y_max] along each axis (0 inside); broadcasts."""
    return np.maximum(np.maximum(x_min - x, 0.0), x - x_max), np.maximum(np.maximum(y_min - y, 0.0), y - y_max)


def _point_box_distance(point, boxes):
    return np.hypot(*_box_gaps(point[0], point[1], *boxes.T))


def center_of_mass_hit(cam, gt_boxes):
    """Paper Table 4: the CAM's centre of mass falls inside any ground-truth box."""
    point = center_of_mass(cam)
    if np.isnan(point[0]):
        return False
    return bool((_point_box_distance(point, _check_boxes(gt_boxes)) == 0).any())


POINTING_CONVENTIONS = ("zhang", "torchray")
POINTING_TOLERANCE_PX = 15  # Zhang et al.'s tolerance ...
POINTING_REFERENCE_SIDE = 224  # ... for inputs of about this side
POINTING_TOLERANCES = ("scaled", "fixed", "thesis-video")
# Bargal 2019 §7.4.1 (Table 7.1): a hit when "a 15-pixel diameter circle around the located point intersects" the box,
# on UCF101/THUMOS14 frames of 320 × 240: a radius of 7.5 px at a shorter side of 240 px.
VIDEO_POINTING_RADIUS_PX = 7.5
VIDEO_REFERENCE_SIDE = 240


def pointing_tolerance(tolerance, shape):
    """Pixels of slack of the pointing game for a map of ``shape`` (H, W, ...), see :func:`pointing_game_hit`.

    ``"scaled"``: ``15 · min(H, W) / 224`` px (15 px at 224 px, 20 px at 299 px, 4.3 px at 64 px);
    ``"fixed"``: 15 px whatever the size; ``"thesis-video"``: the thesis's video pointing game (§7.4.1, a 15 px
    *diameter* circle on 320 × 240 frames), ``7.5 · min(H, W) / 240`` px (1.5 px at 48 px); a number >= 0: that
    many pixels.
    """
    if isinstance(tolerance, str):
        if tolerance not in POINTING_TOLERANCES:
            raise ValueError(f"Unknown pointing-game tolerance {tolerance!r}; use one of {POINTING_TOLERANCES} or pixels >= 0.")
        if tolerance == "fixed":
            return float(POINTING_TOLERANCE_PX)
        if tolerance == "thesis-video":
            return VIDEO_POINTING_RADIUS_PX * min(int(shape[0]), int(shape[1])) / VIDEO_REFERENCE_SIDE
        return POINTING_TOLERANCE_PX * min(int(shape[0]), int(shape[1])) / POINTING_REFERENCE_SIDE
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not tolerance >= 0:
        raise ValueError(f"Pointing-game tolerance must be {' or '.join(map(repr, POINTING_TOLERANCES))} or pixels >= 0, got {tolerance!r}.")
    return float(tolerance)


def pointing_game_hit(cam, boxes, tolerance="scaled", convention="zhang"):
    """Pointing game (Zhang et al. 2016): the CAM's maximum hits a box, with ``tolerance`` of slack.

    Zhang et al. count a hit when the maximum "falls into" an annotated object "with a 15-pixel tolerance", on
    images of a few hundred pixels; 15 px on a 64 px input covers a quarter of its side (every method near 100 %),
    so by default the tolerance scales with the input (:func:`pointing_tolerance`; the map must be at the input's
    resolution).  The maximum is the first in raster order when several pixels share it.  Conventions:

    ``"zhang"`` (default): the maximum is the pixel's centre (x + 0.5, y + 0.5) and a box the continuous rectangle of
        its pixel-edge coordinates; a hit when the Euclidean distance from the point to the nearest box is <= the
        tolerance.
    ``"torchray"``: TorchRay's ``PointingGame``: pixel indices on both sides, the box being the pixels whose centres
        lie inside it; a hit when some such pixel is at a distance < the tolerance from the maximum's index.

    The two disagree only when the nearest box is about the tolerance
    away: with 15 px, a box edge 14.5 px from the maximum's centre is a hit for the
    first, 15 px from its index and a miss for the second.
    """
    if convention not in POINTING_CONVENTIONS:
        raise ValueError(f"Unknown pointing-game convention {convention!r}; use one of {POINTING_CONVENTIONS}.")
    cam = _check_cam(cam)
    boxes = _check_boxes(boxes)
    tolerance = pointing_tolerance(tolerance, cam.shape)
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    if convention == "zhang":
        return point_hit((x + 0.5, y + 0.5), boxes, tolerance)
    # pixels whose centre i + 0.5 is in [start, end): i from ceil(start - 0.5) to ceil(end - 0.5) - 1
    first = np.ceil(boxes[:, :2] - 0.5)
    last = np.ceil(boxes[:, 2:] - 0.5) - 1
    nonempty = (last >= first).all(axis=1)
    dx, dy = _box_gaps(x, y, first[:, 0], first[:, 1], last[:, 0], last[:, 1])
    return bool((nonempty & (dx**2 + dy**2 < tolerance**2)).any())


def point_hit(point, boxes, tolerance_px):
    """A point ``(x, y)`` within ``tolerance_px`` (Euclidean, 0 inside) of any box: the pointing game's hit (Zhang's convention)."""
    return bool((_point_box_distance(point, _check_boxes(boxes)) <= tolerance_px).any())


def centre_pointing_hit(boxes, shape, tolerance="scaled"):
    """The centre baseline of the pointing game: the image's centre ``(W / 2, H / 2)`` as the pointed location."""
    return point_hit((int(shape[1]) / 2, int(shape[0]) / 2), boxes, pointing_tolerance(tolerance, shape))


def uniform_pointing_expectation(boxes, shape, tolerance="scaled"):
    """The random baseline of the pointing game in closed form: the expected hit of a maximum drawn uniformly among
    the H × W pixels, i.e. the share of pixel centres within the tolerance of a box (Zhang's convention)."""
    height, width = int(shape[0]), int(shape[1])
    tolerance_px = pointing_tolerance(tolerance, shape)
    boxes = _check_boxes(boxes)
    x = np.arange(width, dtype=np.float64)[None, :, None] + 0.5
    y = np.arange(height, dtype=np.float64)[:, None, None] + 0.5
    return float((np.hypot(*_box_gaps(x, y, *boxes.T)) <= tolerance_px).any(axis=-1).mean())


# ---------------------------------------------------------- set-level measures
def _resolve_workers(workers, count):
    if workers is None:
        return max(1, min(usable_cores(), count))
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None (all cores), got {workers!r}.")
    return int(min(workers, max(count, 1)))


def _map_images(function, cams, boxes_per_image, workers, sweeps=True):
    """``[function(cam, boxes) ...]`` in image order, on ``workers`` threads.

    Threads, not processes: the heavy parts (the compiled sweep, OpenCV, numpy on whole maps) release the GIL, and no
    map is copied.  The result does not depend on ``workers``.
    """
    workers = _resolve_workers(workers, len(cams))
    if workers == 1:
        return [function(cam, gt) for cam, gt in zip(cams, boxes_per_image)]
    if sweeps:
        _warm_up()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, cams, boxes_per_image))


def _warm_up():
    """Compile (or load from numba's cache) the sweep once, before threads race to do it."""
    from mindgap import _component_tree  # numba: compiled only when a sweep runs

    for uniform in (False, True):
        _component_tree.sweep(np.ones((1, 1), np.float32), np.linspace(0, 1, 4), np.zeros((1, 4)), uniform)


def _iou_rows(cams, boxes_per_image, thresholds, method, workers, reference=False):
    _check_cams_boxes(cams, boxes_per_image)
    thresholds = _check_thresholds(thresholds)
    boxes_of = _reference_cam_boxes if reference else cam_boxes
    rows = _map_images(lambda cam, gt: best_iou(boxes_of(cam, thresholds, method), gt), cams, boxes_per_image, workers,
                       sweeps=method != "paper" and not reference)
    return np.stack(rows)


def _all_contours_row(cam, gt, thresholds, reference=False):
    gt = _check_boxes(gt)
    normalized = _normalized(cam)
    if normalized is None:
        return np.zeros(len(thresholds))
    if reference or len(thresholds) < _SWEEP_MIN_THRESHOLDS["all_contours"]:
        return np.array([best_iou(_contour_boxes(_evidence_mask(normalized, threshold)), gt).max()
                         for threshold in thresholds])
    return _sweep(normalized, thresholds, gt, largest_contour=False)[2]


def _all_contours_rows(cams, boxes_per_image, thresholds, workers, reference=False):
    _check_cams_boxes(cams, boxes_per_image)
    thresholds = _check_thresholds(thresholds)
    rows = _map_images(lambda cam, gt: _all_contours_row(cam, gt, thresholds, reference), cams, boxes_per_image, workers,
                       sweeps=not reference)
    return np.stack(rows)


def iou_over_thresholds(cams, boxes_per_image, thresholds=DEFAULT_THRESHOLDS, method="paper", workers=None):
    """(n, len(thresholds)) best IoU of each image's box at each threshold.

    ``workers``: threads over images (None: every available core, 1: serial); the result does not depend on it.
    """
    return _iou_rows(cams, boxes_per_image, thresholds, method, workers)


def all_contours_iou_over_thresholds(cams, boxes_per_image, thresholds=DEFAULT_THRESHOLDS, workers=None):
    """(n, T) IoU of the best box among all contours' boxes at each threshold (Choe et al. 2020).

    All contours of ``cv2.findContours(mask, cv2.RETR_TREE, ...)``, as Choe et al.'s code: every 8-connected
    component's outer contour, those nested in holes included, and every hole's contour.  ``workers`` as in
    :func:`iou_over_thresholds`.
    """
    return _all_contours_rows(cams, boxes_per_image, thresholds, workers)


def max_box_acc(cams, boxes_per_image, thresholds=DEFAULT_THRESHOLDS, iou_threshold=0.5, method="paper",
                workers=None, inclusive=True):
    """MaxBoxAcc (Choe et al. 2020): box accuracy at the best single threshold over the whole set.

    A box is correct when its IoU with some ground-truth box is **>=** ``iou_threshold`` (Choe et al.'s definition and
    their code's ``>=``); ``inclusive=False`` counts IoU > δ instead, the rule of the paper's Figure 4 ("over 50 %").

    Returns a dict with ``value`` (the accuracy), ``threshold`` (the one threshold chosen for the whole set, not per
    image; the first of equal best) and ``curve`` (the accuracy at every threshold: the paper's Figure 4 for
    ``method="paper"``, IoU 0.5 and ``inclusive=False``).
    ``workers`` as in :func:`iou_over_thresholds`.
    """
    ious = iou_over_thresholds(cams, boxes_per_image, thresholds, method, workers)
    return best_threshold(ious >= iou_threshold if inclusive else ious > iou_threshold, thresholds)


def best_threshold(hits, thresholds):
    """The accuracy of (n, T) ``hits`` at the one threshold (column) best over the set; the first of equal best."""
    curve = hits.mean(axis=0)
    best = int(np.argmax(curve))
    return {"value": float(curve[best]), "threshold": float(np.atleast_1d(np.asarray(thresholds))[best]), "curve": curve}


def max_box_acc_v2(cams, boxes_per_image, thresholds=DEFAULT_THRESHOLDS, iou_thresholds=CHOE_IOU_THRESHOLDS,
                   workers=None):
    """MaxBoxAccV2 (Choe et al. 2020): all-contour boxes, IoU >= δ, mean over δ in {0.3, 0.5, 0.7}.

    Each δ picks its own best threshold, as Choe et al.  ``workers`` as in :func:`iou_over_thresholds`.
    """
    ious = all_contours_iou_over_thresholds(cams, boxes_per_image, thresholds, workers)
    per_iou = {float(delta): best_threshold(ious >= delta, thresholds)["value"] for delta in iou_thresholds}
    return {"value": float(np.mean(list(per_iou.values()))), "per_iou": per_iou}


def localization_accuracy(true_class_hits, predicted_class_hits, labels, predictions):
    """Table 4's two numbers from per-image hits.

    ``"ground_truth"``: share of hits with the true class's CAM;
    ``"prediction"``: share of images whose prediction is right *and* whose predicted class's CAM hits.
    """
    correct = np.asarray(labels) == np.asarray(predictions)
    return {"ground_truth": float(np.mean(true_class_hits)),
            "prediction": float(np.mean(np.asarray(predicted_class_hits) & correct))}


# ---------------------------------------------------------------- temporal (thesis ch. 7)
def segment_iou(segment_a, segment_b):
    """Temporal IoU of two segments ``(start, end)`` (frames, end exclusive)."""
    (start_a, end_a), (start_b, end_b) = segment_a, segment_b
    if end_a <= start_a or end_b <= start_b:
        raise ValueError(f"segments must have start < end, got {tuple(segment_a)} and {tuple(segment_b)}.")
    overlap = max(0, min(end_a, end_b) - max(start_a, start_b))
    return overlap / ((end_a - start_a) + (end_b - start_b) - overlap)


def temporal_average_precision(detections, ground_truth, iou_threshold=0.5):
    """AP of one class's detections.

    Args:
        detections: ``[(clip, start, end, score)]``.
        ground_truth: ``[(clip, start, end)]``; each is matched by at most one detection.
        iou_threshold: a detection is a true positive when its IoU with an unmatched
            ground truth of the same clip is ``>= iou_threshold`` (the highest-IoU one).

    Returns:
        The area under the precision-recall curve with precision made monotone (VOC 2010+ "all points"), or NaN
        without ground truth.  Detections are ranked by score, ties in the given order.
    """
    if not ground_truth:
        return float("nan")
    remaining = {}
    for clip, start, end in ground_truth:
        remaining.setdefault(clip, []).append((start, end))
    order = sorted(range(len(detections)), key=lambda index: -detections[index][3])
    hits = []
    for index in order:
        clip, start, end, _ = detections[index]
        candidates = remaining.get(clip, [])
        ious = [segment_iou((start, end), segment) for segment in candidates]
        best = int(np.argmax(ious)) if ious else -1
        hit = best >= 0 and ious[best] >= iou_threshold
        if hit:
            candidates.pop(best)
        hits.append(hit)
    hits = np.asarray(hits, bool)
    true_positives = np.cumsum(hits)
    recall = np.concatenate([[0.0], true_positives / len(ground_truth)])
    precision = np.concatenate([[1.0], true_positives / np.arange(1, len(hits) + 1)])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision[1:]))


def temporal_mean_ap(detections, ground_truth, iou_threshold=0.5):
    """mAP at ``iou_threshold`` (Table 7.2): the mean over classes of :func:`temporal_average_precision`.

    ``detections``: ``[(clip, class, start, end, score)]``; ``ground_truth``: ``[(clip, class, start, end)]``.
    Classes without ground truth are left out of the mean.
    """
    classes = sorted({item[1] for item in ground_truth})
    values = [temporal_average_precision([(clip, start, end, score) for clip, label, start, end, score in detections
                                          if label == value],
                                         [(clip, start, end) for clip, label, start, end in ground_truth if label == value],
                                         iou_threshold)
              for value in classes]
    return float(np.mean(values)) if values else float("nan")


def temporal_pointing_hit(scores, segment):
    """The temporal pointing game (Table 7.3): is the frame of the highest score (the first on ties) in ``[start, end)``?"""
    scores = np.asarray(scores, np.float64)
    peak = int(np.argmax(scores))
    return segment[0] <= peak < segment[1]
