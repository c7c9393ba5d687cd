"""The embedded video set: moving digits on panning photos, trimmed clips and the thesis's untrimmed ones.

Thesis ch. 7 §7.4.2 concatenates a ground-truth (*GT*) UCF101 video with a random (*rand*) one of another class; here
an *action* is one digit of a class (scikit-learn's 8×8 digits, drawn by ``mindgap.data.digits``' renderer) that moves
along a straight path and changes size over a background crop that pans across a photo; a new action starts with a new
digit, path and photo (a cut, as between two concatenated videos).  The photos are scikit-learn's two (``china.jpg``,
``flower.jpg``) and the colour photos bundled in scikit-image (:data:`SKIMAGE_PHOTOS`).

**Splits** (``splits/<name>.txt``, one clip folder name a line):

==================  =====================================================================
``train``, ``val``  trimmed clips (GT only, ``short_frames`` frames): training (training-half digits)
``test``            trimmed clips of test-half digits (accuracy, spatial pointing game)
``gt_rand``         GT then rand, halves of ``short_frames`` (thesis: 16) frames (Figure 7.6)
``rand_gt``         rand then GT, same
``rand_gt_rand``    GT of ``gt_lengths`` frames at a random place in ``long_frames`` (Table 7.2)
==================  =====================================================================

``gt_lengths`` default to the thesis's 11, 41 and 65 of 128 frames scaled to
``long_frames`` (:func:`scaled_lengths`: 3, 10, 16 of 32).

**Distractors** (``distractors=(fewest, most)``, :data:`SCENES_VIDEO`): capital letters of :mod:`mindgap.data.scenes`
(an alphabet disjoint from the digits, drawn by the same renderer) that move along their own straight paths, never
within ``scenes.MARGIN`` px of the digit's square in any frame, so that the digit's box stays its ink alone.  The
default ``(0, 0)`` draws none and leaves the renders of a set made before they existed unchanged.

**Layout**: ``mindgap.data.clips`` (the ``video`` layout of ``mindgap.data.layouts``) reads
the set, ``mindgap.data.check.check_clips`` checks it, ``mindgap.data.pipeline.make_video_dataset``
batches it; their names are importable from here too.

Command line: ``python -m mindgap.data.video OUT_DIR [--seed 0] ...``
"""

import json
import os
import sys

import cv2
import numpy as np
from sklearn.datasets import load_digits

from mindgap.data import digits
from mindgap.data.check import check_clips
# The reader's names stay importable from here, as before the video layout had its own modules.
from mindgap.data.clips import (CLIP_FILE, CLIPS_DIR, SETTINGS_FILE, SPLITS, SPLITS_DIR, Clip, VideoDataset,  # noqa: F401
                                load_clip_frames, read_video_set)
from mindgap.data.generated import ensure_set, known_settings, run_generator, settings_parser, writes_whole_set
from mindgap.data.pipeline import make_video_dataset  # noqa: F401 (importable from here, as before)
from mindgap.data.records import write_lines
from mindgap.data.scenes import MARGIN, random_letter, squares_overlap

THESIS_LONG_FRAMES = 128
THESIS_GT_LENGTHS = (11, 41, 65)  # of 128 frames (Table 7.2)
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png",
                  "retina.jpg", "motorcycle_left.png")
DEFAULTS = dict(seed=0, frame_size=48, short_frames=16, long_frames=32, gt_lengths=None, train_per_class=40,
                val_per_class=8, test_per_class=10, untrimmed_per_class=6, digit_size=(18, 32), digit_growth=0.3,
                distractors=(0, 0))
# The video set that can tell (quick mode of experiments.spatiotemporal): a small digit among 2-4 moving letters of
# mindgap.data.scenes in 64 px frames (the Tiny backbone's 8 x 8 maps), where the centre no longer points at the digit.
SCENES_VIDEO = dict(frame_size=64, digit_size=(12, 18), distractors=(2, 4))
_JPEG_QUALITY = 95
PHOTO_SIDE = 256  # photos are shrunk once to this shorter side


def scaled_lengths(long_frames, lengths=THESIS_GT_LENGTHS, reference=THESIS_LONG_FRAMES):
    """The thesis's GT lengths (11, 41, 65 of 128) in the same proportion of ``long_frames``, at least 1 frame each."""
    return tuple(max(1, int(round(length * long_frames / reference))) for length in lengths)


