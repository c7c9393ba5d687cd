"""The embedded default dataset: scikit-learn's handwritten digits on natural-image canvases.

Each image is a random crop of one of scikit-learn's sample photos (``china.jpg``, ``flower.jpg``) as clutter, with
one 8×8 digit from ``sklearn.datasets.load_digits`` scaled up and blended in at a random position and scale.  The
class is the digit ("zero" … "nine"), the box is the tight box of the digit's ink.  Everything is written in the
Stanford 40 layout, so ``read_stanford40`` and the whole pipeline run on it unchanged.

Training and test images are made from disjoint source digits; the result is
a deterministic function of the arguments and the seed.

**The fine-grained variant** (:data:`FINE_GRAINED`, ``--fine-grained``; Guided Zoom, thesis ch. 6): small digits
(16–24 px on a 96 px canvas) on crops of scikit-image's bundled photos as well (``backgrounds="skimage"``: astronaut,
chelsea, coffee, hubble, ihc, motorcycle, retina, rocket in colour; grass, gravel, brick in grey), with ``clutter``
small photo crops pasted beside the digit (never over its box), so that the detail that tells the classes apart is a
small part of the image.

Command line: ``python -m mindgap.data.digits OUT_DIR [--seed 0] [--fine-grained] ...``
"""

import json
import os
import sys

import cv2
import numpy as np
import sklearn
from sklearn.datasets import load_digits

from mindgap.data.generated import ensure_set, run_generator, settings_parser, writes_whole_set
from mindgap.data.records import write_lines
from mindgap.data.stanford40 import ACTIONS_FILE, ANNOTATIONS_DIR, IMAGES_DIR, SPLITS_DIR

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SETTINGS_FILE = "mindgap_digits.json"
INK_THRESHOLD = 0.25  # a pixel belongs to the digit when its ink (alpha) is above this
INK_FLOOR, INK_SOLID = 0.2, 0.8  # source intensity (of 1) mapped to transparent and to opaque ink
OUTLINE_OPACITY = 0.8  # of the 1-pixel outline in the opposite colour around the strokes
RENDERER_VERSION = 2  # 1: source intensity as opacity, one colour against the mean of the digit's square, no outline
_OUTLINE_KERNEL = np.ones((3, 3), np.uint8)
DEFAULTS = dict(seed=0, canvas_size=96, train_per_class=60, test_per_class=70, digit_size=(28, 56))
# Settings whose default leaves the renders (and the settings file) exactly as before they existed.
EXTRA_DEFAULTS = dict(backgrounds="sklearn", clutter=0)
# Guided Zoom's fine-grained set: the discriminative detail (the digit) is small, the clutter is varied.
FINE_GRAINED = dict(canvas_size=96, digit_size=(16, 24), backgrounds="skimage", clutter=3)
BACKGROUND_SOURCES = ("sklearn", "skimage")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
# The photos the scikit-image wheel ships in skimage/data (no download): colour ones, then grey textures.
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png",
                  "retina.jpg", "rocket.jpg", "grass.png", "gravel.png", "brick.png")
CLUTTER_SIDE = (0.1, 0.25)  # side of a pasted clutter crop, as a fraction of the canvas
_JPEG_QUALITY = 95


def _read_photos(folder, names, package):
    images = [cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR) for name in names]  # grey files become 3 channels
    missing = [name for name, image in zip(names, images) if image is None]
    if missing:
        raise RuntimeError(f"{package}'s sample photos {', '.join(missing)} are missing from {folder}; reinstall {package}.")
    return images


