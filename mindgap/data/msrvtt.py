"""MSR-VTT (Xu et al. 2016) captions with a folder of frames per video, for the video captioner (thesis §7.5).

The layout::

    ROOT/<caption JSON>             MSR-VTT's ``train_val_videodatainfo.json`` / ``test_videodatainfo.json``
                                    (or ``videodatainfo.json``): ``videos`` (``video_id``, ``split``) and
                                    ``sentences`` (``video_id``, ``caption``)
    ROOT/frames/<video_id>/*.jpg    frames extracted beforehand (the thesis samples 26 per video, [97])

MSR-VTT's splits are ``train``, ``validate``, ``test``; ``validate`` is returned as ``val``.
A video without a frames folder is an error naming it (extract the frames first).
"""

import dataclasses
import json
import os

from mindgap.data.records import DatasetError

CAPTION_FILES = ("train_val_videodatainfo.json", "test_videodatainfo.json", "videodatainfo.json")
FRAMES_DIR = "frames"
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
_SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "test": "test"}


@dataclasses.dataclass(frozen=True)
class CaptionedClip:
    video_id: str
    frames: tuple
    captions: tuple  # word tuples, lower case


def _frames(folder):
    if not os.path.isdir(folder):
        return None
    return tuple(os.path.join(folder, name) for name in sorted(os.listdir(folder)) if name.lower().endswith(FRAME_EXTENSIONS))


def read_msrvtt(root):
    """{split: [CaptionedClip]} of an MSR-VTT folder (every caption file found there is read)."""
    root = os.fspath(root)
    files = [os.path.join(root, name) for name in CAPTION_FILES if os.path.isfile(os.path.join(root, name))]
    if not files:
        raise DatasetError(f"No MSR-VTT caption file in {root!r}; looked for {', '.join(CAPTION_FILES)}.")
    splits, sentences = {}, {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            for video in data["videos"]:
                splits[str(video["video_id"])] = _SPLIT_NAMES.get(str(video["split"]), str(video["split"]))
            for sentence in data["sentences"]:
                sentences.setdefault(str(sentence["video_id"]), []).append(tuple(str(sentence["caption"]).lower().split()))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DatasetError(f"{path!r} is not MSR-VTT's caption JSON ({type(error).__name__}: {error}); it needs "
                               "'videos' with video_id and split, and 'sentences' with video_id and caption.") from None
    result = {}
    for video_id, split in splits.items():
        frames = _frames(os.path.join(root, FRAMES_DIR, video_id))
        if not frames:
            raise DatasetError(f"No frames for {video_id} in {os.path.join(root, FRAMES_DIR, video_id)!r}; extract its "
                               "frames there first (e.g. 26 per video).")
        result.setdefault(split, []).append(CaptionedClip(video_id, frames, tuple(sentences.get(video_id, ()))))
    return result
