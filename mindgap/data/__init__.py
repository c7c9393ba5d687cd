"""Data: the dataset layouts (Stanford 40, class folders, WSOL metadata, FER2013/FER+, AFEW, video clips) and their
checks, the data options, the tf.data pipeline with Hide-and-Seek, and the embedded sets.

The names below are imported on first use (PEP 562), so that ``mindgap.data.options`` (which the command line's
help reads) and ``python -m mindgap.data.digits`` load without TensorFlow.
"""

from mindgap.lazy_exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
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
    "digits": ("generate_digits_dataset", "ensure_digits_dataset", "DIGIT_CLASS_NAMES"),
}, renamed={"DIGIT_CLASS_NAMES": "CLASS_NAMES"})
