"""The video layout: clip folders of frames with their annotations, read into the same :class:`SplitDataset` shape.

Layout (written by :mod:`mindgap.data.video`)::

    ROOT/mindgap_video.json         settings and class names
    ROOT/splits/<split>.txt         clip names
    ROOT/clips/<clip>/000.jpg ...   the frames (T JPEGs of one size)
    ROOT/clips/<clip>/clip.json     label, segment [start, end), boxes, frame labels

``clip.json``: ``label`` (the GT class index), ``segment`` (first frame and one past the last, 0-based), ``boxes``
(one box per frame: the tight box of the digit's ink, ``[x_min, y_min, x_max, y_max]`` pixel-edge, exclusive ends, as
everywhere in mindgap), ``frame_labels`` (the class drawn in each frame).  A clip folder is also what ``mindgap
explain-video`` takes (``clip.json`` optional there).  ``mindgap.data.check.check_clips`` decodes every frame and
checks the annotations before training; ``mindgap.data.pipeline.make_video_dataset`` batches clips.
"""

import collections
import dataclasses
import json
import os
import re

import cv2
import numpy as np

from mindgap.data.records import DatasetError, SplitDataset, read_lines

SETTINGS_FILE = "mindgap_video.json"
CLIPS_DIR = "clips"
SPLITS_DIR = "splits"
CLIP_FILE = "clip.json"
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
SPLITS = ("train", "val", "test", "gt_rand", "rand_gt", "rand_gt_rand")
LOOKS_FOR = f"{SETTINGS_FILE}, {CLIPS_DIR}/ and {SPLITS_DIR}/ (a video set of mindgap.data.video)"


