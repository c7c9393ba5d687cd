"""Reader for FER2013 (``fer2013.csv``) with the FER+ crowd votes (``fer2013new.csv``): a web-image set with vote distributions.

On disk (Kaggle's FER2013 and Microsoft's FER+, as distributed)::

    ROOT/fer2013.csv      header emotion,pixels,Usage; emotion 0-6 (Angry, Disgust, Fear, Happy, Sad,
                          Surprise, Neutral), pixels 48*48 space-separated grey levels, Usage Training |
                          PublicTest | PrivateTest
    ROOT/fer2013new.csv   optional (FER+): header Usage,Image name,neutral,happiness,surprise,sadness,anger,
                          disgust,fear,contempt,unknown,NF; one row per row of fer2013.csv, same order

Splits: Training → train, PublicTest → val, PrivateTest → test (FER+'s own use). Classes:
:data:`mindgap.data.emotions.EMOTIONS` (EmotiW's seven; FER+'s contempt is not one of them).  With ``fer2013new.csv``
each image gets its FER+ votes on the seven classes and their majority as its label, following FER+'s reference reader
(``src/ferplus.py``): a row without an image name is not a face and is left out; a count of one vote is an outlier and
set to 0; an image whose most voted tag is *unknown* or *NF* (not a face) is left out; then contempt's votes are
dropped, and an image left without votes is left out.  Ties go to the first class of EMOTIONS. Without it the label is
FER2013's ``emotion`` and there are no votes.

The images are written once as PNG files into a class-folder set with a ``votes.csv`` and ``splits/``
(:mod:`mindgap.data.folders`) under the cache folder (``$MINDGAP_CACHE_DIR`` or ``~/.cache/mindgap``, keyed by the two
CSV files' paths, sizes and modification times), and read from there: every later step (the image check, the input
pipeline, ``mindgap explain``) sees files.
"""

import os

import cv2
import numpy as np

from mindgap.data.derived import cache_root, file_key, write_once
from mindgap.data.emotions import EMOTIONS, FER2013_ORDER, FERPLUS_COLUMNS
from mindgap.data.folders import SPLITS_DIR, VOTES_FILE, read_folders, write_votes_csv
from mindgap.data.records import DatasetError, csv_rows, summarize, write_lines

FER_FILE = "fer2013.csv"
FERPLUS_FILE = "fer2013new.csv"
FER_HEADER = ["emotion", "pixels", "Usage"]
FERPLUS_HEADER = ["Usage", "Image name", *FERPLUS_COLUMNS]
USAGES = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
OUTLIER_VOTES = 1  # FER+'s reader: a tag given by a single annotator is dropped
_FORMAT_VERSION = 1  # of the materialised folder


def is_fer2013(root):
    return os.path.isfile(os.path.join(root, FER_FILE))


def parse_fer2013(path):
    """[(emotion index in EMOTIONS, (s, s) uint8 image, split)] of ``fer2013.csv``; every bad row in one DatasetError."""
    parsed, problems = [], []
    for number, row in enumerate(csv_rows(path, FER_HEADER, "is it the right file?"), start=2):
        if len(row) != 3:
            problems.append(f"line {number} has {len(row)} fields, expected 3")
            continue
        emotion, pixels, usage = (cell.strip() for cell in row)
        try:
            values = np.asarray(pixels.split(), np.int64)
        except ValueError:
            problems.append(f"line {number}: a pixel value is not an integer")
            continue
        side = int(round(np.sqrt(len(values))))
        if not emotion.isdigit() or int(emotion) >= len(FER2013_ORDER):
            problems.append(f"line {number}: emotion {emotion!r} is not 0-{len(FER2013_ORDER) - 1}")
        elif side * side != len(values) or side == 0:
            problems.append(f"line {number}: {len(values)} pixels do not make a square image (48 x 48 = 2304)")
        elif values.min() < 0 or values.max() > 255:
            problems.append(f"line {number}: pixel values must be in 0-255")
        elif usage not in USAGES:
            problems.append(f"line {number}: Usage {usage!r} is not one of {', '.join(USAGES)}")
        else:
            parsed.append((EMOTIONS.index(FER2013_ORDER[int(emotion)]), values.astype(np.uint8).reshape(side, side),
                           USAGES[usage]))
    if problems:
        raise DatasetError(f"{path}: " + summarize(problems, "bad rows") + ".")
    return parsed


