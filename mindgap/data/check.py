"""Every image decoded and every box checked before anything trains or evaluates.

:func:`check_dataset` decodes each image of the asked splits once, with the pipeline's decoder
(``tf.io.decode_image``), one worker per core; the result is remembered per file path, size and modification time
in a small SQLite file (``~/.cache/mindgap/image_checks.sqlite``, or ``$MINDGAP_CACHE_DIR``), so a second run on
unchanged files decodes nothing.  Then every box is checked against its image: finite, ``x_min < x_max`` and
``y_min < y_max``, overhanging each edge by at most a pixel (then clipped to it).  An image listed twice in one
split, or in two splits (a leak), is an error too (``allow_train_duplicates`` permits repeats within ``train``).

Clips (the video layout, ``mindgap.data.clips``) get the same decoding and box check (:func:`check_clips`), and a
clip folder given for inference the training check's rules (:func:`load_checked_clip`).

Every problem is gathered into one :class:`~mindgap.data.records.DatasetError` naming the first few files and the
count.  With ``skip_bad_images`` the unreadable images and the bad boxes are dropped instead, with a warning, and the
returned report lists them (``mindgap.train`` writes it into ``config.json``); duplicates and leaks never are.
"""

import collections
import contextlib
import dataclasses
import functools
import os
import sqlite3
import sys
import time

import numpy as np

from mindgap.cores import usable_cores
from mindgap.data.clips import frame_numbers, load_clip_frames, odd_lengths, read_clip
from mindgap.data.derived import cache_root
from mindgap.data.records import SPLITS, DatasetError, summarize

CACHE_FILE = "image_checks.sqlite"
EDGE_TOLERANCE = 1.0  # pixels a box may overhang an image edge before it is an error


def default_cache_path():
    return os.path.join(cache_root(), CACHE_FILE)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence TensorFlow's C++ log lines (``Premature end of JPEG data``) that name no file; the check names them."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _Cache:
    """path → (size, mtime_ns, height, width, error) in SQLite; unusable cache files are ignored."""

    def __init__(self, path):
        self.path = path
        self.connection = None
        if path is None:
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.connection = sqlite3.connect(path, timeout=30)
            self.connection.execute("CREATE TABLE IF NOT EXISTS images (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                                    "height INTEGER, width INTEGER, error TEXT)")
        except (sqlite3.Error, OSError):  # an unwritable cache folder or a broken file: check without a cache
            self.connection = None

    def lookup(self, stats):
        """{path: (height, width, error)} for the paths whose size and mtime still match."""
        if self.connection is None:
            return {}
        found = {}
        paths = list(stats)
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            rows = self.connection.execute(
                f"SELECT path, size, mtime_ns, height, width, error FROM images WHERE path IN ({','.join('?' * len(chunk))})", chunk)
            for path, size, mtime_ns, height, width, error in rows:
                if stats[path] == (size, mtime_ns):
                    found[path] = (height, width, error)
        return found

    def store(self, results, stats):
        if self.connection is None or not results:
            return
        try:
            with self.connection:
                self.connection.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?)",
                                            [(path, *stats[path], *results[path]) for path in results if stats.get(path)])
        except sqlite3.Error:
            pass

    def close(self):
        if self.connection is not None:
            self.connection.close()


def _decode_all(paths, workers):
    """{path: (height, width, None) or (0, 0, error message)} with TensorFlow's decoder, ``workers`` in parallel."""
    import tensorflow as tf

    def probe(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return path, tf.shape(image)[:2]

    results = {}
    if not paths:
        return results
    options = tf.data.Options()
    options.threading.private_threadpool_size = workers
    dataset = (tf.data.Dataset.from_tensor_slices(np.asarray(paths)).map(probe, num_parallel_calls=workers, deterministic=True)
               .ignore_errors().batch(1024).with_options(options))  # batched: Python sees ~n/1024 elements, not n
    with _native_stderr_silenced():
        for batch_paths, shapes in dataset.as_numpy_iterator():
            for path, (height, width) in zip(batch_paths, shapes.tolist()):
                results[path.decode()] = (height, width, None)
        for path in paths:  # the few that failed: decode again, one by one, for the message
            if path in results:
                continue
            try:
                probe(tf.constant(path))
                results[path] = (0, 0, "decoded on a second try; the file may be changing")
            except tf.errors.OpError as error:
                message = error.message.split("}}")[-1].split("[Op:")[0].strip() or type(error).__name__
                results[path] = (0, 0, message)
    return results


def _stat(path):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)


