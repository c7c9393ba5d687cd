"""The scenes set: one small class digit anywhere among letters drawn the same way, on photos.

The digits set (:mod:`mindgap.data.digits`) draws one large digit as the only high-contrast object of its canvas:
every saliency method finds it, and a point at the image's centre already hits its box on 68 % of the images.  Here
the task of localization is real:

* **the class digit is small and anywhere**: a square of ``digit_size`` pixels (18–27 px on a 96 px canvas; the
  digit's ink box, about two thirds as wide as tall, covers 2.4–5.4 % of the image) at a uniformly random position
  (12–18 px at the quick mode's 64² input: at 10–16 px the best quick model read 78 % of the test digits);
* **distractors look like it but belong to no class**: 2–4 capital letters of OpenCV's Hershey fonts from an alphabet
  that shares no shape with a digit (:data:`LETTERS`: no O, I, Z, S, B, G, …), each first reduced to an 8×8 glyph of
  0–16 like scikit-learn's digits, so that the same renderer draws it at the same sizes with the same ink and outline
  (``digits.render_canvas``); their squares never overlap the class digit's (a margin of :data:`MARGIN` px around it),
  so the class box is the digit's ink alone;
* **backgrounds**: crops of scikit-learn's and scikit-image's photos;
* **more hands**: in the training split, a share ``distorted`` of the digits *and* of the letters is rotated, sheared
  and stretched first (``digits.distort_digit``), since scikit-learn's 1,797 digits give about 90 training sources a
  class; the same share for both, so that distortion tells nothing of the class.  Test images show their source digits
  as written.

The class digit comes from the training half of scikit-learn's digits for ``train.txt`` and the test half for
``test.txt`` (``digits.source_halves``). Written in the Stanford 40 layout by ``digits.write_stanford40_set``.

**Pairs** (:func:`generate_pairs_dataset`, Guided Zoom's fine-grained set, thesis ch. 6): a class is an unordered pair
of two different digits of :data:`PAIR_DIGITS` ("zero-one" … "three-four", 10 classes), drawn apart in one scene with
the letters.  Each digit alone leaves four classes open, so the evidence of a class is in two places: the first
erasing round of Guided Zoom has the second part to find.  Each image has two boxes (two ``<object>`` elements), one
per digit.

**A source domain** (:func:`render_source_scene`; the pretraining of chapter 3's conservative-filter study, thesis
§3.4, where ImageNet differs from the video frames): printed digits (:data:`FONTS`, reduced like the letters) among
the same letters, in saturated colours without an outline (:func:`draw_printed`), on tinted crops of scikit-image's
grey pictures (:data:`SOURCE_PICTURES`): other glyphs, other ink, other backgrounds than the frames, the same task.

Command line: ``python -m mindgap.data.scenes OUT_DIR [--pairs] [--seed 0] ...``
"""

import functools
import itertools
import sys

import cv2
import numpy as np
from sklearn.datasets import load_digits

from mindgap.data.digits import (CLASS_NAMES, INK_FLOOR, INK_SOLID, SETTINGS_FILE, background_crop, distort_digit, ink_box,
                                 load_backgrounds, render_canvas, skimage_photos, source_halves, write_stanford40_set)
from mindgap.data.generated import ensure_set, known_settings, run_generator, settings_parser

SCENES_VERSION = 1
# Capital letters that share no shape with a digit (no O/D/Q ~ 0, I/J/L/T ~ 1/7, Z ~ 2, E ~ 3, A ~ 4, S ~ 5,
# G/b ~ 6, B ~ 8, P/g ~ 9, Y ~ 4/7, V ~ 7): the distractors come from a disjoint alphabet.
LETTERS = "CFHKMNRUWX"
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX)
STROKES = (2, 3)  # Hershey stroke widths at the 32 px drawing size
MARGIN = 2  # px kept free around the class digit's square (the outline is 1 px)
DEFAULTS = dict(seed=0, canvas_size=96, train_per_class=60, test_per_class=70, digit_size=(18, 27), distractors=(2, 4),
                distorted=0.5, backgrounds="skimage")
# scikit-image's grey pictures (none of the photos the frames and the scenes are drawn on).
SOURCE_PICTURES = ("camera.png", "coins.png", "moon.png", "page.png", "text.png", "clock_motion.png", "cell.png",
                   "microaneurysms.png", "phantom.png")
PAIR_DIGITS = (0, 1, 2, 3, 4)
PAIRS = tuple(itertools.combinations(PAIR_DIGITS, 2))
PAIR_CLASS_NAMES = tuple(f"{CLASS_NAMES[first]}-{CLASS_NAMES[second]}" for first, second in PAIRS)
PAIRS_DEFAULTS = dict(DEFAULTS, distractors=(1, 3))
_GLYPH_DRAWING_SIDE = 32
_LETTER_WIDTH = 0.7  # a letter's ink is drawn this much narrower than its aspect ratio, to a digit's proportions
_PLACEMENT_TRIES = 50


