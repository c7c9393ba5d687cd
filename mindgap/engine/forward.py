"""The forward pass every black-box user shares (RISE, insertion/deletion, Guided Zoom): compiled once per model."""

import numpy as np
import tensorflow as tf

from mindgap.engine.cache import per_model


def predictor(model):
    """A compiled ``model(batch, training=False)`` (cached per model)."""
    return per_model(model, "predict", lambda: tf.function(lambda batch: model(batch, training=False),
                                                           reduce_retracing=True))


def predict(model, images, batch_size=64):
    """``model``'s outputs on ``images`` as numpy, ``batch_size`` at a time (resized to its input when its size differs)."""
    size = tuple(int(side) for side in model.input.shape[1:3])
    function = predictor(model)
    parts = [np.asarray(function(resized(images[start:start + batch_size], size)))
             for start in range(0, len(images), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, *model.output.shape[1:]), np.float32)


def resized(images, size):
    """``images`` (n, H, W, 3) resized (bilinear) to ``size``, unchanged when they already have it."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:3] == tuple(size):
        return images
    return tf.image.resize(images, size, method="bilinear").numpy()
