"""RISE: randomized input sampling for explanation of black-box models.

Petsiuk, Das, Saenko, BMVC 2018.  ``N`` binary masks on an ``s × s`` grid, each cell kept with probability ``p``,
bilinearly upsampled to ``(s+1)·cell`` (``cell = ceil(H / s)``) and cropped at a random shift in ``[0, cell)``, so the
kept regions are smooth and not aligned to the grid.  The saliency of class c at pixel x is the mask-weighted mean of
the class probability:

    S_c(x) = 1 / (N p) · sum_i f_c(I ⊙ M_i) M_i(x)

Masked-out pixels are set to ``baseline`` in the model's input space (0.0: mid-grey after InceptionV3 preprocessing;
the paper's 0 after mean subtraction is the mean colour).  ``f_c`` is the class probability (the model's output), so
any Keras model with a probability output works.

Masks are generated ``batch_size`` at a time from one seeded generator and shared by all images (as the paper does);
for each chunk every image is scored on its masked copies and the chunk is dropped, so memory is bounded by
``batch_size`` masked images and one (h, w, n) sum per image, independently of ``N``.  Cost: ``N`` forward passes per
image (all classes come from the same passes).

Settings: ``PAPER_SETTINGS`` (N = 4000, s = 7, p = 0.5: the paper's ResNet50 setting; it used 8000 for VGG16),
``settings="paper"``; the default is cheaper, N = 1000, s = 7, p = 0.5 (Monte Carlo error about twice the paper's).

Returns (batch, H, W, n) float32 at the **input** resolution, the expected class probability under the masks (values
near the class probability, not min-max normalised; maps carry an offset).
"""

import math

import numpy as np
import tensorflow as tf

from mindgap.engine.forward import predictor
from mindgap.registry import METHODS

PAPER_SETTINGS = dict(num_masks=4000, grid_size=7, keep_probability=0.5)
DEFAULT_SETTINGS = METHODS["rise"].defaults


def generate_masks(rng, count, size, grid_size, keep_probability):
    """``count`` RISE masks (count, H, W) in [0, 1] from ``rng`` (a numpy Generator)."""
    height, width = size
    cell_height, cell_width = math.ceil(height / grid_size), math.ceil(width / grid_size)
    grid = (rng.random((count, grid_size, grid_size, 1)) < keep_probability).astype(np.float32)
    up = tf.image.resize(grid, ((grid_size + 1) * cell_height, (grid_size + 1) * cell_width), method="bilinear").numpy()
    shifts_y = rng.integers(0, cell_height, count)
    shifts_x = rng.integers(0, cell_width, count)
    return np.stack([up[index, y:y + height, x:x + width, 0] for index, (y, x) in enumerate(zip(shifts_y, shifts_x))])


def _check(num_masks, grid_size, keep_probability, batch_size):
    if not isinstance(num_masks, int) or num_masks < 1:
        raise ValueError(f"num_masks must be an integer >= 1, got {num_masks!r}.")
    if not isinstance(grid_size, int) or grid_size < 1:
        raise ValueError(f"grid_size must be an integer >= 1, got {grid_size!r}.")
    if not 0.0 < float(keep_probability) <= 1.0:
        raise ValueError(f"keep_probability must be in (0, 1], got {keep_probability!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")


def rise(model, images, classes, num_masks=None, grid_size=None, keep_probability=None, batch_size=64, seed=0,
         baseline=0.0, settings="default"):
    """RISE maps (batch, H, W, n) of ``classes`` (batch, n); see the module docstring.

    Args:
        num_masks, grid_size, keep_probability: N, s and p (default from ``settings``).
        batch_size: masked images per forward pass (the memory bound).
        seed: seed of the masks (the same masks for every image).
        baseline: value of masked-out pixels in the model's input space.
        settings: ``"default"`` (N = 1000) or ``"paper"`` (N = 4000).
    """
    if settings not in ("default", "paper"):
        raise ValueError(f"Unknown RISE settings {settings!r}; use 'default' or 'paper'.")
    chosen = dict(PAPER_SETTINGS if settings == "paper" else DEFAULT_SETTINGS)
    for name, value in (("num_masks", num_masks), ("grid_size", grid_size), ("keep_probability", keep_probability)):
        if value is not None:
            chosen[name] = value
    _check(chosen["num_masks"], chosen["grid_size"], chosen["keep_probability"], batch_size)
    images = np.asarray(images, np.float32)
    classes = np.asarray(classes)
    predict = predictor(model)
    size = images.shape[1:3]
    rng = np.random.default_rng(seed)
    sums = np.zeros((len(images), *size, classes.shape[1]), np.float32)
    for start in range(0, chosen["num_masks"], batch_size):
        count = min(batch_size, chosen["num_masks"] - start)
        masks = generate_masks(rng, count, size, chosen["grid_size"], chosen["keep_probability"])
        weights = masks[..., None]
        for index, image in enumerate(images):
            masked = image[None] * weights + baseline * (1.0 - weights)
            probabilities = np.asarray(predict(tf.convert_to_tensor(masked)))[:, classes[index]]  # (count, n)
            sums[index] += np.einsum("mn,mhw->hwn", probabilities, masks)
            del masked
        del masks, weights  # before the next chunk is made: at most one chunk alive
    return sums / (chosen["num_masks"] * chosen["keep_probability"])
