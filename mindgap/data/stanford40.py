"""Reader for Stanford 40 Actions as distributed, with the paper's train / val / test split.

On disk (the three official archives unzipped side by side)::

    ROOT/JPEGImages/<action>_<NNN>.jpg
    ROOT/XMLAnnotations/<action>_<NNN>.xml
    ROOT/ImageSplits/actions.txt            header line, then "<action> <count>" per class
    ROOT/ImageSplits/train.txt, test.txt    one JPEG file name per line (CRLF)

Class index = row order of ``actions.txt``.  The paper's split (§4.1): the official train list is ``train``; from the
official test list, per class, the first 50 images in list order are ``test`` and the rest ``val`` (4,000 / 3,532 /
2,000 images on the full dataset).

Boxes are returned in mindgap's pixel-edge convention (see ``mindgap.metrics``): 0-based, ends exclusive.  Stanford's
1-based inclusive ``xmin … xmax`` becomes ``(xmin - 1, …, xmax)``.
"""

import dataclasses
import os
import xml.etree.ElementTree as ElementTree

import numpy as np

from mindgap.data.records import DatasetError, Record, SplitDataset, read_lines, summarize  # noqa: F401 (re-exported)

IMAGES_DIR = "JPEGImages"
ANNOTATIONS_DIR = "XMLAnnotations"
SPLITS_DIR = "ImageSplits"
ACTIONS_FILE = "actions.txt"
TEST_PER_CLASS = 50
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


@dataclasses.dataclass(frozen=True)
class Stanford40(SplitDataset):
    """Class names (``actions.txt`` order) and the three splits, each a list of :class:`Record`."""


_read_lines = read_lines


def _read_actions(path):
    lines = _read_lines(path)
    rows = [line.split() for line in lines[1:]]  # first line is a header
    names = [row[0] for row in rows]
    if not names:
        raise DatasetError(f"{path} lists no action; it should have a header line then one '<action> <count>' row per class.")
    return tuple(names)


def _action_of(file_name, class_names):
    stem = os.path.splitext(file_name)[0]
    action, _, number = stem.rpartition("_")
    return action if action in class_names and number.isdigit() else None


def _looks_like_image(path):
    with open(path, "rb") as handle:
        head = handle.read(8)
    return any(head.startswith(signature) for signature in _IMAGE_SIGNATURES)


def _read_annotation(path):
    """(action of every object, boxes (n, 4) pixel-edge) from one XML file."""
    root = ElementTree.parse(path).getroot()
    actions, boxes = [], []
    for element in root.iter("object"):
        actions.append((element.findtext("action") or "").strip())
        box = element.find("bndbox")
        x_min, y_min, x_max, y_max = (float(box.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x_min - 1.0, y_min - 1.0, x_max, y_max))
    return actions, np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


_summarize = summarize


def read_stanford40(root, test_per_class=TEST_PER_CLASS, check_images=True):
    """Read the dataset at ``root`` and split it as the paper did.

    Every problem (a missing folder, split file, image or annotation, a file that is not an image, an annotation whose
    action disagrees with its file name, a class absent from ``actions.txt``) is collected and raised as one
    :class:`DatasetError` before anything else runs.

    Args:
        root: folder holding ``JPEGImages``, ``XMLAnnotations`` and ``ImageSplits``.
        test_per_class: images per class taken, in list order, from the
            official test list into ``test`` (50 in the paper); the rest is ``val``.
        check_images: report missing image files and files that are not images here; False leaves that to
            ``mindgap.data.check``, which decodes every image (and can drop bad ones).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"Dataset folder {root!r} does not exist; pass the folder that holds {IMAGES_DIR}/, {ANNOTATIONS_DIR}/ and {SPLITS_DIR}/.")
    missing = [name for name in (IMAGES_DIR, ANNOTATIONS_DIR, SPLITS_DIR) if not os.path.isdir(os.path.join(root, name))]
    if missing:
        raise DatasetError(f"{root!r} lacks the folder(s) {', '.join(missing)}; unzip the three Stanford 40 archives into it.")
    split_paths = {name: os.path.join(root, SPLITS_DIR, name) for name in (ACTIONS_FILE, "train.txt", "test.txt")}
    missing = [path for path in split_paths.values() if not os.path.isfile(path)]
    if missing:
        raise DatasetError(f"Missing split file(s) {', '.join(missing)}; they come with ImageSplits.zip.")

    class_names = _read_actions(split_paths[ACTIONS_FILE])
    lists = {split: _read_lines(split_paths[f"{split}.txt"]) for split in ("train", "test")}
    problems = {"unknown classes": [], "missing images": [], "files that are not images": [],
                "missing annotations": [], "annotations that disagree with their file name": []}
    records = {"train": [], "test": []}
    for split, names in lists.items():
        for file_name in names:
            action = _action_of(file_name, class_names)
            if action is None:
                problems["unknown classes"].append(f"{file_name} in {split}.txt is of no class in {ACTIONS_FILE}")
                continue
            image_path = os.path.join(root, IMAGES_DIR, file_name)
            annotation_path = os.path.join(root, ANNOTATIONS_DIR, os.path.splitext(file_name)[0] + ".xml")
            if not check_images:
                pass
            elif not os.path.isfile(image_path):
                problems["missing images"].append(image_path)
            elif not _looks_like_image(image_path):
                problems["files that are not images"].append(image_path)
            if not os.path.isfile(annotation_path):
                problems["missing annotations"].append(annotation_path)
                continue
            try:
                actions, boxes = _read_annotation(annotation_path)
            except (ElementTree.ParseError, AttributeError, TypeError, ValueError) as error:
                problems["annotations that disagree with their file name"].append(f"{annotation_path} is unreadable ({error})")
                continue
            wrong = [name for name in actions if name != action]
            if wrong or len(boxes) == 0:
                detail = f"says {wrong[0]!r}" if wrong else "has no box"
                problems["annotations that disagree with their file name"].append(f"{annotation_path} {detail}, expected {action!r}")
                continue
            records[split].append(Record(image_path, class_names.index(action), boxes))

    found = [_summarize(items, what) for what, items in problems.items() if items]
    if found:
        raise DatasetError(f"Stanford 40 at {root!r} has " + "; ".join(found) + ". Fix or re-extract these files.")

    test, val, taken = [], [], {}
    for record in records["test"]:
        count = taken.get(record.label, 0)
        (test if count < test_per_class else val).append(record)
        taken[record.label] = count + 1
    note = f"Stanford 40 lists: train.txt is train; per class the first {test_per_class} of test.txt are test, the rest val"
    return Stanford40(root, class_names, records["train"], val, test, "stanford40", note)
