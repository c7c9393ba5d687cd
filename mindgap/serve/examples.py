"""Example images for the page: a folder of the user's images, or a few built from the embedded digits set."""

import os

import cv2
import numpy as np

from mindgap.data.folders import IMAGE_EXTENSIONS

BUILT_IN_COUNT = 6
BUILT_IN_SIDE = 160
MAX_EXAMPLES = 24


def built_in_examples(count=BUILT_IN_COUNT, side=BUILT_IN_SIDE, seed=7):
    """``count`` digits canvases (test half of the source digits) as ``[(name, png_bytes)]``, deterministic."""
    from sklearn.datasets import load_digits

    from mindgap.data.digits import CLASS_NAMES, background_crop, load_backgrounds, render_canvas, source_halves  # only without an examples folder

    rng = np.random.default_rng(seed)
    digits = load_digits()
    backgrounds = load_backgrounds()
    halves = source_halves(digits.target)
    examples = []
    for number in range(count):
        label = (3 * number + 1) % len(CLASS_NAMES)
        sources = halves[label][1]
        background = background_crop(rng, backgrounds, side)
        canvas, _, _ = render_canvas(rng, digits.images[int(sources[rng.integers(len(sources))])], background, (side // 3, side * 2 // 3))
        ok, buffer = cv2.imencode(".png", canvas)
        examples.append((f"{CLASS_NAMES[label]} ({number + 1})", buffer.tobytes()))
    return examples


def folder_examples(folder, max_bytes):
    """The images of ``folder`` (sorted, at most ``MAX_EXAMPLES``) as ``[(file name, bytes)]``; ``ValueError`` if none."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"Examples folder {folder!r} does not exist; pass a folder of images to --examples.")
    names = sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_EXTENSIONS))[:MAX_EXAMPLES]
    examples = []
    for name in names:
        path = os.path.join(folder, name)
        if os.path.getsize(path) <= max_bytes:
            with open(path, "rb") as handle:
                examples.append((name, handle.read()))
    if not examples:
        raise ValueError(f"Examples folder {folder!r} holds no image ({', '.join(IMAGE_EXTENSIONS)}) under the upload limit; pass another folder.")
    return examples
