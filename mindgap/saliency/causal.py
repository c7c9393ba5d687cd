"""Insertion and deletion: causal scores of a saliency map (Petsiuk, Das, Saenko, BMVC 2018, §4.1).

**Deletion**: starting from the image, pixels are replaced by ``baseline`` (0.0, mid-grey in the model's input space)
in order of decreasing saliency, ``ceil(H·W / steps)`` pixels per step; the curve is the class probability after 0, 1,
..., ``steps`` steps.  A good map makes it fall fast: lower is better.

**Insertion**: starting from a blurred copy of the image (Gaussian, 11×11, σ = 5, as the paper's code; OpenCV's
reflected border), the image's pixels are put back in the same order: higher is better.

Each AUC is the trapezoid area under the curve with the x axis scaled to [0, 1] (the share of pixels changed):
``(sum(curve) - curve[0]/2 - curve[-1]/2) / steps``.  The paper changes 224 pixels per step at 224² (``steps`` = the
image width, ``steps=None`` here); the default, 100 steps, is cheaper.  Cost:
``2 (steps + 1)`` forward passes per image and class, ``batch_size`` at a time.  Ties in the saliency are broken by
pixel index (row-major), so a constant map deletes from the top left.
"""

import cv2
import numpy as np

from mindgap.engine.forward import predictor

DEFAULT_STEPS = 100
BLUR_KERNEL, BLUR_SIGMA = 11, 5.0


def blurred(image):
    """The insertion start: ``image`` (H, W, C) blurred as in the paper's code."""
    return cv2.GaussianBlur(np.asarray(image, np.float32), (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)


def auc(curve):
    """Trapezoid area under ``curve`` over x in [0, 1] with equally spaced points."""
    curve = np.asarray(curve, np.float64)
    return float((curve.sum() - curve[0] / 2 - curve[-1] / 2) / (len(curve) - 1))


def causal_curve(model, image, saliency, class_index, mode, steps=DEFAULT_STEPS, baseline=0.0, insertion_start="blur",
                 batch_size=64):
    """The insertion or deletion curve (steps + 1,) of one image, map (H, W) and class."""
    if mode not in ("insertion", "deletion"):
        raise ValueError(f"Unknown causal mode {mode!r}; use 'insertion' or 'deletion'.")
    image = np.asarray(image, np.float32)
    saliency = np.asarray(saliency, np.float32)
    height, width = image.shape[:2]
    if saliency.shape != (height, width):
        raise ValueError(f"The saliency map has shape {saliency.shape} but the image is {height}x{width}; "
                         "upsample it to the input size (mindgap.saliency.upsample).")
    steps = width if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    per_step = int(np.ceil(height * width / steps))
    order = np.argsort(-saliency.ravel(), kind="stable")
    rank = np.empty(height * width, np.int64)
    rank[order] = np.arange(height * width)
    rank = rank.reshape(height, width, 1)
    if mode == "deletion":
        start, finish = image, np.full_like(image, baseline)
    else:
        start = blurred(image) if isinstance(insertion_start, str) and insertion_start == "blur" \
            else np.full_like(image, float(insertion_start))
        finish = image
    predict = predictor(model)
    curve = []
    for first in range(0, steps + 1, batch_size):
        indices = np.arange(first, min(first + batch_size, steps + 1))
        changed = rank[None] < (indices * per_step)[:, None, None, None]
        batch = np.where(changed, finish[None], start[None])
        curve.append(np.asarray(predict(batch))[:, class_index])
    return np.concatenate(curve)


def insertion_deletion(model, images, maps, classes, steps=DEFAULT_STEPS, baseline=0.0, insertion_start="blur",
                       batch_size=64):
    """Insertion and deletion AUCs of maps (batch, H, W) for ``classes`` (batch,): dict of (batch,) arrays.

    Also returns the curves (``insertion_curve``, ``deletion_curve``: (batch, steps + 1)).
    """
    images, maps, classes = np.asarray(images), np.asarray(maps), np.asarray(classes).reshape(-1)
    if not len(images) == len(maps) == len(classes):
        raise ValueError(f"{len(images)} images, {len(maps)} maps and {len(classes)} classes; pass one of each per image.")
    result = {}
    for mode in ("insertion", "deletion"):
        curves = np.stack([causal_curve(model, image, saliency, int(class_index), mode, steps, baseline,
                                        insertion_start, batch_size)
                           for image, saliency, class_index in zip(images, maps, classes)])
        result[f"{mode}_curve"] = curves
        result[mode] = np.array([auc(curve) for curve in curves])
    return result