def load_backgrounds(source="sklearn"):
    """BGR photos for backgrounds and clutter: scikit-learn's two (``"sklearn"``), or those and scikit-image's (``"skimage"``)."""
    if source not in BACKGROUND_SOURCES:
        raise ValueError(f"Unknown backgrounds {source!r}; use one of {', '.join(BACKGROUND_SOURCES)}.")
    images = _read_photos(os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images"), SKLEARN_PHOTOS, "scikit-learn")
    if source == "skimage":
        images += skimage_photos()
    return images


def skimage_photos(names=SKIMAGE_PHOTOS):
    """BGR photos ``names`` of the scikit-image wheel's ``skimage/data`` (grey files as 3 channels), in that order."""
    try:
        import skimage
    except ImportError:
        raise RuntimeError("these backgrounds need scikit-image's photos; pip install scikit-image.") from None
    return _read_photos(os.path.join(os.path.dirname(skimage.__file__), "data"), names, "scikit-image")


def paste_clutter(rng, canvas, backgrounds, count, box):
    """Paste ``count`` small square photo crops (sides :data:`CLUTTER_SIDE` of the canvas) onto ``canvas`` in place,
    each at a random position that does not overlap ``box`` (the digit's; tried 20 times, then skipped)."""
    size = canvas.shape[0]
    for _ in range(count):
        side = max(2, int(rng.uniform(*CLUTTER_SIDE) * size))
        crop = background_crop(rng, backgrounds, side)
        for _ in range(20):
            top, left = (int(value) for value in rng.integers(0, size - side + 1, size=2))
            if left >= box[2] or left + side <= box[0] or top >= box[3] or top + side <= box[1]:
                canvas[top:top + side, left:left + side] = crop
                break
    return canvas


def background_crop(rng, backgrounds, canvas_size):
    photo = backgrounds[rng.integers(len(backgrounds))]
    height, width = photo.shape[:2]
    side = int(rng.uniform(0.25, 1.0) * min(height, width))
    top = rng.integers(0, height - side + 1)
    left = rng.integers(0, width - side + 1)
    crop = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(crop, (canvas_size, canvas_size), interpolation=cv2.INTER_AREA)


def render_canvas(rng, digit, background, digit_size, *, side=None, position=None):
    """Blend one digit (8×8, 0–16) onto a BGR canvas, at ``side`` and ``position`` (top, left) when given (a video
    frame of ``mindgap.data.video``), else drawn from ``rng``.  Returns the canvas, the ink map (canvas-sized, in
    [0, 1]) and the tight box of ink > ``INK_THRESHOLD`` in pixel-edge coordinates (exclusive ends)."""
    canvas_size = background.shape[0]
    if side is None:
        side = int(rng.integers(digit_size[0], digit_size[1] + 1))
    side = min(int(side), canvas_size)
    ink_patch = cv2.resize(digit.astype(np.float32) / 16.0, (side, side), interpolation=cv2.INTER_LINEAR)
    if position is None:
        top = int(rng.integers(0, canvas_size - side + 1))
        left = int(rng.integers(0, canvas_size - side + 1))
    else:
        top, left = (int(np.clip(value, 0, canvas_size - side)) for value in position)
    ink = np.zeros((canvas_size, canvas_size), np.float32)
    # Faint source pixels (a haze up to 3 of 16) vanish and strokes are opaque from 13 of 16 on.
    ink[top : top + side, left : left + side] = np.clip((ink_patch - INK_FLOOR) / (INK_SOLID - INK_FLOOR), 0.0, 1.0)

    # One ink colour against the luminance the strokes cover, and a thin outline of the opposite
    # colour, so that a digit stays legible where it straddles a bright and a dark region.
    luminance = cv2.cvtColor(background, cv2.COLOR_BGR2GRAY).astype(np.float32)
    covered = float((luminance * ink).sum() / max(float(ink.sum()), 1e-6))
    jitter = rng.uniform(-20, 20, size=3)
    light, dark = np.clip(235.0 + jitter, 0, 255), np.clip(20.0 + jitter, 0, 255)
    colour, outline_colour = (light, dark) if covered < 128 else (dark, light)
    outline = np.clip(cv2.dilate(ink, _OUTLINE_KERNEL) - ink, 0.0, 1.0) * OUTLINE_OPACITY
    canvas = background.astype(np.float32) * (1.0 - outline[..., None]) + outline_colour * outline[..., None]
    canvas = canvas * (1.0 - ink[..., None]) + colour * ink[..., None]

    return np.clip(np.round(canvas), 0, 255).astype(np.uint8), ink, ink_box(ink)


def ink_box(ink):
    """The tight box of ``ink > INK_THRESHOLD`` in pixel-edge coordinates (exclusive ends): a glyph's ground-truth box."""
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    columns = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    return (int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)


_DISTORTION = dict(rotation=15.0, shear=0.2, aspect=(0.8, 1.25))
_DISTORTED_SIDE = 32  # the 8x8 source is warped at 4x, then the renderer scales it to the drawn size


def distort_digit(rng, digit, rotation=_DISTORTION["rotation"], shear=_DISTORTION["shear"], aspect=_DISTORTION["aspect"]):
    """An 8×8 source digit (0–16) as a 32×32 digit of another hand: rotated by up to ``rotation`` degrees,
    sheared by up to ``shear`` and stretched by an aspect ratio in ``aspect``, about its centre, ink kept inside."""
    side = _DISTORTED_SIDE
    large = cv2.resize(digit.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    angle = np.deg2rad(rng.uniform(-rotation, rotation))
    ratio = np.sqrt(rng.uniform(*aspect))
    linear = (np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
              @ np.array([[1.0, rng.uniform(-shear, shear)], [0.0, 1.0]]) @ np.diag([ratio, 1.0 / ratio]))
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], np.float64) * side / 2
    linear /= max(1.0, np.abs(corners @ linear.T).max() / (side / 2))  # shrink so that the square's corners stay inside
    centre = np.array([side / 2, side / 2])
    matrix = np.hstack([linear, (centre - linear @ centre)[:, None]]).astype(np.float32)
    return cv2.warpAffine(large, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=0.0)


