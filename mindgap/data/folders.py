"""Reader for the class-folder layout (Keras' ``image_dataset_from_directory`` convention), with optional boxes and splits.

On disk::

    ROOT/<class name>/<image>              any depth below the class folder; .jpg .jpeg .png .bmp .gif
    ROOT/boxes.csv                         optional: header image,x_min,y_min,x_max,y_max
    ROOT/votes.csv                         optional: header image,<class 0>,…,<class c-1> (crowd votes per class)
    ROOT/splits/train.txt, val.txt, test.txt   optional: one image path (relative to ROOT) per line

Classes are the sub-folders of ROOT in sorted order (as Keras does); ``splits`` and hidden folders are not classes.
``boxes.csv`` gives one row per box (several rows for several boxes of one image), the image path relative to ROOT
with ``/`` separators, in mindgap's pixel-edge convention: 0-based, ends exclusive (a box covering a whole 640×480
image is ``0,0,640,480``). Images without a row have no box.

``votes.csv`` gives an image's crowd votes (one non-negative count per class, the columns named as the class folders,
in their order), for Probabilistic Label Drawing (``mindgap.data.labels``); the image's class folder stays its label
(the majority).  Images without a row have no votes.

With split files, ``train.txt`` is required and each listed image is taken from its class folder (the first path
component).  Without them the split is stratified and seeded: per class, the sorted image list is shuffled with
``seed`` and ``round(val_fraction · n)`` images go to val, ``round(test_fraction · n)`` to test (at least one each
when the class has three images or more), the rest to train.
"""

import csv
import os

import numpy as np

from mindgap.data.records import SPLITS, DatasetError, Record, SplitDataset, csv_rows, no_boxes, read_lines, summarize

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
BOXES_FILE = "boxes.csv"
SPLITS_DIR = "splits"
BOXES_HEADER = ["image", "x_min", "y_min", "x_max", "y_max"]
VOTES_FILE = "votes.csv"


def class_folders(root):
    """Sorted class folder names of ``root`` (not ``splits``, not hidden)."""
    return sorted(name for name in os.listdir(root)
                  if os.path.isdir(os.path.join(root, name)) and not name.startswith(".") and name != SPLITS_DIR)


def _images_of(root, class_name):
    found = []
    for folder, subfolders, files in os.walk(os.path.join(root, class_name), followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return found


def _normalized(relative):
    return os.path.normpath(relative.strip()).replace(os.sep, "/")


def read_boxes_csv(path, known, problems):
    """{relative image path: (n, 4) float32 boxes} from ``boxes.csv``; bad rows go to ``problems``."""
    boxes = {}
    for number, row in enumerate(csv_rows(path, BOXES_HEADER, "add that header line."), start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 5:
            problems.append(f"{path} line {number} has {len(row)} fields, expected 5")
            continue
        image = _normalized(row[0])
        try:
            values = [float(cell) for cell in row[1:]]
        except ValueError:
            problems.append(f"{path} line {number} has a coordinate that is not a number: {','.join(row)}")
            continue
        if image not in known:
            problems.append(f"{path} line {number} names {image}, which is not an image of any class folder")
            continue
        boxes.setdefault(image, []).append(values)
    return {image: np.asarray(rows_, np.float32).reshape(-1, 4) for image, rows_ in boxes.items()}


def read_votes_csv(path, class_names, known, problems):
    """{relative image path: votes tuple} from ``votes.csv`` (header ``image`` then the class names); bad rows go to ``problems``."""
    votes = {}
    for number, row in enumerate(csv_rows(path, ["image", *class_names], "its classes are the class folders in order."),
                                 start=2):
        if not any(cell.strip() for cell in row):
            continue
        image = _normalized(row[0])
        try:
            counts = tuple(float(cell) for cell in row[1:])
        except ValueError:
            problems.append(f"{path} line {number} has a vote count that is not a number: {','.join(row)}")
            continue
        if len(counts) != len(class_names) or min(counts) < 0 or not sum(counts) > 0 or not all(map(np.isfinite, counts)):
            problems.append(f"{path} line {number} needs {len(class_names)} finite counts >= 0 with a positive sum: {','.join(row)}")
        elif image not in known:
            problems.append(f"{path} line {number} names {image}, which is not an image of any class folder")
        elif image in votes:
            problems.append(f"{path} line {number} repeats {image}")
        else:
            votes[image] = counts
    return votes


def write_votes_csv(path, class_names, votes):
    """Write ``votes.csv``: the header ``image`` then ``class_names``, one row per (relative image path, counts)."""
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["image", *class_names],
                                      *([relative, *(f"{float(count):g}" for count in counts)] for relative, counts in votes)])


