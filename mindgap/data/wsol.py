"""Reader for the WSOL benchmark metadata layout of Choe et al. 2020 (``clovaai/wsolevaluation``).

That project describes CUB-200-2011, ImageNet and OpenImages by metadata
folders, one per split, with the images under a separate root::

    METADATA/train/image_ids.txt       <image id>                 (a path relative to the image root)
    METADATA/train/class_labels.txt    <image id>,<integer label>
    METADATA/train/image_sizes.txt     <image id>,<width>,<height>            (optional)
    METADATA/train/localization.txt    <image id>,<x0>,<y0>,<x1>,<y1>         (optional; one row per box)
    METADATA/val/…, METADATA/test/…    the same four files

(``wsolevaluation/data_loaders.py``; its ``val`` is the paper's
``train-fullsup`` split.)  Pass METADATA (e.g. ``wsolevaluation/metadata/CUB``)
as the dataset folder, or the checkout itself when ``metadata/`` holds one
dataset (with several, the error names the folders to choose from).

**Box convention.**  wsolevaluation's boxes are 0-based pixel indices with
*inclusive* ends: its IoU adds one to every side (``area = (x1 - x0 + 1) · (y1 - y0 + 1)`` in
``calculate_multiple_iou``), a one-pixel box has ``x0 == x1``, and CUB's 500-pixel-wide images have boxes ending at
499, never 500.  In mindgap's pixel-edge convention (0-based, ends exclusive) the box ``x0,y0,x1,y1`` is ``(x0, y0, x1
+ 1, y1 + 1)``.

**Image root.**  ``image_root`` (``--image-root``) is the folder the image ids
are relative to (wsolevaluation's ``--data_root``/<dataset>, e.g.
``dataset/CUB``).  Without it, the first of these that holds the first listed
image is used: ``METADATA/images``, ``METADATA`` itself, and wsolevaluation's own arrangement
``<repo>/dataset/<NAME>`` for ``METADATA = <repo>/metadata/<NAME>``.

**Class names.**  From an optional ``METADATA/class_names.txt`` (one name
per line, in label order; a mindgap addition), else the parent folder of a
class's images when each class has its own (CUB's ``001.Black_footed_Albatross``),
else ``class_000``, ``class_001``, ….

OpenImages' ``localization.txt`` holds masks, not boxes; those splits are
read without boxes (the localization measures then say they are skipped).
"""

import os

import numpy as np

from mindgap.data.records import SPLITS, DatasetError, Record, SplitDataset, no_boxes, read_lines, summarize

IMAGE_IDS = "image_ids.txt"
CLASS_LABELS = "class_labels.txt"
IMAGE_SIZES = "image_sizes.txt"
LOCALIZATION = "localization.txt"
CLASS_NAMES_FILE = "class_names.txt"
CHECKOUT_METADATA = "metadata"  # a wsolevaluation checkout: metadata/<DATASET>/{train,val,test}/, dataset/<DATASET>/


def is_metadata_folder(root):
    """Whether ``root`` holds ``{train,val,test}/image_ids.txt``."""
    return any(os.path.isfile(os.path.join(root, split, IMAGE_IDS)) for split in SPLITS)


def checkout_datasets(root):
    """Sorted names of the datasets under ``root/metadata/`` when ``root`` is a wsolevaluation checkout, else []."""
    metadata = os.path.join(root, CHECKOUT_METADATA)
    if not os.path.isdir(metadata):
        return []
    return sorted(name for name in os.listdir(metadata)
                  if not name.startswith(".") and is_metadata_folder(os.path.join(metadata, name)))


def metadata_folder(root):
    """``root`` itself, or ``root/metadata/<DATASET>`` for a checkout holding one dataset; several: a DatasetError."""
    root = os.fspath(root)
    if is_metadata_folder(root):
        return root
    datasets = checkout_datasets(root)
    if len(datasets) == 1:
        return os.path.join(root, CHECKOUT_METADATA, datasets[0])
    if datasets:
        choices = ", ".join(os.path.join(root, CHECKOUT_METADATA, name) for name in datasets)
        raise DatasetError(f"{root!r} is a wsolevaluation checkout with {len(datasets)} datasets ({', '.join(datasets)}); "
                           f"pass one metadata folder: {choices}.")
    return root


def wsol_box_to_pixel_edges(box):
    """wsolevaluation's inclusive ``(x0, y0, x1, y1)`` → mindgap's pixel-edge ``(x0, y0, x1 + 1, y1 + 1)``."""
    x0, y0, x1, y1 = (float(value) for value in box)
    return (x0, y0, x1 + 1.0, y1 + 1.0)


def image_root_candidates(root):
    """Where the images are looked for when no image root is given, in order."""
    parent = os.path.dirname(os.path.abspath(root))
    return [os.path.join(root, "images"), root,
            os.path.join(os.path.dirname(parent), "dataset", os.path.basename(os.path.abspath(root)))]


def _split_rows(path, fields, problems):
    """Rows of a comma file split from the right into ``fields`` parts (image ids may hold commas)."""
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        parts = line.rsplit(",", fields - 1)
        if len(parts) != fields:
            problems.append(f"{path} line {number} has {len(parts)} fields, expected {fields}")
            continue
        rows.append((number, parts))
    return rows


