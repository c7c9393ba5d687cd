"""Dataset layouts by name, their detection, and reading + checking in one call.

=============  ==============================================================
``stanford40`` ``JPEGImages/``, ``XMLAnnotations/``, ``ImageSplits/`` (the paper's data; ``mindgap.data.stanford40``)
``folders``    ``ROOT/<class>/<image>``, optional ``boxes.csv`` and ``splits/`` (``mindgap.data.folders``)
``wsol``       wsolevaluation metadata ``{train,val,test}/image_ids.txt`` … (``mindgap.data.wsol``)
``fer2013``    ``fer2013.csv`` (+ FER+'s ``fer2013new.csv`` votes) (``mindgap.data.fer``)
``afew``       ``<Train…|Val…|Test…>/<Emotion>/<clip>`` video files or frame folders, one record per frame (``mindgap.data.afew``)
``video``      ``mindgap_video.json``, ``clips/<clip>/`` frames + ``clip.json``, ``splits/`` (``mindgap.data.clips``): one record per clip
=============  ==============================================================

Every reader returns a :class:`~mindgap.data.records.SplitDataset` (the video layout its subclass ``VideoDataset``, of
clips); ``LAYOUTS[name].holds`` says whether its records are images or clips, what a model must take.
:func:`detect_layout` tells which layout a folder holds; :func:`load_dataset` reads it (``format="auto"`` detects) and
runs ``mindgap.data.check`` on it.
"""

import dataclasses
import inspect
import os
import typing

from mindgap.data import clips
from mindgap.data.afew import is_afew, read_afew
from mindgap.data.check import check_clips, check_dataset
from mindgap.data.clips import holds_video_set, read_video_set
from mindgap.data.fer import FER_FILE, is_fer2013, read_fer2013
from mindgap.data.folders import IMAGE_EXTENSIONS, SPLITS_DIR, read_folders
from mindgap.data.records import SPLITS, DatasetError
from mindgap.data.stanford40 import ANNOTATIONS_DIR, IMAGES_DIR, SPLITS_DIR as STANFORD_SPLITS_DIR, read_stanford40
from mindgap.data.wsol import CHECKOUT_METADATA, IMAGE_IDS, checkout_datasets, is_metadata_folder, metadata_folder, read_wsol


def _reading(reader, place=os.fspath, **fixed):
    """``read(root, **options)``: ``reader`` at ``place(root)`` with the options it takes (each layout's own; the
    others are for other layouts) and ``fixed``."""
    takes = inspect.signature(reader).parameters

    def read(root, **options):
        return reader(place(root), **fixed, **{name: value for name, value in options.items() if name in takes})

    return read


@dataclasses.dataclass(frozen=True)
class Layout:
    """A dataset layout: its reader (root and the options it understands → a ``SplitDataset``), its detector (root →
    bool), what detection looks for, what its records hold (``"images"`` or ``"clips"``, as a model family's
    ``takes`` in ``mindgap.registry``) and the check that decodes it (``mindgap.data.check``)."""

    read: typing.Callable
    detect: typing.Callable
    looks_for: str
    holds: str = "images"
    check: typing.Callable = check_dataset


def _has_class_folder(root):
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if name.startswith(".") or name == SPLITS_DIR or not os.path.isdir(folder):
            continue
        for _, _, files in os.walk(folder, followlinks=True):
            if any(file.lower().endswith(IMAGE_EXTENSIONS) for file in files):
                return True
    return False


# Detection tries them in this order: the first layout whose detector answers True.
LAYOUTS = {
    "stanford40": Layout(_reading(read_stanford40, check_images=False),
                         lambda root: all(os.path.isdir(os.path.join(root, name)) for name in (IMAGES_DIR, STANFORD_SPLITS_DIR)),
                         f"{IMAGES_DIR}/ and {STANFORD_SPLITS_DIR}/ (Stanford 40)"),
    "wsol": Layout(_reading(read_wsol, metadata_folder), lambda root: is_metadata_folder(root) or bool(checkout_datasets(root)),
                   f"{{train,val,test}}/{IMAGE_IDS} (wsolevaluation metadata), or {CHECKOUT_METADATA}/<DATASET>/ of a "
                   "wsolevaluation checkout"),
    "fer2013": Layout(_reading(read_fer2013), is_fer2013, f"{FER_FILE} (FER2013; FER+ votes from fer2013new.csv beside it)"),
    # before afew and folders: its clip folders hold images
    "video": Layout(_reading(read_video_set), holds_video_set, clips.LOOKS_FOR, holds="clips", check=check_clips),
    "afew": Layout(_reading(read_afew), is_afew, "<Train…|Val…|Test…>/<Emotion>/ folders of clips (AFEW)"),  # before folders, too
    "folders": Layout(_reading(read_folders), _has_class_folder,
                      f"sub-folders holding images ({', '.join(IMAGE_EXTENSIONS)}), one per class"),
}
FORMATS = ("auto", *LAYOUTS)


