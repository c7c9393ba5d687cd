"""Data: the dataset layouts (Stanford 40, class folders, WSOL metadata, FER2013/FER+, AFEW, video clips) and their
checks, the data options, the tf.data pipeline with Hide-and-Seek, and the embedded sets.

The names below are imported on first use (PEP 562), so that ``mindgap.data.options`` (which the command line's
help reads) and ``python -m mindgap.data.digits`` load without TensorFlow.
"""

import importlib

_EXPORTS = {
    "hide_and_seek": ("HideAndSeek", "hide_and_seek_mask", "hide_patches"),
    "pipeline": ("load_image", "make_dataset", "make_video_dataset", "preprocess", "valid_boxes"),
    "check": ("check_dataset", "check_images", "check_clips"),
    "clips": ("Clip", "VideoDataset", "read_video_set"),
    "folders": ("read_folders",),
    "layouts": ("LAYOUTS", "detect_layout", "load_dataset", "read_dataset"),
    "options": ("DataOptions",),
    "records": ("DatasetError", "Record", "SplitDataset"),
    "stanford40": ("Stanford40", "read_stanford40"),
    "wsol": ("read_wsol",),
    "fer": ("read_fer2013",),
    "afew": ("read_afew",),
    "digits": ("generate_digits_dataset", "ensure_digits_dataset"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted([*_MODULE_OF, "DIGIT_CLASS_NAMES"])


def __getattr__(name):
    if name == "DIGIT_CLASS_NAMES":
        return importlib.import_module("mindgap.data.digits").CLASS_NAMES
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"mindgap.data.{_MODULE_OF[name]}"), name)
    try:
        return importlib.import_module(f"mindgap.data.{name}")  # a submodule: mindgap.data.layouts
    except ModuleNotFoundError as error:
        if error.name != f"mindgap.data.{name}":
            raise
        raise AttributeError(f"module 'mindgap.data' has no attribute {name!r}") from None


def __dir__():
    return sorted(set(globals()) | set(__all__))
