"""Temporal grounding from saliency through time (thesis §7.2, §7.4.2).

``S_t`` = the sum of the saliency map of frame t (Algorithm 3, step 7): positive where the
queried action's evidence is, negative where the evidence of other actions is (cEB-R).

* **Unknown length** (§7.2): the anchor is the frame with the highest sum; the window grows greedily in both
  directions, one frame at a time, until the next frame's sum is negative (a zero sum does not stop it).  It assumes
  negative values at the boundaries, so EB-R (non-negative) would take the whole clip: the thesis reports it for cEB-R
  and the thresholded probabilities only (Table 7.2, bottom).
* **Known length** (Table 7.2, top): the window of the given length with the highest sum
  (the first such window on ties).
* **Probability baseline** (§7.4.2): the predicted probability of the queried class at every
  step, thresholded to +1 (>= 0.5) or -1 (< 0.5), localized by the same two rules.

Segments are ``(start, end)``: 0-based frame indices, ``end`` exclusive.  The measures
(temporal IoU, mAP, the temporal pointing game) are in :mod:`mindgap.metrics`.
"""

import numpy as np


def frame_sums(maps):
    """``S``: each frame's map summed over space; maps (..., T, h, w) → (..., T) (put the class axis first)."""
    maps = np.asarray(maps, np.float64)
    if maps.ndim < 3:
        raise ValueError(f"maps must be (..., T, h, w), got shape {maps.shape}.")
    return maps.sum(axis=(-2, -1))


def _check_scores(scores):
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 1 or not len(scores) or not np.isfinite(scores).all():
        raise ValueError(f"scores must be a finite vector (T,) with T >= 1, got shape {scores.shape}.")
    return scores


def localize_known_length(scores, length):
    """The window of ``length`` frames with the highest sum of ``scores``: (start, end)."""
    scores = _check_scores(scores)
    if not 1 <= int(length) <= len(scores):
        raise ValueError(f"length must be in [1, {len(scores)}] (the clip's frames), got {length}.")
    length = int(length)
    sums = np.convolve(scores, np.ones(length), mode="valid")
    start = int(np.argmax(sums))
    return start, start + length


def localize_unknown_length(scores):
    """Anchor at the highest sum, grown to both sides until a negative sum (§7.2): (start, end)."""
    scores = _check_scores(scores)
    anchor = int(np.argmax(scores))
    start, end = anchor, anchor + 1
    while start > 0 and scores[start - 1] >= 0:
        start -= 1
    while end < len(scores) and scores[end] >= 0:
        end += 1
    return start, end


def thresholded_probabilities(probabilities, threshold=0.5):
    """The thesis's baseline scores: +1 where the class probability is >= ``threshold``, -1 elsewhere."""
    probabilities = np.asarray(probabilities, np.float64)
    return np.where(probabilities >= threshold, 1.0, -1.0)
