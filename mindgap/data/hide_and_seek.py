"""Hide-and-Seek (Singh & Lee 2017): hide random grid patches of training images.

Per training image a patch size S is drawn from ``grid_sizes`` (0 = no hiding), the image is cut into S×S cells and
each cell is hidden with probability ``hide_probability`` (0.5) by setting it to ``fill_value``: the dataset mean,
which is 0 after InceptionV3 preprocessing.  Never at inference.

Two forms share one implementation: :func:`hide_patches`, a graph op on one image with a stateless seed (used by
``make_dataset``), and :class:`HideAndSeek`, a Keras preprocessing layer for a batch.
"""

import keras
import tensorflow as tf

DEFAULT_GRID_SIZES = (0, 16, 32, 44, 56)
HIDE_PROBABILITY = 0.5


def _check(grid_sizes, hide_probability):
    grid_sizes = tuple(int(size) for size in grid_sizes)
    if not grid_sizes or min(grid_sizes) < 0:
        raise ValueError(f"grid_sizes must be a non-empty list of sizes >= 0 (0 = no hiding), got {grid_sizes}.")
    if not 0.0 <= float(hide_probability) <= 1.0:
        raise ValueError(f"hide_probability must be in [0, 1], got {hide_probability}.")
    return grid_sizes


def hide_and_seek_mask(height, width, seed, grid_sizes=DEFAULT_GRID_SIZES, hide_probability=HIDE_PROBABILITY):
    """The hidden pixels (height, width) bool and the drawn patch size, from a stateless seed (2,)."""
    grid_sizes = _check(grid_sizes, hide_probability)
    size_seed, cell_seed = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2))
    index = tf.random.stateless_uniform([], size_seed, 0, len(grid_sizes), dtype=tf.int32)
    grid_size = tf.gather(tf.constant(grid_sizes, tf.int32), index)
    step = tf.maximum(grid_size, 1)
    rows = (height + step - 1) // step
    columns = (width + step - 1) // step
    cells = tf.random.stateless_uniform([rows, columns], cell_seed) < hide_probability
    cells = tf.logical_and(cells, grid_size > 0)
    mask = tf.repeat(tf.repeat(cells, step, axis=0), step, axis=1)[:height, :width]
    return mask, grid_size


def hide_patches(image, seed, grid_sizes=DEFAULT_GRID_SIZES, hide_probability=HIDE_PROBABILITY, fill_value=0.0):
    """Hide-and-Seek on one image (h, w, channels) with a stateless seed (2,)."""
    shape = tf.shape(image)
    mask, _ = hide_and_seek_mask(shape[0], shape[1], seed, grid_sizes, hide_probability)
    return tf.where(mask[..., None], tf.cast(fill_value, image.dtype), image)


@keras.saving.register_keras_serializable(package="mindgap")
class HideAndSeek(keras.layers.Layer):
    """Keras preprocessing layer: Hide-and-Seek on a batch, only when ``training``.

    Args:
        grid_sizes: tuple of int, patch sizes to draw from; 0 = no hiding.  Default (0, 16, 32, 44, 56).
        hide_probability: float, chance of hiding each cell, 0.5.
        fill_value: float, value of hidden pixels (the dataset mean after
            preprocessing; 0 for InceptionV3 preprocessing).
        seed: int or None.

    Call arguments:
        images: (batch, h, w, channels).
        training: bool; the layer is the identity unless True.

    Reference: Singh & Lee, "Hide-and-Seek", ICCV 2017.
    """

    def __init__(self, grid_sizes=DEFAULT_GRID_SIZES, hide_probability=HIDE_PROBABILITY, fill_value=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.grid_sizes = _check(grid_sizes, hide_probability)
        self.hide_probability = float(hide_probability)
        self.fill_value = float(fill_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="hide_and_seek_seed")

    def call(self, images, training=None):
        if not training:
            return images
        base = tf.cast(self.seed_generator.next(), tf.int64)
        count = tf.shape(images, out_type=tf.int64)[0]
        seeds = tf.stack([tf.fill([count], base[0]), base[1] + tf.range(count)], axis=1)
        return tf.map_fn(
            lambda pair: hide_patches(pair[0], pair[1], self.grid_sizes, self.hide_probability, self.fill_value),
            (images, seeds),
            fn_output_signature=images.dtype,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            grid_sizes=list(self.grid_sizes),
            hide_probability=self.hide_probability,
            fill_value=self.fill_value,
            seed=self.seed,
        )
        return config