@dataclasses.dataclass
class ImageCheck:
    """Decoded (height, width) of every readable image, the error of every other, and what the cache saved."""

    sizes: dict
    errors: dict
    decoded: int
    from_cache: int
    seconds: float


def check_images(paths, *, workers=None, cache_path="default", refresh=False):
    """Decode every file of ``paths`` once (cached by path, size and mtime); see :class:`ImageCheck`.

    Args:
        paths: image files.
        workers: parallel decoders (default: one per usable core).
        cache_path: the SQLite cache file; "default" for :func:`default_cache_path`, None for no cache.
        refresh: decode every file even if the cache knows it (and store what was found).
    """
    started = time.perf_counter()
    workers = max(1, int(workers or usable_cores()))
    unique = list(dict.fromkeys(os.path.abspath(os.fspath(path)) for path in paths))
    stats = {path: _stat(path) for path in unique}
    errors = {path: "no such file" for path, stat in stats.items() if stat is None}
    present = {path: stat for path, stat in stats.items() if stat is not None}
    cache = _Cache(default_cache_path() if cache_path == "default" else cache_path)
    try:
        known = {} if refresh else cache.lookup(present)
        fresh = _decode_all([path for path in present if path not in known], workers)
        cache.store(fresh, present)
    finally:
        cache.close()
    sizes = {}
    for path, (height, width, error) in {**known, **fresh}.items():
        if error:
            errors[path] = error
        else:
            sizes[path] = (height, width)
    return ImageCheck(sizes, errors, decoded=len(fresh), from_cache=len(known), seconds=time.perf_counter() - started)


def decode_failure(paths):
    """After a decode error inside the tf.data pipeline (TensorFlow's message names no file): every file of ``paths``
    decoded again, the check's cache refreshed with what was found; a :class:`DatasetError` naming the files that no
    longer decode, or None when all do (the error came from elsewhere).

    A file can change after the check with its size and modification time kept (the cache's key); decoding every
    file again costs a second only when something already went wrong."""
    result = check_images(paths, refresh=True)
    bad = [f"{path} ({result.errors[path]})" for path in dict.fromkeys(os.path.abspath(os.fspath(path)) for path in paths)
           if path in result.errors]
    if not bad:
        return None
    return DatasetError(summarize(bad, "file(s) no longer decode") + "; they changed after the check before training: "
                        "replace or remove them, then run the same command (it resumes from the last saved epoch).")


def box_problem(box, height, width, tolerance=EDGE_TOLERANCE):
    """(clipped box, None) for a good box, (None, reason) for a bad one, in an image of ``height`` × ``width``."""
    box = np.asarray(box, np.float64)
    if not np.all(np.isfinite(box)):
        return None, "a coordinate is not finite"
    x_min, y_min, x_max, y_max = box
    if not x_min < x_max:
        return None, "x_min >= x_max"
    if not y_min < y_max:
        return None, "y_min >= y_max"
    if x_min < -tolerance or y_min < -tolerance or x_max > width + tolerance or y_max > height + tolerance:
        return None, f"outside the {width}x{height} image by more than {tolerance:g} pixel"
    clipped = np.array([max(x_min, 0.0), max(y_min, 0.0), min(x_max, width), min(y_max, height)])
    if not (clipped[0] < clipped[2] and clipped[1] < clipped[3]):
        return None, f"empty once clipped to the {width}x{height} image"
    return clipped.astype(np.float32), None


def _format_box(box):
    return "(" + ", ".join(f"{value:g}" for value in np.asarray(box, np.float64)) + ")"


def find_duplicates(dataset, allow_train_duplicates=False):
    """(duplicates within a split, leaks across splits) as lists of one-line descriptions."""
    real_folder = functools.lru_cache(maxsize=None)(os.path.realpath)  # folders resolved once: 10× faster than per file

    def identity(path):
        path = os.path.abspath(path)
        return os.path.join(real_folder(os.path.dirname(path)), os.path.basename(path))

    duplicates, where = [], collections.defaultdict(list)
    for split in SPLITS:
        counts = collections.Counter(identity(record.path) for record in getattr(dataset, split))
        for path, count in counts.items():
            where[path].append(split)
            if count > 1 and not (split == "train" and allow_train_duplicates):
                duplicates.append(f"{path} is listed {count} times in {split}")
    leaks = [f"{path} is in both {' and '.join(splits)}" for path, splits in where.items() if len(splits) > 1]
    return duplicates, leaks