def detect_layout(root):
    """The name of the layout at ``root`` (checked in the order of :data:`LAYOUTS`), or a ``DatasetError`` saying what was looked for."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"Dataset folder {root!r} does not exist; pass a folder in one of the layouts {', '.join(LAYOUTS)}.")
    for name, layout in LAYOUTS.items():
        if layout.detect(root):
            return name
    partial = [name for name in (IMAGES_DIR, ANNOTATIONS_DIR, STANFORD_SPLITS_DIR) if os.path.isdir(os.path.join(root, name))]
    hint = f" (it has {', '.join(partial)} but lacks the folder(s) of Stanford 40's other archives)" if partial else ""
    looked = "; ".join(f"{name}: {layout.looks_for}" for name, layout in LAYOUTS.items())
    raise DatasetError(f"Could not tell the layout of {root!r}{hint}; looked for {looked}. Lay the data out so, or pass --format.")


def read_dataset(root, format="auto", **options):
    """Read ``root`` in layout ``format`` (``auto`` detects it) without decoding images.

    Options go to the reader that understands them: ``test_per_class`` (stanford40), ``seed``, ``val_fraction``,
    ``test_fraction`` (folders without split files), ``allow_empty_classes`` (folders), ``image_root`` (wsol),
    ``frames_per_clip`` (afew).
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown dataset format {format!r}; use one of {', '.join(FORMATS)}.")
    name = detect_layout(root) if format == "auto" else format
    return LAYOUTS[name].read(root, **options)


def load_dataset(root, format="auto", *, splits=SPLITS, require=(), skip_bad_images=False, allow_train_duplicates=False,
                 workers=None, cache_path="default", print_fn=None, **options):
    """Read ``root`` (:func:`read_dataset`) and check it (``mindgap.data.check.check_dataset``).

    Args:
        splits: the splits whose images are decoded and whose boxes are
            checked (duplicates and leaks are looked for in all three).
        require: splits that must not be empty.

    Returns:
        (dataset, summary): the checked dataset, and a JSON-ready dict of the layout, the split's origin, the sizes
        and the check's report (timings and everything dropped).
    """
    dataset = read_dataset(root, format, **options)
    empty = [split for split in require if not getattr(dataset, split)]
    if empty:
        raise DatasetError(f"The {dataset.layout} dataset at {os.fspath(root)!r} has no {' and no '.join(empty)} image "
                           f"(split: {dataset.split_note}); {_empty_split_fix(dataset, empty)}.")
    dataset, report = LAYOUTS[dataset.layout].check(dataset, splits=splits, skip_bad_images=skip_bad_images,
                                    allow_train_duplicates=allow_train_duplicates, workers=workers, cache_path=cache_path,
                                    print_fn=print_fn)
    emptied = [split for split in require if not getattr(dataset, split)]
    if emptied:
        raise DatasetError(f"No readable {' and no '.join(emptied)} image is left in {os.fspath(root)!r} once the bad ones "
                           "are dropped; fix the images.")
    return dataset, {**dataset.summary(), "check": report.to_dict()}


def _empty_split_fix(dataset, empty):
    """The flag (and keyword) that gives an empty split some images, for this layout."""
    if dataset.layout == "folders" and "stratified" in dataset.split_note:
        flags = " and ".join(f"--{split}-fraction ({split}_fraction)" for split in empty if split in ("val", "test"))
        return (f"raise {flags or '--val-fraction'} so that round(fraction x images per class) >= 1, or list "
                f"images in splits/{empty[0]}.txt")
    if dataset.layout == "folders":
        return f"list some images in splits/{empty[0]}.txt, or remove the splits/ folder for a seeded split (--val-fraction)"
    if dataset.layout == "stanford40":
        return ("lower --test-per-class (test_per_class): per class the first N of test.txt are test and the rest val, "
                "so N must be below the test images per class")
    return f"add {' and '.join(empty)} images to the dataset"


def dataset_options(config):
    """The :func:`load_dataset` keyword arguments held by a ``DataOptions`` (a ``TrainConfig`` is one)."""
    return config.dataset_options()