def stratified_split(relatives_by_class, seed, val_fraction, test_fraction):
    """{split: [relative path]}: per class a seeded shuffle, then test, val and train slices."""
    rng = np.random.default_rng(seed)
    splits = {name: [] for name in SPLITS}
    for class_name in sorted(relatives_by_class):
        images = sorted(relatives_by_class[class_name])
        order = rng.permutation(len(images))
        count = len(images)
        n_test, n_val = round(test_fraction * count), round(val_fraction * count)
        if count >= 3:
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_val = max(n_val, 1 if val_fraction > 0 else 0)
        n_test = min(n_test, max(count - 1, 0))
        n_val = min(n_val, max(count - 1 - n_test, 0))
        shuffled = [images[index] for index in order]
        splits["test"] += shuffled[:n_test]
        splits["val"] += shuffled[n_test:n_test + n_val]
        splits["train"] += shuffled[n_test + n_val:]
    return splits


def read_folders(root, *, seed=0, val_fraction=0.1, test_fraction=0.1, allow_empty_classes=False):
    """Read a class-folder dataset at ``root`` (see the module docstring).

    Structural problems (no class folder, a split line naming a file that is not an image of a class folder, a bad
    ``boxes.csv`` row) are gathered and raised as one :class:`DatasetError`.  Image contents and box values are
    checked by ``mindgap.data.check``.

    Args:
        root: the folder holding one sub-folder per class.
        seed: seeds the stratified split (used only without split files).
        val_fraction, test_fraction: shares of each class drawn into val and test when there is no split file.
        allow_empty_classes: keep a class folder without any image as a class (default: an error naming it, since a
            folder such as ``metadata/`` beside ``images/`` is more often a wrong root).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"Dataset folder {root!r} does not exist; pass the folder that holds one sub-folder per class.")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must be in [0, 1) with a sum below 1.")
    class_names = tuple(class_folders(root))
    relatives_by_class = {name: _images_of(root, name) for name in class_names}
    if not any(relatives_by_class.values()):
        raise DatasetError(f"{root!r} has no class folder holding images ({', '.join(IMAGE_EXTENSIONS)}); "
                           "put each class's images in ROOT/<class name>/.")
    empty = [name for name in class_names if not relatives_by_class[name]]
    if empty and not allow_empty_classes:
        raise DatasetError(f"Class folder(s) {', '.join(empty)} of {root!r} hold no image ({', '.join(IMAGE_EXTENSIONS)}); "
                           "pass the folder whose sub-folders are the classes, remove the empty ones, or allow them "
                           "(allow_empty_classes=True, --allow-empty-classes).")
    label_of = {relative: label for label, name in enumerate(class_names) for relative in relatives_by_class[name]}

    problems = []
    boxes_path = os.path.join(root, BOXES_FILE)
    boxes = read_boxes_csv(boxes_path, label_of, problems) if os.path.isfile(boxes_path) else {}
    votes_path = os.path.join(root, VOTES_FILE)
    votes = read_votes_csv(votes_path, class_names, label_of, problems) if os.path.isfile(votes_path) else {}

    split_dir = os.path.join(root, SPLITS_DIR)
    split_files = {name: os.path.join(split_dir, f"{name}.txt") for name in SPLITS}
    present = {name: path for name, path in split_files.items() if os.path.isfile(path)}
    if present:
        if "train" not in present:
            raise DatasetError(f"{split_dir} has {', '.join(os.path.basename(p) for p in present.values())} but no train.txt; "
                               "add train.txt or remove the splits folder for a seeded stratified split.")
        relatives = {name: [_normalized(line) for line in read_lines(path)] for name, path in present.items()}
        for name, lines in relatives.items():
            unknown = [line for line in lines if line not in label_of]
            problems += [f"{split_files[name]} lists {line}, which is not an image of any class folder "
                         f"({'no such file' if not os.path.exists(os.path.join(root, line)) else 'not in a class folder'})"
                         for line in unknown]
            relatives[name] = [line for line in lines if line in label_of]
        for name in SPLITS:
            relatives.setdefault(name, [])
        note = f"from {SPLITS_DIR}/" + ", ".join(f"{name}.txt" for name in present)
    else:
        relatives = stratified_split(relatives_by_class, seed, val_fraction, test_fraction)
        note = (f"stratified seeded split (seed {seed}): per class, round({val_fraction:g}·n) val and "
                f"round({test_fraction:g}·n) test images (at least one each from 3 images up), the rest train")
    if problems:
        raise DatasetError(f"Class folders at {root!r}: " + summarize(problems, "problems") + ". Fix these lines or files.")

    def records(lines):
        return [Record(os.path.join(root, *line.split("/")), label_of[line], boxes.get(line, no_boxes()), votes=votes.get(line))
                for line in lines]

    return SplitDataset(root, class_names, records(relatives["train"]), records(relatives["val"]), records(relatives["test"]),
                        "folders", note)
