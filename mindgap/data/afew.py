"""Reader for AFEW-style video folders (EmotiW): one folder per emotion holding clips, as video files or frame folders.

On disk (AFEW 6.0 as EmotiW distributes it: ``Train_AFEW/Angry/000046280.avi`` …)::

    ROOT/<split>/<Emotion>/<clip>.avi        a video file (.avi .mp4 .mkv .mov .mpg .mpeg .webm), read with OpenCV
    ROOT/<split>/<Emotion>/<clip>/000.png …  or a folder of frames (.jpg .jpeg .png .bmp), in name order
    ROOT/<split>/<Emotion>/<clip>.json       optional: {"boxes": [[x_min, y_min, x_max, y_max], …]}, the face box
                                             of every frame (pixel edges, exclusive ends), as the stand-in writes

``<split>`` is a folder whose name starts with ``train``, ``val`` or ``test`` (any case: ``Train_AFEW``, ``Val_AFEW``,
``val``); ``<Emotion>`` one of :data:`mindgap.data.emotions.EMOTIONS` or an alias (``Angry``, ``Happy``, ``Surprise``,
…); other folders (AFEW's ``AlignedFaces_LBPTOP_Points``) are not read.  An unlabelled test folder (no emotion
folders) gives no test clip.

Every frame is a :class:`~mindgap.data.records.Record` of the clip's emotion whose ``clip`` names the clip (its path
under ROOT) and whose box is the face box of that frame (when the sidecar gives one).  A video file's frames are
decoded once into JPEG files (quality 95) under the cache folder (keyed by the file's path, size and modification
time); a frame folder is read in place.
``frames_per_clip`` keeps that many frames per clip, evenly spaced (default: all).  Problems (an unreadable video, an
empty frame folder, a sidecar with another number of boxes than frames) are gathered into one ``DatasetError`` before
anything trains; :func:`group_clips` gives the frames of each clip in order.
"""

import collections
import json
import os

import cv2
import numpy as np

from mindgap.data.clips import FRAME_EXTENSIONS, frame_files
from mindgap.data.derived import cache_root, file_key, write_once
from mindgap.data.emotions import EMOTIONS, emotion_index
from mindgap.data.records import SPLITS, DatasetError, Record, SplitDataset, no_boxes, summarize

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".mpg", ".mpeg", ".webm")
SIDECAR = ".json"
_JPEG_QUALITY = 95


def split_of(folder_name):
    """``train`` / ``val`` / ``test`` for a split folder's name (``Train_AFEW`` → train), or None."""
    lowered = folder_name.lower()
    return next((split for split in SPLITS if lowered.startswith(split)), None)


def _emotion_folders(split_folder):
    return [(name, emotion_index(name)) for name in sorted(os.listdir(split_folder))
            if os.path.isdir(os.path.join(split_folder, name)) and emotion_index(name) is not None]


def is_afew(root):
    """True when ``root`` holds a train/val/test folder with at least one emotion folder."""
    for name in os.listdir(root):
        folder = os.path.join(root, name)
        if os.path.isdir(folder) and split_of(name) and _emotion_folders(folder):
            return True
    return False


class _Unreadable(Exception):
    pass


def decode_video(path, cache_dir=None):
    """The frames of a video file as JPEG files under the cache (decoded once with OpenCV); [] when unreadable."""
    out_dir = os.path.join(cache_dir or os.path.join(cache_root(), "afew_frames"), file_key(path))

    def fill(folder):
        capture = cv2.VideoCapture(os.fspath(path))
        count = 0
        while capture.isOpened():
            ok, frame = capture.read()
            if not ok:
                break
            cv2.imwrite(os.path.join(folder, f"{count:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
            count += 1
        capture.release()
        if count == 0:
            raise _Unreadable(path)

    try:
        return frame_files(write_once(out_dir, fill))
    except _Unreadable:
        return []


def _sidecar_boxes(path, count, problems):
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            boxes = np.asarray(json.load(handle)["boxes"], np.float32)
    except (OSError, ValueError, KeyError, TypeError) as error:
        problems.append(f"{path} is not a JSON object with 'boxes' ({type(error).__name__})")
        return None
    if boxes.shape != (count, 4):
        problems.append(f"{path} has {boxes.shape[0] if boxes.ndim else 0} boxes of shape {boxes.shape[1:]} for "
                        f"{count} frames; give one [x_min, y_min, x_max, y_max] per frame")
        return None
    return boxes


def keep_evenly(count, keep):
    """Indices of ``keep`` frames evenly spaced over ``count`` (all when ``keep`` is None or >= count)."""
    if keep is None or keep >= count:
        return list(range(count))
    return sorted(set(int(index) for index in np.linspace(0, count - 1, keep).round()))


def read_afew(root, *, frames_per_clip=None, cache_dir=None):
    """Read the AFEW-style folders at ``root`` (see the module docstring) as a ``SplitDataset`` of frames."""
    root = os.fspath(root)
    if not os.path.isdir(root) or not is_afew(root):
        raise DatasetError(f"{root!r} holds no AFEW-style folders: looked for <train|val|test…>/<Emotion>/ "
                           f"(emotions: {', '.join(EMOTIONS)}).")
    if frames_per_clip is not None and frames_per_clip < 1:
        raise ValueError(f"frames_per_clip must be >= 1 (or None for all), got {frames_per_clip}.")
    splits, problems, clips = {name: [] for name in SPLITS}, [], collections.Counter()
    for split_name in sorted(os.listdir(root)):
        split, folder = split_of(split_name), os.path.join(root, split_name)
        if split is None or not os.path.isdir(folder):
            continue
        for emotion_name, label in _emotion_folders(folder):
            emotion_folder = os.path.join(folder, emotion_name)
            for entry in sorted(os.listdir(emotion_folder)):
                path = os.path.join(emotion_folder, entry)
                stem, extension = os.path.splitext(entry)
                if entry.startswith("."):
                    continue
                if os.path.isdir(path):
                    frames, stem = frame_files(path), entry
                    if not frames:
                        problems.append(f"{path} holds no frame ({', '.join(FRAME_EXTENSIONS)})")
                        continue
                elif extension.lower() in VIDEO_EXTENSIONS:
                    frames = decode_video(path, cache_dir)
                    if not frames:
                        problems.append(f"{path} could not be read by OpenCV (no frame decoded)")
                        continue
                else:
                    continue
                boxes = _sidecar_boxes(os.path.join(emotion_folder, stem + SIDECAR), len(frames), problems)
                clip = os.path.relpath(path, root).replace(os.sep, "/")
                clips[split] += 1
                for index in keep_evenly(len(frames), frames_per_clip):
                    splits[split].append(Record(frames[index], label, no_boxes() if boxes is None else boxes[index:index + 1],
                                                clip=clip))
    if problems:
        raise DatasetError(f"AFEW folders at {root!r}: " + summarize(problems, "problems") + ".")
    if not splits["train"]:
        raise DatasetError(f"{root!r} has no training clip: add a Train…/<Emotion>/ folder with clips.")
    note = (f"AFEW split folders (train {clips['train']}, val {clips['val']}, test {clips['test']} clips); "
            f"{'all frames' if frames_per_clip is None else f'{frames_per_clip} frames evenly spaced'} per clip")
    return SplitDataset(root, EMOTIONS, splits["train"], splits["val"], splits["test"], "afew", note)


def group_clips(records):
    """{clip: [records of its frames, in order]} in the order the clips first appear (frames without a clip: skipped)."""
    grouped = {}
    for record in records:
        if record.clip is not None:
            grouped.setdefault(record.clip, []).append(record)
    return grouped
