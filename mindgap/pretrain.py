"""A pretrained start for the Tiny backbone, the CPU stand-in for ImageNet weights.

The paper starts from an ImageNet-trained InceptionV3 and freezes it for the
first epochs.  A Tiny backbone trained from scratch inside a GAPm head learns
slowly (its ReLU maps tend to die before the head finds a signal), so the
quick experiments give it the same kind of start: once, it is trained to
classify centred digits (scikit-learn's digits on the same photo clutter,
**training half of the source digits only**, so no test digit is ever seen),
and its weights are cached.  ``build_model("Tiny-…", weights=path)`` then
loads them like any weights file.
"""

import os

import keras
import numpy as np
from sklearn.datasets import load_digits

from mindgap.backbones import build_backbone
from mindgap.data.digits import background_crop, load_backgrounds, render_canvas, source_halves
from mindgap.data.pipeline import preprocess

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "mindgap")
PRETRAIN_SETTINGS = dict(seed=0, image_size=48, samples=8000, epochs=8, batch_size=64, digit_size=(26, 44))


def centred_digit_samples(count, image_size=48, digit_size=(26, 44), seed=0):
    """(images preprocessed to [-1, 1], labels) of digits from the training half on photo clutter."""
    rng = np.random.default_rng(seed)
    digits = load_digits()
    halves = source_halves(digits.target)
    backgrounds = load_backgrounds()
    images = np.empty((count, image_size, image_size, 3), np.float32)
    labels = rng.integers(0, 10, count)
    for index, label in enumerate(labels):
        sources = halves[int(label)][0]
        digit = digits.images[sources[rng.integers(len(sources))]]
        canvas, _, _ = render_canvas(rng, digit, background_crop(rng, backgrounds, image_size), digit_size)
        images[index] = preprocess(canvas[..., ::-1]).numpy()  # BGR canvas → RGB
    return images, labels


def pretrained_tiny_weights(cache_dir=DEFAULT_CACHE_DIR, verbose=1):
    """Path of the pretrained Tiny backbone weights, training them once if absent (about a minute on 2 cores)."""
    settings = PRETRAIN_SETTINGS
    path = os.path.join(cache_dir, f"tiny_centred_digits_seed{settings['seed']}_v1.weights.h5")
    if os.path.isfile(path):
        return path
    os.makedirs(cache_dir, exist_ok=True)
    size = settings["image_size"]
    images, labels = centred_digit_samples(settings["samples"], size, settings["digit_size"], settings["seed"])
    keras.utils.set_random_seed(settings["seed"])
    backbone = build_backbone("tiny", (size, size, 3))
    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    classifier = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(pooled))
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if verbose:
        print(f"Pretraining the Tiny backbone on centred digits (once; cached at {path})")
    classifier.fit(images, labels, batch_size=settings["batch_size"], epochs=settings["epochs"], validation_split=0.1, verbose=verbose)
    temporary = path + ".tmp.weights.h5"
    backbone.save_weights(temporary)
    os.replace(temporary, path)
    return path