def _annotation_xml(file_name, action, boxes, canvas_size, source_index):
    """Stanford 40's XML: one ``<object>`` per box (pixel-edge boxes → Stanford's 1-based inclusive)."""
    objects = "".join(f"  <object>\n    <name>person</name>\n    <action>{action}</action>\n    <bndbox>\n"
                      f"      <xmax>{x_max}</xmax>\n      <xmin>{x_min + 1}</xmin>\n      <ymax>{y_max}</ymax>\n"
                      f"      <ymin>{y_min + 1}</ymin>\n    </bndbox>\n  </object>\n" for x_min, y_min, x_max, y_max in boxes)
    return (f"<annotation>\n  <filename>{file_name}</filename>\n  <folder>Stanford40</folder>\n{objects}  <size>\n"
            f"    <depth>3</depth>\n    <height>{canvas_size}</height>\n    <width>{canvas_size}</width>\n  </size>\n"
            f"  <source_index>{source_index}</source_index>\n</annotation>\n")


def source_halves(targets):
    """Per class, the source digit indices for training and for test: disjoint halves, fixed by the digit's index
    (alternate images of each class), not by the seed, so that anything built from the training half (the Tiny
    backbone's pretraining) never sees a test digit of any generated set."""
    halves = {}
    for label in range(len(CLASS_NAMES)):
        indices = np.flatnonzero(np.asarray(targets) == label)
        halves[label] = (indices[0::2], indices[1::2])
    return halves