def load_photos():
    """BGR photos: scikit-learn's two, then the colour photos of :data:`SKIMAGE_PHOTOS` that scikit-image ships."""
    photos = [*digits.load_backgrounds(),
              *(photo for photo in digits.skimage_photos(SKIMAGE_PHOTOS) if min(photo.shape[:2]) >= 64)]
    return [_shrink(photo) for photo in photos]


def _shrink(photo, side=PHOTO_SIDE):
    scale = side / min(photo.shape[:2])  # crops of a few hundred pixels become 48-pixel frames: resize once, not per frame
    if scale >= 1:
        return photo
    return cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- generation

def _segment_frames(rng, digit, photos, count, settings):
    """Render one action: ``count`` frames of one digit moving over a panning crop. Returns frames, ink boxes."""
    size = settings["frame_size"]
    small, large = settings["digit_size"]
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    crop = int(rng.uniform(0.35, 0.8) * min(height, width))
    pan = np.array([[rng.integers(0, height - crop + 1), rng.integers(0, width - crop + 1)] for _ in range(2)], float)
    flip = rng.random() < 0.5
    side_start = float(rng.integers(small, large + 1))
    side_end = float(np.clip(side_start * rng.uniform(1 - settings["digit_growth"], 1 + settings["digit_growth"]), small, large))
    path = rng.uniform(0, 1, size=(2, 2))  # (start, end) × (top, left) as fractions of the free room
    colour_seed = int(rng.integers(2**31))
    squares = []
    for index in range(count):
        fraction = index / max(count - 1, 1)
        side = int(round(side_start + fraction * (side_end - side_start)))
        room = size - min(side, size)
        top, left = np.clip((path[0] + fraction * (path[1] - path[0])) * room, 0, room)
        squares.append((int(top), int(left), min(side, size)))
    letters = _moving_letters(rng, squares, settings) if settings["distractors"][1] > 0 else []
    frames, boxes = [], []
    for index in range(count):
        fraction = index / max(count - 1, 1)
        top, left = (pan[0] + fraction * (pan[1] - pan[0])).round().astype(int)
        background = photo[top:top + crop, left:left + crop]
        if flip:
            background = background[:, ::-1]
        background = cv2.resize(np.ascontiguousarray(background), (size, size), interpolation=cv2.INTER_AREA)
        side = int(round(side_start + fraction * (side_end - side_start)))
        room = size - min(side, size)
        position = (path[0] + fraction * (path[1] - path[0])) * room
        frame, _, box = digits.render_canvas(np.random.default_rng(colour_seed), digit, background, (small, large), side=side,
                                      position=position)
        for glyph, letter_squares, letter_seed in letters:
            letter_top, letter_left, letter_side = letter_squares[index]
            frame, _, _ = digits.render_canvas(np.random.default_rng(letter_seed), glyph, frame, (small, large), side=letter_side,
                                        position=(letter_top, letter_left))
        frames.append(frame)
        boxes.append(box)
    return frames, boxes


def _moving_letters(rng, digit_squares, settings):
    """[(glyph, its square in every frame, colour seed)] of the distractor letters of one action: each moves along a
    straight path at a fixed side and keeps ``scenes.MARGIN`` px from the digit's square and 1 px from the other
    letters in every frame (a path that fails 50 draws is left out)."""
    size, (small, large), (few, many) = settings["frame_size"], settings["digit_size"], settings["distractors"]
    letters = []
    for _ in range(int(rng.integers(few, many + 1))):
        side = int(rng.integers(small, large + 1))
        glyph, colour_seed = random_letter(rng, 0.0), int(rng.integers(2**31))
        for _ in range(50):
            ends = rng.integers(0, size - side + 1, size=(2, 2))
            squares = [tuple(int(value) for value in np.round(ends[0] + index / max(len(digit_squares) - 1, 1) * (ends[1] - ends[0])))
                       + (side,) for index in range(len(digit_squares))]
            if not any(squares_overlap(square, [digit_square], MARGIN) or
                       squares_overlap(square, [other[1][index] for other in letters], 1)
                       for index, (square, digit_square) in enumerate(zip(squares, digit_squares))):
                letters.append((glyph, squares, colour_seed))
                break
    return letters