@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip: its folder, frame files, GT label, GT segment [start, end), boxes (T, 4) and frame labels (T,)."""

    path: str
    frames: tuple
    label: int
    segment: tuple
    boxes: np.ndarray
    frame_labels: np.ndarray
    kind: str = "trimmed"

    @property
    def name(self):
        return os.path.basename(self.path)

    @property
    def num_frames(self):
        return len(self.frames)

    @property
    def gt_length(self):
        return self.segment[1] - self.segment[0]


@dataclasses.dataclass(frozen=True)
class VideoDataset(SplitDataset):
    """A :class:`SplitDataset` of :class:`Clip` records; the thesis's untrimmed splits (``gt_rand``, ``rand_gt``,
    ``rand_gt_rand``) in ``untrimmed``, every split in ``splits``; ``settings``: those the set was made with."""

    layout: str = "video"
    untrimmed: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def splits(self):
        return {"train": self.train, "val": self.val, "test": self.test, **self.untrimmed}

    def split(self, name):
        if name not in self.splits:
            raise ValueError(f"The video set at {self.root!r} has no split {name!r}; its splits: {', '.join(self.splits)}.")
        return self.splits[name]

    def replace(self, **changes):
        """Like ``SplitDataset.replace``; an untrimmed split may be named as a keyword too."""
        untrimmed = {name: changes.pop(name) for name in list(changes) if name in self.untrimmed}
        return dataclasses.replace(self, **changes, untrimmed={**self.untrimmed, **untrimmed})

    def summary(self):
        return {"layout": "video", "root": os.path.abspath(self.root), "num_classes": self.num_classes,
                **{f"{name}_clips": len(clips) for name, clips in self.splits.items()}}


def holds_video_set(root):
    """True when ``root`` holds a video set (its settings file, ``clips/`` and ``splits/``)."""
    root = os.fspath(root)
    return all(os.path.exists(os.path.join(root, name)) for name in (SETTINGS_FILE, CLIPS_DIR, SPLITS_DIR))


def frame_files(folder):
    """The frame images of a clip folder, sorted by name."""
    if not os.path.isdir(folder):
        raise DatasetError(f"Clip {folder!r} is not a folder; pass a folder of frame images (000.jpg, 001.jpg, ...).")
    return tuple(os.path.join(folder, name) for name in sorted(os.listdir(folder))
                 if name.lower().endswith(FRAME_EXTENSIONS) and not name.startswith("."))


def read_clip(folder, num_classes=None):
    """One clip folder → :class:`Clip`; without ``clip.json`` the label is -1 and there are no annotations."""
    folder = os.fspath(folder)
    frames = frame_files(folder)
    if not frames:
        raise DatasetError(f"Clip {folder!r} holds no frame image ({', '.join(FRAME_EXTENSIONS)}); add its frames.")
    annotation_path = os.path.join(folder, CLIP_FILE)
    count = len(frames)
    if not os.path.isfile(annotation_path):
        return Clip(folder, frames, -1, (0, count), np.full((count, 4), np.nan, np.float32), np.full(count, -1), "unannotated")
    try:
        with open(annotation_path) as handle:
            record = json.load(handle)
        label, segment = int(record["label"]), tuple(int(value) for value in record["segment"])
        boxes = np.asarray([[np.nan] * 4 if box is None else box for box in record["boxes"]], np.float32).reshape(-1, 4)
        frame_labels = np.asarray(record.get("frame_labels", [label] * count), np.int64)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{annotation_path} is not a readable clip record ({type(error).__name__}: {error}); "
                           "it needs label, segment [start, end) and one box per frame.") from None
    problems = []
    if len(boxes) != count or len(frame_labels) != count:
        problems.append(f"{len(boxes)} boxes and {len(frame_labels)} frame labels for {count} frames")
    if not 0 <= segment[0] < segment[1] <= count:
        problems.append(f"segment {list(segment)} outside [0, {count}] or empty")
    if num_classes is not None and not 0 <= label < num_classes:
        problems.append(f"label {label} outside [0, {num_classes - 1}]")
    if problems:
        raise DatasetError(f"Clip {folder!r}: {'; '.join(problems)}; fix its {CLIP_FILE}.")
    return Clip(folder, frames, label, segment, boxes, frame_labels, record.get("kind", "trimmed"))


def read_video_set(root):
    """Read the set at ``root`` (annotations, not pixels) into a :class:`VideoDataset`."""
    root = os.fspath(root)
    if not holds_video_set(root):
        raise DatasetError(f"{root!r} is not a video set: it needs {SETTINGS_FILE}, {CLIPS_DIR}/ and {SPLITS_DIR}/; "
                           "make one with python -m mindgap.data.video OUT_DIR.")
    with open(os.path.join(root, SETTINGS_FILE)) as handle:
        settings = json.load(handle)
    class_names = tuple(settings.get("class_names", ()))
    if len(class_names) < 2:
        raise DatasetError(f"{os.path.join(root, SETTINGS_FILE)} names {len(class_names)} classes; list at least 2 in class_names.")
    splits = {}
    for name in sorted(os.listdir(os.path.join(root, SPLITS_DIR))):
        if name.endswith(".txt"):
            splits[name[:-4]] = [read_clip(os.path.join(root, CLIPS_DIR, line), len(class_names))
                                 for line in read_lines(os.path.join(root, SPLITS_DIR, name))]
    trimmed = [splits.pop(name, []) for name in ("train", "val", "test")]
    untrimmed = {name: splits.pop(name) for name in SPLITS if name in splits}
    return VideoDataset(root, class_names, *trimmed, split_note=f"from {SPLITS_DIR}/*.txt",
                        untrimmed={**untrimmed, **splits}, settings=settings)


def odd_lengths(clips, split="the batch"):
    """One problem per clip whose frame count differs from the most common one of ``clips`` (one batch needs one T)."""
    counts = collections.Counter(clip.num_frames for clip in clips)
    if len(counts) < 2:
        return []
    usual = counts.most_common(1)[0][0]
    return [f"{clip.name} has {clip.num_frames} frames where the other clips of {split} have {usual}"
            for clip in clips if clip.num_frames != usual]


def frame_numbers(frames):
    """The number in each frame file's name (``007.jpg`` → 7, the last number of the name), or None if a name has none."""
    numbers = []
    for path in frames:
        found = re.findall(r"\d+", os.path.splitext(os.path.basename(path))[0])
        if not found:
            return None
        numbers.append(int(found[-1]))
    return numbers


def load_clip_frames(clip, size=None):
    """The frames of ``clip`` (a :class:`Clip` or a folder) as uint8 RGB (T, H, W, 3), resized to ``size`` if given."""
    frames = clip.frames if isinstance(clip, Clip) else frame_files(os.fspath(clip))
    images = []
    for path in frames:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"Frame {path!r} cannot be decoded; replace it.")
        if size is not None and image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        images.append(image[..., ::-1])
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise DatasetError(f"The frames of {getattr(clip, 'path', clip)!r} have {len(shapes)} sizes; pass frames of one size "
                           "(or a size to resize them to).")
    return np.stack(images)
