"""Maps that know no model and no class: the baselines a grounding method has to beat.

A localization score means something only where it beats what needs no model at all.  On a set where the object sits
near the middle, the centre of the image already "points" at it; where it is the only high-contrast thing, a bottom-up
contrast peak finds it.  Three baselines, each at the input resolution like the maps of :mod:`mindgap.saliency`:

* :func:`centre_maps`: a cone peaking at the image's centre (its pointing
  game is :func:`mindgap.metrics.centre_pointing_hit`, the exact centre);
* a uniformly random point: no map, its expected pointing game in closed form
  (:func:`mindgap.metrics.uniform_pointing_expectation`);
* :func:`contrast_maps`: bottom-up centre-surround contrast of the luminance, smoothed to blobs (Itti, Koch and Niebur
  1998's intensity channel, one scale): the most salient blob with no class knowledge.
"""

import cv2
import numpy as np

# Scales of the contrast map as fractions of the image's side: centre, surround, blob.
CONTRAST_SCALES = (1 / 64, 1 / 12, 1 / 24)


def centre_maps(count, shape):
    """``count`` maps of ``shape`` (H, W): minus the distance of each pixel centre to the image's centre."""
    height, width = int(shape[0]), int(shape[1])
    rows = np.arange(height, dtype=np.float32)[:, None] + 0.5
    columns = np.arange(width, dtype=np.float32)[None, :] + 0.5
    cone = -np.hypot(rows - height / 2, columns - width / 2)
    return np.repeat(cone[None], count, axis=0)


def contrast_map(image, scales=CONTRAST_SCALES):
    """Centre-surround contrast of one image (H, W, 3 in any range; luminance = channel mean):
    ``G_blob * |G_centre * L - G_surround * L|``, each ``G`` a Gaussian of sigma ``scale · min(H, W)``."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"contrast_map takes one image (H, W, channels), got shape {image.shape}.")
    luminance = image.mean(axis=-1)
    side = min(luminance.shape)
    centre, surround, blob = (max(scale * side, 0.5) for scale in scales)
    difference = np.abs(cv2.GaussianBlur(luminance, (0, 0), centre) - cv2.GaussianBlur(luminance, (0, 0), surround))
    return cv2.GaussianBlur(difference, (0, 0), blob)


def contrast_maps(images, scales=CONTRAST_SCALES):
    """:func:`contrast_map` of each image of a batch (n, H, W, 3) → (n, H, W)."""
    return np.stack([contrast_map(image, scales) for image in np.asarray(images)])
