"""Data: the dataset layouts (Stanford 40, class folders, WSOL metadata, FER2013/FER+, AFEW) and their checks, the tf.data pipeline with Hide-and-Seek, and the embedded digits set."""

from mindgap.data.hide_and_seek import HideAndSeek, hide_and_seek_mask, hide_patches
from mindgap.data.pipeline import load_image, make_dataset, preprocess, valid_boxes
from mindgap.data.check import check_dataset, check_images
from mindgap.data.folders import read_folders
from mindgap.data.layouts import LAYOUTS, detect_layout, load_dataset, read_dataset
from mindgap.data.records import SplitDataset
from mindgap.data.stanford40 import DatasetError, Record, Stanford40, read_stanford40
from mindgap.data.wsol import read_wsol
from mindgap.data.fer import read_fer2013
from mindgap.data.afew import read_afew

_DIGITS_NAMES = {"generate_digits_dataset", "ensure_digits_dataset", "DIGIT_CLASS_NAMES"}


def __getattr__(name):
    # Imported lazily so that `python -m mindgap.data.digits` runs the module once.
    if name in _DIGITS_NAMES:
        from mindgap.data import digits

        return digits.CLASS_NAMES if name == "DIGIT_CLASS_NAMES" else getattr(digits, name)
    raise AttributeError(f"module 'mindgap.data' has no attribute {name!r}")
