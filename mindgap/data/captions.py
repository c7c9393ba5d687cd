"""The embedded captioned set: scenes of two or three digits, captioned by a grammar, every noun phrase boxed.

Flickr30kEntities in miniature (thesis §7.5, Table 7.5): each image shows two or three
class digits of :mod:`mindgap.data.scenes` (scikit-learn's 8×8 digits through the digits
renderer, ``digits.render_canvas``, apart from each other) among Hershey-letter
distractors (``scenes.random_letter``) on a photo crop, and is captioned by a small
grammar over the digits' attributes and relations::

    caption  := phrase relation phrase [ "and" phrase ]
    phrase   := "a" [size] [colour] digit        size: small | big   colour: white | black
    relation := "left of" | "right of" | "above" | "below"

* **digit**: the class name (``zero`` … ``nine``);
* **size**: ``small`` when the digit's square is at most :data:`SMALL_MAX` px, ``big`` when at least
  :data:`BIG_MIN` px, nothing in between;
* **colour**: the renderer draws light ink on dark ground and dark on light (``render_canvas``):
  ``white`` / ``black`` is the ink it chose;
* **relation** of the first phrase to the second: along the axis where their ink boxes' centres differ most.

Every noun phrase is linked to its digit's ink box (``digits.ink_box``), the Flickr30kEntities annotation; each image
has :data:`CAPTIONS_PER_IMAGE` captions (the digits in other orders), the same digit keeping its entity id across them
(a coreference chain). Written in the Flickr30kEntities layout (``Sentences/``, ``Annotations/``,
``flickr30k-images/``, ``train.txt`` …; :mod:`mindgap.data.flickr30k` reads it), with ``mindgap_captions.json``
holding the settings.  Training images use the training half of scikit-learn's digits (``digits.source_halves``),
validation and test images the test half.

:func:`parse_caption` reads a caption of this grammar back to its phrases (digit, size, colour)
and relation.  Command line: ``python -m mindgap.data.captions OUT_DIR [--seed 0] ...``
"""

import json
import os
import sys

import cv2
import numpy as np
from sklearn.datasets import load_digits

from mindgap.data.digits import (CLASS_NAMES, background_crop, distort_digit, load_backgrounds, render_canvas,
                                 source_halves)
from mindgap.data.flickr30k import ANNOTATIONS_DIR, IMAGE_DIRS, SENTENCES_DIR, read_flickr30k_entities
from mindgap.data.generated import known_settings, run_generator, settings_parser, writes_whole_set
from mindgap.data.records import DatasetError, write_lines
from mindgap.data.scenes import MARGIN, place_squares, random_letter

SETTINGS_FILE = "mindgap_captions.json"
CAPTIONS_VERSION = 1
ENTITY_TYPE = "digit"
SIZES = ("small", "big")
COLOURS = ("white", "black")
RELATIONS = (("left", "of"), ("right", "of"), ("above",), ("below",))
SMALL_MAX = 13  # px of the digit's square at the default 64 px canvas
BIG_MIN = 19
CAPTIONS_PER_IMAGE = 2
DEFAULTS = dict(seed=0, canvas_size=64, train_images=1200, val_images=100, test_images=200, digit_size=(11, 21),
                digits=(2, 3), distractors=(1, 2), distorted=0.5, backgrounds="skimage")
_JPEG_QUALITY = 95
_LAYOUT_TRIES = 20


def size_word(side, small_max=SMALL_MAX, big_min=BIG_MIN):
    """``"small"``, ``"big"`` or None for a digit drawn in a square of ``side`` px."""
    return "small" if side <= small_max else "big" if side >= big_min else None


