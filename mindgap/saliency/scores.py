"""Localization scores of saliency maps of any method, one map per image at the input resolution.

Conventions are those of :mod:`mindgap.metrics` (boxes in 0-based pixel-edge coordinates, exclusive ends; pixel i has
its centre at i + 0.5), whose public functions compute every number here:

* ``pointing``: the pointing game (Zhang et al., ECCV 2016): a hit when the map's maximum pixel (its centre; first in
  row-major order on ties) lies within the tolerance of a ground-truth box, the distance being the Euclidean distance
  from that point to the nearest point of the box (0 inside).  The tolerance is Zhang et al.'s 15 px as a radius
  (their code dilates the boxes), scaled with the input: ``15 · min(H, W) / 224`` px (``tolerance="scaled"``, the
  default; 4.3 px at 64², 20 px at 299²), since a fixed 15 px on a 64² input lets every method hit; ``"fixed"`` keeps
  15 px, a number gives the pixels.  The grounding thesis (§7.2) words it as "a 15-pixel diameter circle": half the
  radius, ``tolerance=7.5`` at 224².
* ``box_iou50``: GT-class box accuracy: the box of the largest connected component of the map at ``box_threshold`` (20
  %) of its range (Zhou et al. 2016's box) has IoU >= 0.5 with a ground-truth box.
* ``centre_of_mass``: the map's centre of mass falls inside a ground-truth box (the paper's Table 4).
* ``max_box_acc_v2``: MaxBoxAccV2 (Choe et al., CVPR 2020), over the set.

Maps of different methods have different offsets (RISE's is the mean class probability; EB's a distribution; a Zhou
CAM can be negative), so for the box and centre-of-mass scores each map is min-max normalised first, as Choe et al. do
(the pointing game does not depend on it).
"""

import numpy as np

from mindgap.metrics import best_iou, cam_to_box, center_of_mass_hit, max_box_acc_v2, pointing_game_hit

POINTING_TOLERANCE = "scaled"  # see mindgap.metrics.pointing_tolerance
BOX_THRESHOLD = 0.2


def min_max(saliency):
    """``(map - min) / (max - min)``; a constant map becomes zeros."""
    saliency = np.asarray(saliency, np.float32)
    low, high = float(saliency.min()), float(saliency.max())
    return (saliency - low) / (high - low) if high > low else np.zeros_like(saliency)


def localization_scores(maps, boxes_per_image, tolerance=POINTING_TOLERANCE, box_threshold=BOX_THRESHOLD,
                        with_max_box_acc_v2=True):
    """Per-image hits and set-level MaxBoxAccV2 of maps (n, H, W) against each image's boxes (k, 4).

    Returns a dict: ``pointing``, ``box_iou50``, ``centre_of_mass`` (boolean
    (n,) arrays) and ``max_box_acc_v2`` (float), see the module docstring.
    """
    maps = np.asarray(maps, np.float32)
    if maps.ndim != 3 or len(maps) != len(boxes_per_image):
        raise ValueError(f"maps must be (n, H, W) with one box list per map; got {maps.shape} and "
                         f"{len(boxes_per_image)} box lists.")
    normalised = [min_max(saliency) for saliency in maps]
    result = {
        "pointing": np.array([pointing_game_hit(saliency, boxes, tolerance) for saliency, boxes in zip(maps, boxes_per_image)]),
        "box_iou50": np.array([best_iou(cam_to_box(saliency, box_threshold, "largest_component"), boxes)[0] >= 0.5
                               for saliency, boxes in zip(normalised, boxes_per_image)]),
        "centre_of_mass": np.array([center_of_mass_hit(saliency, boxes) for saliency, boxes in zip(normalised, boxes_per_image)]),
    }
    if with_max_box_acc_v2:
        result["max_box_acc_v2"] = float(max_box_acc_v2(normalised, list(boxes_per_image))["value"])
    return result