@writes_whole_set(SETTINGS_FILE)
def write_stanford40_set(out_dir, render, *, seed, canvas_size, train_per_class, test_per_class, settings,
                         class_names=CLASS_NAMES):
    """Write an embedded localization set at ``out_dir`` in the Stanford 40 layout (the digits and scenes sets).

    ``render(rng, label, half)`` draws one image of class ``label`` (an index of ``class_names``) from the source
    digits of ``half`` (0 training, 1 test) and returns ``(BGR canvas, box or list of boxes, source index)``; it is
    called class by class, image by image, from one generator seeded with ``seed``, so the set is a function of the
    arguments.  ``settings`` are written to :data:`SETTINGS_FILE`, last (the set is written whole).  Returns ``out_dir``.
    """
    rng = np.random.default_rng(seed)
    for folder in (IMAGES_DIR, ANNOTATIONS_DIR, SPLITS_DIR):
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
    split_lines = {"train": [], "test": []}
    per_class_lines = {(name, split): [] for name in class_names for split in ("train", "test")}
    for split, count, half in (("train", train_per_class, 0), ("test", test_per_class, 1)):
        for number in range(count):
            for label, action in enumerate(class_names):
                canvas, boxes, source_index = render(rng, label, half)
                boxes = [boxes] if np.ndim(boxes[0]) == 0 else boxes
                image_number = number + 1 + (train_per_class if split == "test" else 0)
                stem = f"{action}_{image_number:03d}"
                cv2.imwrite(os.path.join(out_dir, IMAGES_DIR, stem + ".jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
                with open(os.path.join(out_dir, ANNOTATIONS_DIR, stem + ".xml"), "w") as handle:
                    handle.write(_annotation_xml(stem + ".jpg", action, boxes, canvas_size, source_index))
                split_lines[split].append(stem + ".jpg")
                per_class_lines[(action, split)].append(stem + ".jpg")

    splits = os.path.join(out_dir, SPLITS_DIR)
    crlf = "\r\n"  # as the real split files
    write_lines(os.path.join(splits, ACTIONS_FILE), ["Action name\tNumber of images"]
                + [f"{name}\t{train_per_class + test_per_class}" for name in class_names], crlf)
    for split, lines in split_lines.items():
        write_lines(os.path.join(splits, f"{split}.txt"), sorted(lines), crlf)
    for (action, split), lines in per_class_lines.items():
        write_lines(os.path.join(splits, f"{action}_{split}.txt"), lines, crlf)
    with open(os.path.join(out_dir, SETTINGS_FILE), "w") as handle:
        json.dump(settings, handle, indent=2)
    return out_dir


def generate_digits_dataset(out_dir, *, seed=0, canvas_size=96, train_per_class=60, test_per_class=70, digit_size=(28, 56),
                            backgrounds="sklearn", clutter=0):
    """Write the digits localization set at ``out_dir`` in the Stanford 40 layout.

    Args:
        out_dir: new or empty folder (written whole: ``mindgap.data.generated``).
        seed: everything written is a function of the arguments and this seed.
        canvas_size: side of the square images, in pixels.
        train_per_class: images per class in ``train.txt``.
        test_per_class: images per class in ``test.txt``; ``read_stanford40`` takes the first 50 of each class as
            test and the rest as val.
        digit_size: (smallest, largest) side of the scaled digit, in pixels.
        backgrounds: ``"sklearn"`` (scikit-learn's two photos) or ``"skimage"`` (those and :data:`SKIMAGE_PHOTOS`).
        clutter: small photo crops pasted beside the digit per image (:func:`paste_clutter`); 0 leaves the renders
            as they were.

    Returns:
        ``out_dir``.
    """
    if canvas_size < 16 or not 4 <= digit_size[0] <= digit_size[1] or train_per_class < 1 or test_per_class < 1 or clutter < 0:
        raise ValueError(
            f"Bad digits settings (canvas_size={canvas_size}, digit_size={digit_size}, train_per_class={train_per_class}, "
            f"test_per_class={test_per_class}, clutter={clutter}); use canvas_size >= 16, 4 <= min <= max digit size, "
            "counts >= 1, clutter >= 0."
        )
    digits = load_digits()
    photos = load_backgrounds(backgrounds)
    halves = source_halves(digits.target)

    def render(rng, label, half):
        sources = halves[label][half]
        source_index = int(sources[rng.integers(len(sources))])
        background = background_crop(rng, photos, canvas_size)
        canvas, _, box = render_canvas(rng, digits.images[source_index], background, digit_size)
        if clutter:
            paste_clutter(rng, canvas, photos, clutter, box)
        return canvas, box, source_index

    settings = dict(seed=seed, canvas_size=canvas_size, train_per_class=train_per_class, test_per_class=test_per_class,
                    digit_size=list(digit_size), renderer=RENDERER_VERSION)
    settings.update({name: value for name, value in dict(backgrounds=backgrounds, clutter=clutter).items()
                     if value != EXTRA_DEFAULTS[name]})  # a default set's file stays as it was
    return write_stanford40_set(out_dir, render, seed=seed, canvas_size=canvas_size, train_per_class=train_per_class,
                                test_per_class=test_per_class, settings=settings)


def ensure_digits_dataset(out_dir, **settings):
    """Generate the digits set at ``out_dir`` unless one with the same settings is already there."""
    wanted = {**DEFAULTS, **settings}
    recorded = {name: value for name, value in wanted.items() if name not in EXTRA_DEFAULTS or value != EXTRA_DEFAULTS[name]}
    recorded["digit_size"] = list(wanted["digit_size"])
    return ensure_set(out_dir, SETTINGS_FILE, lambda found: found == {**recorded, "renderer": RENDERER_VERSION},
                      lambda: generate_digits_dataset(out_dir, **wanted), "a digits set")


def main(argv=None):
    parser = settings_parser("digits", __doc__, DEFAULTS, helps={
        "digit_size": f"default {DEFAULTS['digit_size']}, or {FINE_GRAINED['digit_size']} with --fine-grained"})
    parser.set_defaults(canvas_size=None, digit_size=None)  # unset: the chosen set's
    parser.add_argument("--fine-grained", action="store_true",
                        help="Guided Zoom's set: small digits, scikit-image's photos too, clutter beside the digit")
    args = parser.parse_args(argv)
    settings = dict(FINE_GRAINED) if args.fine_grained else {}
    for name in ("canvas_size", "digit_size"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    settings["digit_size"] = tuple(settings.get("digit_size", DEFAULTS["digit_size"]))
    total = (args.train_per_class + args.test_per_class) * len(CLASS_NAMES)
    return run_generator(generate_digits_dataset, args.out_dir, lambda: f"Wrote {total} images of {len(CLASS_NAMES)} "
                         f"classes to {args.out_dir} (Stanford 40 layout).", seed=args.seed,
                         train_per_class=args.train_per_class, test_per_class=args.test_per_class, **settings)


if __name__ == "__main__":
    sys.exit(main())