def _read_split(folder, problems, notes):
    """(image ids, {id: label}, {id: (w, h)}, {id: boxes}) of one split folder."""
    image_ids = read_lines(os.path.join(folder, IMAGE_IDS))
    labels_path = os.path.join(folder, CLASS_LABELS)
    labels = {}
    if not os.path.isfile(labels_path):
        problems.append(f"{labels_path} is missing (every image needs its label)")
    else:
        for number, (image_id, value) in _split_rows(labels_path, 2, problems):
            try:
                labels[image_id] = int(value)
            except ValueError:
                problems.append(f"{labels_path} line {number} has the label {value!r}, not an integer")
    sizes = {}
    sizes_path = os.path.join(folder, IMAGE_SIZES)
    if os.path.isfile(sizes_path):
        for number, (image_id, width, height) in _split_rows(sizes_path, 3, problems):
            try:
                sizes[image_id] = (int(width), int(height))
            except ValueError:
                problems.append(f"{sizes_path} line {number} has a size that is not two integers")
    boxes = {}
    localization_path = os.path.join(folder, LOCALIZATION)
    if os.path.isfile(localization_path):
        lines = read_lines(localization_path)
        if lines and len(lines[0].split(",")) == 3:
            notes.append(f"{localization_path} holds masks (OpenImages), which mindgap does not read: no boxes for this split")
        else:
            for number, (image_id, *values) in _split_rows(localization_path, 5, problems):
                try:
                    boxes.setdefault(image_id, []).append(wsol_box_to_pixel_edges(values))
                except ValueError:
                    problems.append(f"{localization_path} line {number} has a coordinate that is not a number")
    return image_ids, labels, sizes, boxes


def _class_names(root, ids_by_label, count):
    names_path = os.path.join(root, CLASS_NAMES_FILE)
    if os.path.isfile(names_path):
        names = read_lines(names_path)
        if len(names) != count:
            raise DatasetError(f"{names_path} has {len(names)} names but the labels go up to {count - 1}; "
                               f"give one name per label 0 … {count - 1}.")
        return tuple(names)
    folders = []
    for label in range(count):
        parents = {os.path.basename(os.path.dirname(image_id)) for image_id in ids_by_label.get(label, [])}
        folders.append(parents.pop() if len(parents) == 1 else None)
    if None not in folders and "" not in folders and len(set(folders)) == count:
        return tuple(folders)
    return tuple(f"class_{label:03d}" for label in range(count))


def read_wsol(root, *, image_root=None):
    """Read a wsolevaluation metadata folder ``root`` (see the module docstring).

    Args:
        root: the metadata folder holding ``train/``, ``val/``, ``test/``
            (a missing split folder gives an empty split).
        image_root: the folder the image ids are relative to; None looks in
            the conventional places and says where it looked.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"Metadata folder {root!r} does not exist; pass the folder holding train/, val/ and test/ with {IMAGE_IDS}.")
    present = [name for name in SPLITS if os.path.isfile(os.path.join(root, name, IMAGE_IDS))]
    if not present:
        raise DatasetError(f"{root!r} has no {{train,val,test}}/{IMAGE_IDS}; pass the wsolevaluation metadata folder (e.g. metadata/CUB).")
    problems, notes, read = [], [], {}
    for name in present:
        read[name] = _read_split(os.path.join(root, name), problems, notes)
    ids_by_label = {}
    for name, (image_ids, labels, _, boxes) in read.items():
        folder = os.path.join(root, name)
        problems += [f"{os.path.join(folder, CLASS_LABELS)} has no label for {image_id}" for image_id in image_ids if image_id not in labels]
        listed = set(image_ids)
        problems += [f"{os.path.join(folder, LOCALIZATION)} has a box for {image_id}, which {IMAGE_IDS} does not list"
                     for image_id in boxes if image_id not in listed]
        negative = [label for label in labels.values() if label < 0]
        if negative:
            problems.append(f"{os.path.join(folder, CLASS_LABELS)} has the negative label {negative[0]}")
        for image_id in image_ids:
            if image_id in labels:
                ids_by_label.setdefault(labels[image_id], []).append(image_id)
    if problems:
        raise DatasetError(f"WSOL metadata at {root!r}: " + summarize(problems, "problems") + ". Fix these files.")

    first = next((read[name][0][0] for name in present if read[name][0]), None)
    if image_root is None:
        candidates = image_root_candidates(root)
        found = [folder for folder in candidates if first is not None and os.path.isfile(os.path.join(folder, first))]
        if not found:
            raise DatasetError(f"Could not find the image {first!r} of {root!r} under {', '.join(candidates)}; "
                               "pass --image-root (image_root=) with the folder the image ids are relative to.")
        image_root = found[0]
    elif not os.path.isdir(image_root):
        raise DatasetError(f"Image root {image_root!r} does not exist; pass the folder the image ids of {root!r} are relative to.")

    count = max(ids_by_label) + 1 if ids_by_label else 0
    class_names = _class_names(root, ids_by_label, count)
    splits = {}
    for name in SPLITS:
        if name not in read:
            splits[name] = []
            continue
        image_ids, labels, sizes, boxes = read[name]
        splits[name] = [Record(os.path.join(image_root, *image_id.split("/")), labels[image_id],
                               np.asarray(boxes[image_id], np.float32).reshape(-1, 4) if image_id in boxes else no_boxes(),
                               sizes.get(image_id))
                        for image_id in image_ids]
    note = f"wsolevaluation metadata {root} ({', '.join(present)}), images under {image_root}"
    if notes:
        note += "; " + "; ".join(notes)
    return SplitDataset(root, class_names, splits["train"], splits["val"], splits["test"], "wsol", note)