def _pick(rng, sources, halves, label, half):
    chosen = halves[label][half]
    return sources.images[int(chosen[rng.integers(len(chosen))])]


def _other_label(rng, label, num_classes):
    other = int(rng.integers(num_classes - 1))
    return other + (other >= label)


def _write_clip(folder, frames, boxes, frame_labels, label, segment, kind):
    os.makedirs(folder)
    for index, frame in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f"{index:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    record = {"label": int(label), "segment": [int(segment[0]), int(segment[1])], "kind": kind,
              "boxes": [[int(value) for value in box] for box in boxes], "frame_labels": [int(value) for value in frame_labels]}
    with open(os.path.join(folder, CLIP_FILE), "w") as handle:
        json.dump(record, handle)


def _clip_plan(split, settings, rng):
    """(kind, total frames, GT segment) of every clip of ``split``, per class."""
    short, long = settings["short_frames"], settings["long_frames"]
    if split in ("train", "val", "test"):
        return [("trimmed", short, (0, short))]
    if split == "gt_rand":
        return [("gt_rand", short, (0, short // 2))]
    if split == "rand_gt":
        return [("rand_gt", short, (short // 2, short))]
    plans = []
    for length in settings["gt_lengths"]:
        start = int(rng.integers(1, max(long - length, 1))) if long - length > 1 else 0
        plans.append(("rand_gt_rand", long, (start, start + length)))
    return plans


@writes_whole_set(SETTINGS_FILE)
def generate_video_set(out_dir, **settings):
    """Write the video set at ``out_dir`` (new or empty, written whole: ``mindgap.data.generated``); see the module
    docstring. Returns ``out_dir``.

    Settings (defaults in :data:`DEFAULTS`): ``seed``, ``frame_size`` (square frames), ``short_frames`` (trimmed, GT +
    rand and rand + GT clips), ``long_frames`` (rand + GT + rand clips), ``gt_lengths`` (None: the thesis's in
    proportion), ``train_per_class``, ``val_per_class``, ``test_per_class`` (trimmed clips), ``untrimmed_per_class``
    (per class, of each untrimmed kind and GT length), ``digit_size`` (smallest, largest side in pixels),
    ``digit_growth`` (largest relative change of the side over an action).
    """
    settings = resolve_settings(**settings)
    rng = np.random.default_rng(settings["seed"])
    sources = load_digits()
    halves = digits.source_halves(sources.target)
    photos = load_photos()
    counts = {"train": settings["train_per_class"], "val": settings["val_per_class"], "test": settings["test_per_class"],
              **{name: settings["untrimmed_per_class"] for name in ("gt_rand", "rand_gt", "rand_gt_rand")}}
    os.makedirs(os.path.join(out_dir, CLIPS_DIR))
    os.makedirs(os.path.join(out_dir, SPLITS_DIR))
    num_classes = len(digits.CLASS_NAMES)
    for split in SPLITS:
        half = 0 if split == "train" else 1  # training-half source digits for training only (as the image set)
        names = []
        for number in range(counts[split]):
            for label in range(num_classes):
                for kind, total, (start, end) in _clip_plan(split, settings, rng):
                    frames, boxes, frame_labels = [None] * total, [None] * total, [label] * total
                    parts = [(start, end, label)]
                    if kind != "trimmed":
                        other = _other_label(rng, label, num_classes)
                        second = _other_label(rng, label, num_classes)  # the two rand actions of rand+GT+rand differ
                        parts += [(0, start, other), (end, total, second if kind == "rand_gt_rand" else other)]
                    for first, last, part_label in sorted(parts):  # in temporal order
                        if last <= first:
                            continue
                        part_frames, part_boxes = _segment_frames(rng, _pick(rng, sources, halves, part_label, half), photos,
                                                                  last - first, settings)
                        frames[first:last], boxes[first:last] = part_frames, part_boxes
                        frame_labels[first:last] = [part_label] * (last - first)
                    name = (f"{split}_{digits.CLASS_NAMES[label]}_{number:03d}"
                            + (f"_gt{end - start:03d}" if kind == "rand_gt_rand" else ""))
                    _write_clip(os.path.join(out_dir, CLIPS_DIR, name), frames, boxes, frame_labels, label, (start, end), kind)
                    names.append(name)
        write_lines(os.path.join(out_dir, SPLITS_DIR, f"{split}.txt"), names)
    record = {**settings, "digit_size": list(settings["digit_size"]), "gt_lengths": list(settings["gt_lengths"]),
              "distractors": list(settings["distractors"]),  # left out below when none, as in sets made before them
              "class_names": list(digits.CLASS_NAMES), "renderer": digits.RENDERER_VERSION, "photos": len(photos)}
    if not any(settings["distractors"]):
        del record["distractors"]
    with open(os.path.join(out_dir, SETTINGS_FILE), "w") as handle:
        json.dump(record, handle, indent=2)
    return out_dir


def resolve_settings(**settings):
    """:data:`DEFAULTS` updated by ``settings``, checked, with ``gt_lengths`` filled in; a ValueError names a bad one."""
    resolved = known_settings(settings, DEFAULTS, "video set")
    resolved["digit_size"] = tuple(int(value) for value in resolved["digit_size"])
    resolved["distractors"] = tuple(int(value) for value in resolved["distractors"])
    if resolved["gt_lengths"] is None:
        resolved["gt_lengths"] = scaled_lengths(resolved["long_frames"])
    resolved["gt_lengths"] = tuple(int(value) for value in resolved["gt_lengths"])
    small, large = resolved["digit_size"]
    problems = []
    if resolved["frame_size"] < 16:
        problems.append(f"frame_size={resolved['frame_size']} (use >= 16)")
    if not 4 <= small <= large <= resolved["frame_size"]:
        problems.append(f"digit_size={resolved['digit_size']} (use 4 <= smallest <= largest <= frame_size)")
    if resolved["short_frames"] < 2:
        problems.append(f"short_frames={resolved['short_frames']} (use >= 2: a GT and a rand half)")
    if any(not 1 <= length < resolved["long_frames"] for length in resolved["gt_lengths"]):
        problems.append(f"gt_lengths={resolved['gt_lengths']} (each in [1, long_frames={resolved['long_frames']}))")
    for name in ("train_per_class", "val_per_class", "test_per_class", "untrimmed_per_class"):
        if resolved[name] < 1:
            problems.append(f"{name}={resolved[name]} (use >= 1)")
    if not 0 <= resolved["distractors"][0] <= resolved["distractors"][1]:
        problems.append(f"distractors={resolved['distractors']} (use 0 <= fewest <= most)")
    if not 0 <= resolved["digit_growth"] < 1:
        problems.append(f"digit_growth={resolved['digit_growth']} (use [0, 1))")
    if problems:
        raise ValueError("Bad video set settings: " + "; ".join(problems) + ".")
    return resolved


def ensure_video_set(out_dir, **settings):
    """Generate the set at ``out_dir`` unless one with the same settings is there already; returns ``out_dir``."""
    wanted = resolve_settings(**settings)

    def same(found):
        found = {"distractors": [0, 0], **found}  # a set made before distractors existed has none
        return (all((list(value) if isinstance(value, tuple) else value) == found.get(name) for name, value in wanted.items())
                and found.get("renderer") == digits.RENDERER_VERSION)

    return ensure_set(out_dir, SETTINGS_FILE, same, lambda: generate_video_set(out_dir, **wanted), "a video set")


def load_video_set(root, *, splits=None, workers=None, cache_path="default"):
    """``read_video_set`` then ``check_clips``: the set every frame of which decodes."""
    return check_clips(read_video_set(root), splits=splits, workers=workers, cache_path=cache_path)[0]


def main(argv=None):
    args = vars(settings_parser("video", __doc__, DEFAULTS).parse_args(argv))  # gt_lengths None: the thesis's, scaled
    out_dir = args.pop("out_dir")
    return run_generator(generate_video_set, out_dir, lambda: _wrote(read_video_set(out_dir)), **args)


def _wrote(dataset):
    return (f"Wrote {sum(len(clips) for clips in dataset.splits.values())} clips of {dataset.num_classes} classes to "
            f"{dataset.root} ({', '.join(f'{name}: {len(clips)}' for name, clips in dataset.splits.items())}).")


if __name__ == "__main__":
    sys.exit(main())
