"""Evidence patches and adversarial erasing (Bargal 2019, ch. 6, §6.1.1; Wei et al. 2017).

The evidence of class c in an image is the patch around the peak of a grounding method's map of c.
The thesis cuts **150×150-pixel patches** from its 448×448 inputs and erases with a **black-filled
85×85-pixel square**; here both are fractions of the image's shorter side, the thesis's ratios by
default: :data:`PATCH_FRACTION` = 150/448 ≈ 0.335 and :data:`ERASE_FRACTION` = 85/448 ≈ 0.190.

* A patch is a ``side × side`` window whose centre is the peak (the window's top-left corner is
  ``peak − side // 2``); near a border the window is **shifted inside** the image, never padded, so
  every patch holds image pixels only and has the same size.
* An erasure covers exactly the ``side × side`` square whose top-left corner is ``peak − side // 2``
  (the same centring), **clipped** by the image border (it is not shifted: the pixels erased are
  those around the peak).  The fill is black, -1 in the [-1, 1] input space of mindgap's models.

Peaks are found on the map resized to the image (bilinear, :func:`mindgap.saliency.upsample`);
the first maximum in row-major order wins a tie.
"""

import numpy as np

PATCH_FRACTION = 150 / 448  # thesis §6.1.1: 150 px patches on 448 px inputs
ERASE_FRACTION = 85 / 448  # thesis §6.1.1: 85 px black squares on 448 px inputs
BLACK = -1.0  # black after InceptionV3 preprocessing (x / 127.5 - 1)


def check_fraction(name, value):
    """``value`` as a float in (0, 1], or a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < float(value) <= 1:
        raise ValueError(f"{name} must be a fraction of the image side in (0, 1], got {value!r}.")
    return float(value)


def side_of(fraction, height, width):
    """The side in pixels of a square that is ``fraction`` of the shorter image side (at least 1)."""
    return max(1, int(round(check_fraction("fraction", fraction) * min(height, width))))


def peak(saliency_map):
    """(row, column) of the maximum of a 2-D map (the first one in row-major order)."""
    saliency_map = np.asarray(saliency_map)
    if saliency_map.ndim != 2:
        raise ValueError(f"peak needs a 2-D map (h, w), got shape {saliency_map.shape}.")
    return tuple(int(value) for value in np.unravel_index(np.argmax(saliency_map), saliency_map.shape))


def patch_box(centre, image_shape, fraction=PATCH_FRACTION):
    """(top, left, bottom, right) of the evidence patch around ``centre`` (row, column): a square of
    :func:`side_of` ``fraction``, centred on it and shifted inside the image at a border (ends exclusive)."""
    height, width = image_shape[:2]
    side = side_of(fraction, height, width)
    top = int(np.clip(centre[0] - side // 2, 0, height - side))
    left = int(np.clip(centre[1] - side // 2, 0, width - side))
    return top, left, top + side, left + side


def extract_patch(image, centre, fraction=PATCH_FRACTION):
    """The evidence patch (side, side, channels) of ``image`` (h, w, channels) around ``centre`` (a copy)."""
    top, left, bottom, right = patch_box(centre, np.shape(image), fraction)
    return np.array(image[top:bottom, left:right])


def erase_box(centre, image_shape, fraction=ERASE_FRACTION):
    """(top, left, bottom, right) of the erased square around ``centre``, clipped by the border (ends exclusive)."""
    height, width = image_shape[:2]
    side = side_of(fraction, height, width)
    top, left = centre[0] - side // 2, centre[1] - side // 2
    return max(top, 0), max(left, 0), min(top + side, height), min(left + side, width)


def erase(image, centre, fraction=ERASE_FRACTION, fill=BLACK):
    """A copy of ``image`` with the square of :func:`erase_box` set to ``fill`` (adversarial erasing, Algorithm 1 line 7)."""
    erased = np.array(image, copy=True)
    top, left, bottom, right = erase_box(centre, erased.shape, fraction)
    erased[top:bottom, left:right] = fill
    return erased