def ferplus_votes(counts):
    """FER+'s ten tag counts → (votes on EMOTIONS, majority index), or None when FER+'s reader leaves the image out."""
    counts = np.asarray(counts, np.float64)
    counts = np.where(counts <= OUTLIER_VOTES, 0.0, counts)
    if counts.sum() <= 0 or FERPLUS_COLUMNS[int(np.argmax(counts))] in ("unknown", "NF"):
        return None
    by_name = dict(zip(FERPLUS_COLUMNS, counts))
    votes = tuple(float(by_name[name]) for name in ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"))
    if sum(votes) <= 0:
        return None
    return votes, int(np.argmax(votes))


def parse_ferplus(path, fer_rows):
    """[(image name, votes on EMOTIONS or None)] of ``fer2013new.csv``, one per row of fer2013.csv (checked against it)."""
    rows, problems, parsed = csv_rows(path, FERPLUS_HEADER, "is it the right file?"), [], []
    if len(rows) != len(fer_rows):
        raise DatasetError(f"{path} has {len(rows)} rows but {FER_FILE} has {len(fer_rows)}; FER+ needs one row per image, "
                           "in the same order.")
    for number, (row, (_, _, split)) in enumerate(zip(rows, fer_rows), start=2):
        if len(row) != len(FERPLUS_HEADER):
            problems.append(f"line {number} has {len(row)} fields, expected {len(FERPLUS_HEADER)}")
            continue
        usage, name = row[0].strip(), row[1].strip()
        if USAGES.get(usage) != split:
            problems.append(f"line {number}: Usage {usage!r} differs from {FER_FILE}'s for the same image")
            continue
        try:
            counts = [float(cell) for cell in row[2:]]
        except ValueError:
            problems.append(f"line {number}: a vote count is not a number")
            continue
        if min(counts) < 0:
            problems.append(f"line {number}: a vote count is negative")
            continue
        parsed.append((name, ferplus_votes(counts) if name else None))
    if problems:
        raise DatasetError(f"{path}: " + summarize(problems, "bad rows") + ".")
    return parsed


def materialize_fer2013(root, out_dir=None):
    """Write the images of ``root`` as a class-folder set (PNG, ``votes.csv``, ``splits/``), once; return its folder."""
    fer_path, ferplus_path = os.path.join(root, FER_FILE), os.path.join(root, FERPLUS_FILE)
    out_dir = out_dir or os.path.join(cache_root(), "fer2013", file_key(fer_path, ferplus_path, version=_FORMAT_VERSION))
    if os.path.isdir(out_dir):
        return out_dir
    fer_rows = parse_fer2013(fer_path)
    plus = parse_ferplus(ferplus_path, fer_rows) if os.path.isfile(ferplus_path) else None

    def fill(folder):
        for emotion in EMOTIONS:
            os.makedirs(os.path.join(folder, emotion))
        splits, votes_of = {"train": [], "val": [], "test": []}, []
        for index, (emotion, image, split) in enumerate(fer_rows):
            name = f"fer{index:07d}.png"
            if plus is not None:
                plus_name, result = plus[index]
                if result is None:
                    continue
                (votes, emotion), name = result, plus_name
            relative = f"{EMOTIONS[emotion]}/{name}"
            cv2.imwrite(os.path.join(folder, *relative.split("/")), image)
            splits[split].append(relative)
            if plus is not None:
                votes_of.append((relative, votes))
        os.makedirs(os.path.join(folder, SPLITS_DIR))
        for split, lines in splits.items():
            write_lines(os.path.join(folder, SPLITS_DIR, f"{split}.txt"), lines)
        if plus is not None:
            write_votes_csv(os.path.join(folder, VOTES_FILE), EMOTIONS, votes_of)

    return write_once(out_dir, fill)


def read_fer2013(root, *, cache_dir=None):
    """Read FER2013 (+ FER+ votes when ``fer2013new.csv`` is beside it) at ``root`` as a ``SplitDataset``.

    ``cache_dir``: where the images are written (default: the cache folder, see the module docstring).
    """
    root = os.fspath(root)
    if not is_fer2013(root):
        raise DatasetError(f"{root!r} has no {FER_FILE}; pass the folder holding fer2013.csv (and fer2013new.csv for FER+).")
    folder = materialize_fer2013(root, cache_dir)
    dataset = read_folders(folder, allow_empty_classes=True)  # the seven emotions are the classes, whatever the rows hold
    with_votes = os.path.isfile(os.path.join(root, FERPLUS_FILE))
    note = ("FER2013 Usage: Training → train, PublicTest → val, PrivateTest → test; "
            + ("labels: the FER+ majority of the seven emotions (votes kept)" if with_votes else "labels: FER2013's emotion"))
    return dataset.replace(root=root, layout="fer2013", split_note=note)
