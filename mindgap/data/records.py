"""The record type every dataset layout reads into, and the dataset that holds three splits of them.

Every reader of ``mindgap.data.layouts`` returns a :class:`SplitDataset`:
class names (label ``i`` is ``class_names[i]``) and ``train`` / ``val`` / ``test`` lists of :class:`Record`.  Boxes
are in mindgap's pixel-edge convention everywhere: 0-based, ends exclusive, ``(x_min, y_min, x_max, y_max)`` in pixels
of the image file; an image without a box has a (0, 4) array.
"""

import csv
import dataclasses
import os

import numpy as np

SPLITS = ("train", "val", "test")
SHOWN_PROBLEMS = 5


class DatasetError(ValueError):
    """The dataset on disk is incomplete or inconsistent; the message says what and where."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One image: its path, integer label and every box (n, 4) in pixel-edge coordinates.

    ``size`` is the (width, height) the layout's metadata declares for the file (the WSOL layout's
    ``image_sizes.txt``), or None; the check compares it with the decoded image.  ``votes``: one crowd vote count per
    class (a ``votes.csv`` of the folders layout, FER+), or None; ``label`` is then their majority
    (``mindgap.data.labels``).  ``clip``: the clip a video frame comes from (the AFEW layout), or None.
    """

    path: str
    label: int
    boxes: np.ndarray
    size: tuple | None = None
    votes: tuple | None = None
    clip: str | None = None

    @property
    def name(self):
        return os.path.basename(self.path)


@dataclasses.dataclass(frozen=True)
class SplitDataset:
    """Class names and the three splits, each a list of :class:`Record`.

    ``layout`` names the reader that made it; ``split_note`` says where the
    split came from (a file, or a seeded stratified draw), for the run's config.
    """

    root: str
    class_names: tuple
    train: list
    val: list
    test: list
    layout: str = "stanford40"
    split_note: str = ""

    @property
    def num_classes(self):
        return len(self.class_names)

    def split(self, name):
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; use one of {', '.join(SPLITS)}.")
        return getattr(self, name)

    def has_boxes(self, split=None):
        """True when at least one image (of ``split``, or of any split) has a box."""
        names = SPLITS if split is None else (split,)
        return any(len(record.boxes) for name in names for record in getattr(self, name))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def summary(self):
        """A JSON-ready description: layout, root, split origin, sizes and box counts."""
        return {
            "layout": self.layout,
            "root": os.path.abspath(self.root),
            "split": self.split_note,
            "num_classes": self.num_classes,
            **{f"{name}_images": len(getattr(self, name)) for name in SPLITS},
            **{f"{name}_images_with_boxes": sum(1 for record in getattr(self, name) if len(record.boxes)) for name in SPLITS},
        }


def no_boxes():
    return np.zeros((0, 4), np.float32)


def summarize(problems, what):
    """``"<count> <what>: first; second; … (and N more)"``."""
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
    return f"{len(problems)} {what}: {shown}{more}"


def write_lines(path, lines, end="\n"):
    """A text file (UTF-8) of ``lines``, each ended by ``end``: a split file, a caption's sentences."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write("".join(f"{line}{end}" for line in lines))


def csv_rows(path, header, fix):
    """The rows below ``header`` of a CSV file (a UTF-8 BOM is fine), or a ``DatasetError`` naming the header the first
    row should be and ``fix``."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows or [cell.strip() for cell in rows[0]] != list(header):
        raise DatasetError(f"{path} must start with the header {','.join(header)}, got "
                           f"{','.join(rows[0]) if rows else 'an empty file'!r}; {fix}")
    return rows[1:]


def read_lines(path):
    """Non-empty stripped lines of a text file (a UTF-8 BOM and CRLF endings are fine)."""
    with open(path, encoding="utf-8-sig") as handle:
        return [line.strip() for line in handle.read().splitlines() if line.strip()]