def colour_word(background, ink):
    """``"white"`` or ``"black"``: the ink colour ``digits.render_canvas`` chose, light where the ``background`` (BGR,
    before the digit was drawn) under the digit's ``ink`` (0–1) is darker than 128 on average, dark otherwise."""
    luminance = cv2.cvtColor(background, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return "white" if float((luminance * ink).sum() / max(float(ink.sum()), 1e-6)) < 128 else "black"


def relation_words(first_box, second_box):
    """Where the first box is with respect to the second, along the axis where their centres differ most."""
    dx = (first_box[0] + first_box[2] - second_box[0] - second_box[2]) / 2
    dy = (first_box[1] + first_box[3] - second_box[1] - second_box[3]) / 2
    if abs(dx) >= abs(dy):
        return RELATIONS[0] if dx < 0 else RELATIONS[1]
    return RELATIONS[2] if dy < 0 else RELATIONS[3]


def phrase_words(digit):
    """``("a", [size], [colour], name)`` of a digit ``{"label", "size", "colour"}``."""
    return ("a", *(word for word in (digit.get("size"), digit.get("colour")) if word), CLASS_NAMES[digit["label"]])


def describe(digits, order):
    """A caption of ``digits`` (dicts with ``label``, ``box``, ``size``, ``colour``) mentioned in ``order``.

    Returns ``(words, phrases)``: ``phrases`` is ``[(first word index, number of words, digit index)]``, one per
    digit in ``order``; the relation is the first digit's to the second's.
    """
    if not 2 <= len(order) <= 3:
        raise ValueError(f"A caption mentions two or three digits, got {len(order)}.")
    words, phrases = [], []
    for position, index in enumerate(order):
        if position == 1:
            words.extend(relation_words(digits[order[0]]["box"], digits[index]["box"]))
        elif position == 2:
            words.append("and")
        phrase = phrase_words(digits[index])
        phrases.append((len(words), len(phrase), index))
        words.extend(phrase)
    return tuple(words), phrases


def parse_caption(words):
    """Read a caption of the grammar back: ``{"phrases": [{"label", "size", "colour", "first_word", "last_word"}],
    "relation": (words)}``; a ``ValueError`` names the first word that does not fit."""
    words = [str(word).lower() for word in words]
    phrases, relation, position = [], None, 0

    def fail(what):
        shown = words[position] if position < len(words) else "the end"
        raise ValueError(f"Caption {' '.join(words)!r} does not fit the grammar: {what} expected at {shown!r}.")

    while True:
        if position >= len(words) or words[position] != "a":
            fail("'a'")
        phrase = {"first_word": position, "size": None, "colour": None}
        position += 1
        if position < len(words) and words[position] in SIZES:
            phrase["size"], position = words[position], position + 1
        if position < len(words) and words[position] in COLOURS:
            phrase["colour"], position = words[position], position + 1
        if position >= len(words) or words[position] not in CLASS_NAMES:
            fail("a digit's name")
        phrase.update(label=CLASS_NAMES.index(words[position]), last_word=position)
        phrases.append(phrase)
        position += 1
        if position == len(words):
            break
        if len(phrases) == 1:
            relation = next((candidate for candidate in RELATIONS if tuple(words[position:position + len(candidate)]) == candidate), None)
            if relation is None:
                fail("a relation (left of, right of, above, below)")
            position += len(relation)
        elif len(phrases) == 2 and words[position] == "and":
            position += 1
        else:
            fail("the end")
    if len(phrases) < 2:
        fail("a relation")
    return {"phrases": phrases, "relation": relation}


def markup(words, phrases, entity_ids):
    """Flickr30kEntities' sentence line: each phrase as ``[/EN#<id>/digit words]``."""
    starts = {first: (count, entity_ids[index]) for first, count, index in phrases}
    tokens, position = [], 0
    while position < len(words):
        if position in starts:
            count, entity = starts[position]
            tokens.append(f"[/EN#{entity}/{ENTITY_TYPE} {' '.join(words[position:position + count])}]")
            position += count
        else:
            tokens.append(words[position])
            position += 1
    return " ".join(tokens)


def annotation_xml(file_name, size, boxes_by_entity):
    """Flickr30kEntities' XML: one ``<object>`` per box, 1-based inclusive coordinates (``[x0, x1)`` → ``x0+1 .. x1``)."""
    objects = "".join(
        f"<object><name>{entity}</name><bndbox><xmin>{box[0] + 1}</xmin><ymin>{box[1] + 1}</ymin>"
        f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
        for entity, boxes in boxes_by_entity.items() for box in boxes)
    return (f"<annotation><filename>{file_name}</filename><size><width>{size}</width><height>{size}</height>"
            f"<depth>3</depth></size>{objects}</annotation>\n")


def render_captioned_scene(rng, glyphs, background, *, digit_size, distractors, distorted):
    """Draw the class digits (8×8 glyphs of 0–16, with their labels) apart and letters clear of them.

    ``glyphs``: [(label, glyph)].  Returns ``(canvas, digits)``, ``digits`` a list of
    ``{"label", "box", "side", "size", "colour"}`` in drawing order.
    """
    size = background.shape[0]
    sides = [int(side) for side in rng.integers(digit_size[0], digit_size[1] + 1, size=len(glyphs))]
    for _ in range(_LAYOUT_TRIES):  # a crowded draw starts over (place_squares leaves out what it cannot fit)
        squares = place_squares(rng, size, sides, margin=MARGIN)
        if len(squares) == len(glyphs):
            break
    else:
        raise ValueError(f"{len(glyphs)} digits of {sides} px do not fit apart on a {size} px canvas; use a larger "
                         "canvas or smaller digits.")
    canvas, digits = background, []
    for (label, glyph), (top, left, side) in zip(glyphs, squares):
        glyph = distort_digit(rng, glyph) if rng.random() < distorted else glyph
        below = canvas
        canvas, ink, box = render_canvas(rng, glyph, below, digit_size, side=side, position=(top, left))
        digits.append({"label": int(label), "box": tuple(int(value) for value in box), "side": side,
                       "size": size_word(side * 64 / size), "colour": colour_word(below, ink)})
    count = int(rng.integers(distractors[0], distractors[1] + 1))
    letter_sides = [int(value) for value in rng.integers(digit_size[0], digit_size[1] + 1, size=count)]
    for top, left, side in place_squares(rng, size, letter_sides, keep_clear=squares):
        canvas, _, _ = render_canvas(rng, random_letter(rng, distorted), canvas, digit_size, side=side, position=(top, left))
    return canvas, digits


def entering_clip(rng, glyphs, background, *, frames=8, enters=4, digit_size=DEFAULTS["digit_size"]):
    """The video version in one clip: digit 0 moves left to right along the top half in every frame, digit 1 enters the
    bottom half at frame ``enters`` and stays (so its word's evidence has a place in time).

    ``glyphs``: two (label, 8×8 glyph).  Returns ``(frames (T, s, s, 3) BGR, digits, boxes (2, T, 4) with -1 where a digit
    is absent)``; ``digits`` describe the last frame (both visible) for :func:`describe`.
    """
    size = background.shape[0]
    side = int(np.mean(digit_size))
    colour_seeds = [int(rng.integers(2**31)) for _ in glyphs]
    clip, boxes, digits = [], -np.ones((2, frames, 4), np.int64), []
    for time in range(frames):
        canvas = background
        places = [(size // 8, int(round(time / max(frames - 1, 1) * (size - side)))), (size - side - size // 8, size // 2 - side // 2)]
        for index, ((label, glyph), (top, left)) in enumerate(zip(glyphs, places)):
            if index == 1 and time < enters:
                continue
            below = canvas
            canvas, ink, box = render_canvas(np.random.default_rng(colour_seeds[index]), glyph, below, digit_size, side=side,
                                             position=(top, left))
            boxes[index, time] = box
            if time == frames - 1:
                digits.append({"label": int(label), "box": tuple(int(value) for value in box), "side": side,
                               "size": size_word(side * 64 / size), "colour": colour_word(below, ink)})
        clip.append(canvas)
    return np.stack(clip), digits, boxes


def _check_settings(settings):
    low, high = settings["digit_size"]
    few, many = settings["digits"]
    if (settings["canvas_size"] < 32 or not 4 <= low <= high <= settings["canvas_size"] // 3 or not 2 <= few <= many <= 3
            or not 0 <= settings["distractors"][0] <= settings["distractors"][1] or not 0.0 <= settings["distorted"] <= 1.0
            or min(settings[f"{split}_images"] for split in ("train", "val", "test")) < 1):
        raise ValueError(f"Bad captions settings {settings}; use canvas_size >= 32, 4 <= min <= max digit size <= "
                         "canvas/3, 2 <= min <= max digits <= 3, 0 <= min <= max distractors, 0 <= distorted <= 1, "
                         "image counts >= 1.")


def resolve_settings(**settings):
    settings = known_settings(settings, DEFAULTS, "captions")
    for name in ("digit_size", "digits", "distractors"):
        settings[name] = tuple(int(value) for value in settings[name])
    _check_settings(settings)
    return settings


@writes_whole_set(SETTINGS_FILE)
def generate_captions_set(out_dir, **settings):
    """Write the embedded captioned set (settings: :data:`DEFAULTS`) at ``out_dir``, Flickr30kEntities' layout."""
    settings = resolve_settings(**settings)
    source = load_digits()
    halves = source_halves(source.target)
    photos = load_backgrounds(settings["backgrounds"])
    size = settings["canvas_size"]
    for folder in (SENTENCES_DIR, ANNOTATIONS_DIR, IMAGE_DIRS[0]):
        os.makedirs(os.path.join(out_dir, folder))
    for split_index, split in enumerate(("train", "val", "test")):
        rng = np.random.default_rng([settings["seed"], split_index])
        half = 0 if split == "train" else 1
        ids = []
        for number in range(settings[f"{split}_images"]):
            count = int(rng.integers(settings["digits"][0], settings["digits"][1] + 1))
            labels = rng.choice(len(CLASS_NAMES), size=count, replace=False)
            glyphs = [(label, source.images[halves[label][half][rng.integers(len(halves[label][half]))]]) for label in labels]
            canvas, digits = render_captioned_scene(
                rng, glyphs, background_crop(rng, photos, size), digit_size=settings["digit_size"],
                distractors=settings["distractors"], distorted=settings["distorted"] if half == 0 else 0.0)
            image_id = f"{split}_{number:05d}"
            entity_ids = [str(index + 1) for index in range(count)]
            orders = [list(range(count))] + [list(rng.permutation(count)) for _ in range(CAPTIONS_PER_IMAGE - 1)]
            lines = [markup(*describe(digits, order), entity_ids) for order in orders]
            cv2.imwrite(os.path.join(out_dir, IMAGE_DIRS[0], f"{image_id}.jpg"), canvas,
                        [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
            write_lines(os.path.join(out_dir, SENTENCES_DIR, f"{image_id}.txt"), lines)
            with open(os.path.join(out_dir, ANNOTATIONS_DIR, f"{image_id}.xml"), "w", encoding="utf-8") as handle:
                handle.write(annotation_xml(f"{image_id}.jpg", size,
                                            {entity: [digit["box"]] for entity, digit in zip(entity_ids, digits)}))
            ids.append(image_id)
        write_lines(os.path.join(out_dir, f"{split}.txt"), ids)
    with open(os.path.join(out_dir, SETTINGS_FILE), "w", encoding="utf-8") as handle:
        json.dump(_recorded(settings), handle, indent=1)


def _recorded(settings):
    return {"set": "captions", "version": CAPTIONS_VERSION,
            **{name: list(value) if isinstance(value, tuple) else value for name, value in settings.items()}}


def ensure_captions_set(out_dir, **settings):
    """Generate the set at ``out_dir`` unless one with the same settings is there (another set there is an error)."""
    wanted = _recorded(resolve_settings(**settings))
    marker = os.path.join(out_dir, SETTINGS_FILE)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as handle:
            found = json.load(handle)
        if found == wanted:
            return os.fspath(out_dir)
        raise FileExistsError(f"{out_dir!r} holds a captioned set made with other settings ({found}); pass another folder.")
    return generate_captions_set(out_dir, **settings)


def load_captions_set(root, splits=("train", "val", "test")):
    """{split: [CaptionedImage]} of the set at ``root`` (Flickr30kEntities reader), every caption parsed by the grammar."""
    if not os.path.isfile(os.path.join(root, SETTINGS_FILE)):
        raise DatasetError(f"{root!r} is not an embedded captioned set (no {SETTINGS_FILE}); make one with "
                           "python -m mindgap.data.captions OUT_DIR.")
    dataset = read_flickr30k_entities(root, splits)
    for records in dataset.values():
        for record in records:
            for caption in record.captions:
                parsed = parse_caption(caption.words)
                if [phrase["first_word"] for phrase in parsed["phrases"]] != [phrase.first_word for phrase in caption.phrases]:
                    raise DatasetError(f"The phrases of {caption.text!r} ({record.image_id}) are not marked where the "
                                       "grammar puts them; regenerate the set.")
    return dataset


def main(argv=None):
    args = settings_parser("captions", __doc__, DEFAULTS).parse_args(argv)
    return run_generator(generate_captions_set, args.out_dir, lambda: f"Wrote the captioned set to {args.out_dir} "
                         "(Flickr30kEntities layout).", **{name: getattr(args, name) for name in DEFAULTS})


if __name__ == "__main__":
    sys.exit(main())