@dataclasses.dataclass
class CheckReport:
    """What :func:`check_dataset` did: counts, timings and everything it dropped (JSON-ready via ``to_dict``)."""

    splits: list
    images: int
    decoded: int
    from_cache: int
    seconds: float
    clipped_boxes: int
    dropped_images: list
    dropped_boxes: list

    def to_dict(self):
        return dataclasses.asdict(self)


def check_dataset(dataset, *, splits=SPLITS, skip_bad_images=False, allow_train_duplicates=False, workers=None,
                  cache_path="default", print_fn=None):
    """Check ``dataset`` (a ``SplitDataset``) before use; return (the dataset to use, :class:`CheckReport`).

    Images of ``splits`` are decoded; duplicates and leaks are looked for over all splits.  Good boxes that overhang
    an edge by at most a pixel come back clipped to the image.

    Raises:
        DatasetError: one message naming the first few bad files and the count of each kind of problem; with
            ``skip_bad_images`` only for duplicates and leaks.
    """
    print_fn = print_fn or (lambda line: print(line, file=sys.stderr, flush=True))
    duplicates, leaks = find_duplicates(dataset, allow_train_duplicates)
    records = {split: list(getattr(dataset, split)) for split in splits}
    images = check_images([record.path for split in splits for record in records[split]], workers=workers, cache_path=cache_path)

    unreadable, bad_boxes, wrong_sizes = [], [], []
    dropped_images, dropped_boxes, clipped = [], [], 0
    kept = {split: [] for split in splits}
    for split in splits:
        for record in records[split]:
            path = os.path.abspath(record.path)
            if path in images.errors:
                unreadable.append(f"{record.path} ({images.errors[path]})")
                dropped_images.append({"path": record.path, "split": split, "reason": images.errors[path]})
                continue
            height, width = images.sizes[path]
            if record.size is not None and tuple(record.size) != (width, height):
                reason = f"the metadata says {record.size[0]}x{record.size[1]} but the file is {width}x{height}"
                wrong_sizes.append(f"{record.path} ({reason})")
                dropped_images.append({"path": record.path, "split": split, "reason": reason})
                continue
            good = []
            for index, box in enumerate(np.asarray(record.boxes).reshape(-1, 4)):
                fixed, reason = box_problem(box, height, width)
                if reason:
                    bad_boxes.append(f"{record.path} box {index + 1} {_format_box(box)}: {reason}")
                    dropped_boxes.append({"path": record.path, "split": split, "box": [float(v) for v in box], "reason": reason})
                    continue
                clipped += int(not np.array_equal(fixed, np.asarray(box, np.float32)))
                good.append(fixed)
            kept[split].append(dataclasses.replace(record, boxes=np.asarray(good, np.float32).reshape(-1, 4)))

    droppable = [(unreadable, "unreadable images"), (wrong_sizes, "images whose size disagrees with the metadata"),
                 (bad_boxes, "bad boxes")]
    fatal = [(duplicates, "duplicates within a split"), (leaks, "images in two splits (leaks)")]
    found = [(items, what) for items, what in (fatal + ([] if skip_bad_images else droppable)) if items]
    if found:
        total = sum(len(items) for items, _ in found)
        advice = ("Fix or remove these files" + ("" if skip_bad_images or not any(items for items, _ in droppable)
                                                 else ", or pass --skip-bad-images to drop unreadable images and bad boxes"))
        if duplicates or leaks:
            advice += "; list each image once, in one split"
        raise DatasetError(f"{dataset.layout} dataset at {dataset.root!r}: {total} problem(s) found before starting: "
                           + "; ".join(summarize(items, what) for items, what in found) + f". {advice}.")
    for items, what in droppable:
        if items:
            print_fn("warning: --skip-bad-images dropped " + summarize(items, what))
    report = CheckReport(list(splits), len(images.sizes) + len(images.errors), images.decoded, images.from_cache,
                         round(images.seconds, 3), clipped, dropped_images, dropped_boxes)
    return dataset.replace(**kept), report