@functools.lru_cache(maxsize=None)
def letter_glyph(letter, font=FONTS[0], stroke=STROKES[0]):
    """``letter`` drawn by OpenCV's Hershey ``font`` and reduced to an 8×8 glyph of 0–16 (scikit-learn's digits' format):
    the ink's tight box area-averaged to all 8 rows and, centred, 3–7 columns (``_LETTER_WIDTH`` of its aspect ratio),
    its maximum scaled to 16."""
    side = _GLYPH_DRAWING_SIDE
    drawing = np.zeros((2 * side, 2 * side), np.uint8)
    (width, height), _ = cv2.getTextSize(letter, font, 1.0, stroke)
    scale = 0.8 * side / max(width, height)
    cv2.putText(drawing, letter, (side // 2, side + side // 2), font, scale, 255, stroke, cv2.LINE_AA)
    rows, columns = np.flatnonzero(drawing.any(axis=1)), np.flatnonzero(drawing.any(axis=0))
    ink = drawing[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1].astype(np.float32)
    # As tall as the glyph square and about as wide as a scikit-learn digit (whose ink spans 4-6 of 8 columns).
    columns = int(np.clip(round(8 * _LETTER_WIDTH * ink.shape[1] / ink.shape[0]), 3, 7))
    glyph = np.zeros((8, 8), np.float32)
    left = (8 - columns) // 2
    glyph[:, left:left + columns] = cv2.resize(ink, (columns, 8), interpolation=cv2.INTER_AREA)
    return glyph * (16.0 / glyph.max())


def squares_overlap(square, others, margin):
    top, left, side = square
    return any(top < other_top + other_side + margin and other_top < top + side + margin and
               left < other_left + other_side + margin and other_left < left + side + margin
               for other_top, other_left, other_side in others)


def place_squares(rng, canvas_size, sides, keep_clear=(), margin=MARGIN):
    """(top, left, side) of squares of ``sides``, uniformly placed, none within ``margin`` px of the squares
    ``keep_clear`` or of each other; a square that finds no place in :data:`_PLACEMENT_TRIES` tries is left out."""
    placed = []
    for side in sides:
        for _ in range(_PLACEMENT_TRIES):
            top, left = (int(value) for value in rng.integers(0, canvas_size - side + 1, size=2))
            if not squares_overlap((top, left, side), list(keep_clear) + placed, margin):
                placed.append((top, left, side))
                break
    return placed


def random_letter(rng, distorted):
    """An 8×8 (or, distorted, 32×32) glyph of a random letter of :data:`LETTERS`, font and stroke."""
    glyph = letter_glyph(LETTERS[rng.integers(len(LETTERS))], FONTS[rng.integers(len(FONTS))],
                         STROKES[rng.integers(len(STROKES))])
    return distort_digit(rng, glyph) if rng.random() < distorted else glyph


def draw_printed(rng, glyph, background, digit_size, *, side, position):
    """The source domain's ink: ``glyph`` (0–16) at ``side`` px and ``position`` (top, left) in one saturated colour
    (a random hue), no outline.  Returns ``(canvas, ink, box)`` as ``digits.render_canvas``."""
    size = background.shape[0]
    side = min(int(side), size)
    top, left = (int(np.clip(value, 0, size - side)) for value in position)
    ink = np.zeros((size, size), np.float32)
    patch = cv2.resize(np.asarray(glyph, np.float32) / 16.0, (side, side), interpolation=cv2.INTER_LINEAR)
    ink[top:top + side, left:left + side] = np.clip((patch - INK_FLOOR) / (INK_SOLID - INK_FLOOR), 0.0, 1.0)
    hue = np.uint8([[[rng.integers(180), rng.integers(200, 256), rng.integers(160, 256)]]])
    colour = cv2.cvtColor(hue, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
    canvas = background.astype(np.float32) * (1.0 - ink[..., None]) + colour * ink[..., None]
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8), ink, ink_box(ink)


def printed_digit(rng, label, distorted=0.0):
    """Digit ``label`` printed in a random Hershey font and stroke, as an 8×8 glyph of 0–16 (distorted: 32×32)."""
    glyph = letter_glyph(str(int(label)), FONTS[rng.integers(len(FONTS))], STROKES[rng.integers(len(STROKES))])
    return distort_digit(rng, glyph) if rng.random() < distorted else glyph


def load_source_pictures():
    """scikit-image's grey pictures :data:`SOURCE_PICTURES` (BGR, 3 equal channels)."""
    return skimage_photos(SOURCE_PICTURES)


def source_background(rng, pictures, size):
    """A crop of a grey picture, tinted by a random colour: the source domain's background."""
    grey = background_crop(rng, pictures, size).astype(np.float32)
    tint = rng.uniform(0.3, 1.0, size=3).astype(np.float32)
    return np.clip(grey * tint, 0, 255).astype(np.uint8)


def render_source_scene(rng, label, pictures, size, *, digit_size, distractors, distorted=0.0):
    """One render of the source domain: printed digit ``label`` among printed letters on a tinted grey picture."""
    return render_scene(rng, printed_digit(rng, label, distorted), source_background(rng, pictures, size),
                        digit_size=digit_size, distractors=distractors, distorted=distorted, draw=draw_printed)


def render_scene(rng, digit, background, *, digit_size=DEFAULTS["digit_size"], distractors=DEFAULTS["distractors"],
                 distorted=DEFAULTS["distorted"], draw=render_canvas):
    """Draw the class ``digit`` (8×8, 0–16) and its distractor letters on ``background`` (a square BGR canvas).

    ``draw`` puts one glyph on the canvas (``digits.render_canvas``: light or dark ink with an outline;
    :func:`draw_printed` for the source domain).  Returns ``(canvas, box, distractor_boxes)``: the class digit's ink
    box and each letter's, in pixel-edge coordinates (exclusive ends).
    """
    canvas_size = background.shape[0]
    # The class digit is drawn first and from its own draws, so a scene differs from the digit alone only by letters.
    if rng.random() < distorted:
        digit = distort_digit(rng, digit)
    side = int(rng.integers(digit_size[0], digit_size[1] + 1))
    digit_square = place_squares(rng, canvas_size, [side], margin=0)[0]
    canvas, _, box = draw(rng, digit, background, digit_size, side=side, position=digit_square[:2])
    count = int(rng.integers(distractors[0], distractors[1] + 1))
    sides = [int(value) for value in rng.integers(digit_size[0], digit_size[1] + 1, size=count)]
    distractor_boxes = []
    for top, left, letter_side in place_squares(rng, canvas_size, sides, keep_clear=[digit_square]):
        canvas, _, letter_box = draw(rng, random_letter(rng, distorted), canvas, digit_size, side=letter_side,
                                     position=(top, left))
        distractor_boxes.append(letter_box)
    return canvas, box, distractor_boxes


def render_pair(rng, digits, background, *, digit_size=PAIRS_DEFAULTS["digit_size"],
                distractors=PAIRS_DEFAULTS["distractors"], distorted=PAIRS_DEFAULTS["distorted"]):
    """Draw two class digits (8×8, 0–16; in random order) apart, and letters clear of both, on ``background``.

    Returns ``(canvas, [box of each digit], distractor boxes)``.
    """
    canvas_size = background.shape[0]
    digits = [distort_digit(rng, digit) if rng.random() < distorted else digit for digit in digits]
    sides = [int(side) for side in rng.integers(digit_size[0], digit_size[1] + 1, size=len(digits))]
    squares = place_squares(rng, canvas_size, sides)
    if len(squares) < len(digits):
        raise ValueError(f"{len(digits)} digits of {sides} px do not fit apart on a {canvas_size} px canvas.")
    canvas, boxes = background, []
    for digit, (top, left, side) in zip(digits, squares):
        canvas, _, box = render_canvas(rng, digit, canvas, digit_size, side=side, position=(top, left))
        boxes.append(box)
    count = int(rng.integers(distractors[0], distractors[1] + 1))
    letter_sides = [int(value) for value in rng.integers(digit_size[0], digit_size[1] + 1, size=count)]
    distractor_boxes = []
    for top, left, side in place_squares(rng, canvas_size, letter_sides, keep_clear=squares):
        canvas, _, letter_box = render_canvas(rng, random_letter(rng, distorted), canvas, digit_size, side=side,
                                              position=(top, left))
        distractor_boxes.append(letter_box)
    return canvas, boxes, distractor_boxes


def _check_settings(settings):
    low, high = settings["digit_size"]
    few, many = settings["distractors"]
    if (settings["canvas_size"] < 32 or not 4 <= low <= high <= settings["canvas_size"] // 2 or not 0 <= few <= many
            or not 0.0 <= settings["distorted"] <= 1.0 or settings["train_per_class"] < 1 or settings["test_per_class"] < 1):
        raise ValueError(f"Bad scenes settings {settings}; use canvas_size >= 32, 4 <= min <= max digit size <= canvas/2, "
                         "0 <= min <= max distractors, 0 <= distorted <= 1, counts >= 1.")


def _prepare(kind, defaults, settings):
    """(checked settings, scikit-learn's digits, the photos, the source halves) of a set of ``kind``."""
    settings = known_settings(settings, defaults, kind)
    settings["digit_size"], settings["distractors"] = tuple(settings["digit_size"]), tuple(settings["distractors"])
    _check_settings(settings)
    digits = load_digits()
    return settings, digits, load_backgrounds(settings["backgrounds"]), source_halves(digits.target)


def generate_scenes_dataset(out_dir, **settings):
    """Write the scenes set (settings: :data:`DEFAULTS`) at ``out_dir`` in the Stanford 40 layout; returns ``out_dir``."""
    settings, digits, photos, halves = _prepare("scenes", DEFAULTS, settings)
    size = settings["canvas_size"]

    def render(rng, label, half):
        sources = halves[label][half]
        source_index = int(sources[rng.integers(len(sources))])
        canvas, box, _ = render_scene(rng, digits.images[source_index], background_crop(rng, photos, size),
                                      digit_size=settings["digit_size"], distractors=settings["distractors"],
                                      distorted=settings["distorted"] if half == 0 else 0.0)
        return canvas, box, source_index

    return write_stanford40_set(out_dir, render, seed=settings["seed"], canvas_size=size,
                                train_per_class=settings["train_per_class"], test_per_class=settings["test_per_class"],
                                settings=_recorded(settings))


def generate_pairs_dataset(out_dir, **settings):
    """Write the pairs set (settings: :data:`PAIRS_DEFAULTS`; classes :data:`PAIR_CLASS_NAMES`) at ``out_dir``."""
    settings, digits, photos, halves = _prepare("pairs", PAIRS_DEFAULTS, settings)
    size = settings["canvas_size"]

    def render(rng, label, half):
        chosen = [int(halves[digit][half][rng.integers(len(halves[digit][half]))]) for digit in PAIRS[label]]
        if rng.random() < 0.5:
            chosen = chosen[::-1]
        canvas, boxes, _ = render_pair(rng, [digits.images[index] for index in chosen], background_crop(rng, photos, size),
                                       digit_size=settings["digit_size"], distractors=settings["distractors"],
                                       distorted=settings["distorted"] if half == 0 else 0.0)
        return canvas, boxes, chosen[0]

    return write_stanford40_set(out_dir, render, seed=settings["seed"], canvas_size=size,
                                train_per_class=settings["train_per_class"], test_per_class=settings["test_per_class"],
                                settings=_recorded(settings, "pairs"), class_names=PAIR_CLASS_NAMES)


def ensure_pairs_dataset(out_dir, **settings):
    """Generate the pairs set at ``out_dir`` unless one with the same settings is already there."""
    return _ensure(out_dir, {**PAIRS_DEFAULTS, **settings}, "pairs", generate_pairs_dataset)


def _recorded(settings, kind="scenes"):
    return {"set": kind, "version": SCENES_VERSION,
            **{name: list(value) if isinstance(value, tuple) else value for name, value in settings.items()}}


def ensure_scenes_dataset(out_dir, **settings):
    """Generate the scenes set at ``out_dir`` unless one with the same settings is already there."""
    return _ensure(out_dir, {**DEFAULTS, **settings}, "scenes", generate_scenes_dataset)


def _ensure(out_dir, wanted, kind, generate):
    recorded = _recorded({name: tuple(value) if isinstance(value, list) else value for name, value in wanted.items()}, kind)
    return ensure_set(out_dir, SETTINGS_FILE, lambda found: found == recorded, lambda: generate(out_dir, **wanted),
                      "an embedded set")


def main(argv=None):
    parser = settings_parser("scenes", __doc__, DEFAULTS, helps={
        "distractors": f"letters per image (default {DEFAULTS['distractors']}, pairs {PAIRS_DEFAULTS['distractors']})",
        "distorted": f"share of digits and letters rotated, sheared and stretched first (default {DEFAULTS['distorted']})"})
    parser.set_defaults(distractors=None)  # unset: the chosen set's
    parser.add_argument("--pairs", action="store_true", help="Guided Zoom's set: a class is a pair of digits (two boxes)")
    args = vars(parser.parse_args(argv))
    out_dir, pairs = args.pop("out_dir"), args.pop("pairs")
    if args["distractors"] is None:
        args["distractors"] = (PAIRS_DEFAULTS if pairs else DEFAULTS)["distractors"]
    total = (args["train_per_class"] + args["test_per_class"]) * len(CLASS_NAMES)
    return run_generator(generate_pairs_dataset if pairs else generate_scenes_dataset, out_dir,
                         lambda: f"Wrote {total} scenes of {len(CLASS_NAMES)} classes to {out_dir} (Stanford 40 layout).",
                         **args)


if __name__ == "__main__":
    sys.exit(main())