def check_clips(dataset, *, splits=None, workers=None, cache_path="default", **_):
    """The video layout's :func:`check_dataset`: decode every frame of ``splits`` (default all) and check the boxes;
    (the dataset with its boxes clipped, :class:`CheckReport`), or a ``DatasetError`` listing every problem.

    Frames of one clip must share one size; each box must lie inside its frame (:func:`box_problem`: one pixel of
    overhang is clipped); a clip may be in one split only.  The image options (``skip_bad_images`` …) do not apply.
    """
    names = list(dataset.splits) if splits is None else splits
    clips = [clip for name in names for clip in dataset.split(name)]
    decoded = check_images([frame for clip in clips for frame in clip.frames], workers=workers, cache_path=cache_path)
    problems, seen, checked = [], {}, {}
    for name in names:
        checked[name] = []
        for clip in dataset.split(name):
            if clip.path in seen:
                problems.append(f"{clip.name} is in {seen[clip.path]} and {name}")
            seen[clip.path] = name
            clip, problem = _checked_clip(clip, decoded)
            problems += problem
            checked[name] += [clip] if clip is not None else []
        problems += odd_lengths(dataset.split(name), name)
    if problems:
        raise DatasetError(summarize(problems, f"problem(s) in the video set at {dataset.root!r}") + "; fix or regenerate it.")
    return dataset.replace(**checked), CheckReport(list(names), len(decoded.sizes), decoded.decoded, decoded.from_cache,
                                                   round(decoded.seconds, 3), 0, [], [])


def _checked_clip(clip, decoded):
    """(the clip with its boxes clipped to its frames, []) or (None, [its first problem]); boxes may give several."""
    bad = [frame for frame in clip.frames if os.path.abspath(frame) in decoded.errors]
    if bad:
        return None, [f"{clip.name}: unreadable frame {os.path.basename(bad[0])} ({decoded.errors[os.path.abspath(bad[0])]})"]
    sizes = {decoded.sizes[os.path.abspath(frame)] for frame in clip.frames}
    if len(sizes) != 1:
        return None, [f"{clip.name}: frames of {len(sizes)} sizes {sorted(sizes)}"]
    height, width = sizes.pop()
    boxes, problems = clip.boxes.copy(), []
    for index, box in enumerate(boxes):
        if np.isnan(box).all():
            continue
        clipped, problem = box_problem(box, height, width)
        if problem:
            problems.append(f"{clip.name} frame {index}: {problem}")
        else:
            boxes[index] = clipped
    return dataclasses.replace(clip, boxes=boxes), problems


def load_checked_clip(folder, size=None, num_classes=None, warn=None):
    """A clip folder for inference, by the training check's rules: (``Clip``, frames (T, H, W, 3) uint8 RGB
    resized to ``size``, frame numbers or None).

    Refused with a :class:`DatasetError` naming the file: no frame, a ``clip.json`` that cannot be read, a frame
    TensorFlow cannot decode (a truncated JPEG among them, which OpenCV alone would show grey), frames of several
    sizes.  Warned through ``warn``: frame numbers with gaps (the frames are taken in name order; report them by
    their numbers)."""
    clip = read_clip(folder, num_classes)
    decoded = check_images(clip.frames)
    bad = [f"{os.path.basename(frame)} ({decoded.errors[os.path.abspath(frame)]})" for frame in clip.frames
           if os.path.abspath(frame) in decoded.errors]
    if bad:
        raise DatasetError(summarize(bad, f"unreadable frame(s) in clip {clip.path!r}") + "; replace them (frames are "
                           "decoded as training decodes them).")
    first_of_size = {}
    for frame in clip.frames:
        first_of_size.setdefault(decoded.sizes[os.path.abspath(frame)], os.path.basename(frame))
    if len(first_of_size) > 1:
        shown = ", ".join(f"{width}x{height} (from {name})" for (height, width), name in first_of_size.items())
        raise DatasetError(f"The frames of clip {clip.path!r} have {len(first_of_size)} sizes: {shown}; pass frames of "
                           "one size.")
    numbers = frame_numbers(clip.frames)
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers)) if numbers else []
    if missing and warn is not None:
        shown = ", ".join(str(number) for number in missing[:10]) + (" …" if len(missing) > 10 else "")
        warn(f"warning: clip {clip.path!r} lacks frame number(s) {shown} between {numbers[0]} and {numbers[-1]}; its "
             f"{len(numbers)} frames are used in name order and named by their file numbers.")
    return clip, load_clip_frames(clip, size), numbers
