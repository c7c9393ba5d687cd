"""The run folder of ``mindgap.train``: one writer, a settings fingerprint, atomic writes, free-space checks.

* :class:`RunLock`: an advisory ``fcntl.flock`` on ``run.lock`` held for the run's life.  The OS drops it when the
  process dies (kill -9 included), so a lock is never stale; a second writer gets :class:`RunFolderError` naming the
  holder's pid.
* :func:`fingerprint` / :func:`settings_differences`: what must match to write
  into a folder again (:data:`SAFE_TO_CHANGE` lists what may differ).
* :func:`atomic_path` / :func:`write_json`, :func:`require_free_space` / :class:`StorageError` (from
  :mod:`mindgap.storage`, which every writer of the package shares): write to a temporary file beside the target,
  fsync, rename over it; a full disk or an unwritable place as one line naming the path and the free space.

No TensorFlow here: the module is imported by the CLI before anything heavy.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os

from mindgap.storage import (TEMPORARY_MARK, StorageError, atomic_path, file_sha256, free_bytes,  # noqa: F401
                             fsync_folder, read_json, remove_files, remove_temporaries, require_free_space, storage_error,
                             temporary_path, write_json)

LOCK_NAME = "run.lock"

# Settings that may differ between the runs writing into one folder: they change
# neither the model nor the numbers of history.csv.  ``epochs`` is handled apart
# (a run may be extended, never shortened below what it already did).
SAFE_TO_CHANGE = ("strategy", "cache", "tensorboard", "verbose", "snapshot_images", "num_replicas", "data_dir", "data")


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (another writer, other settings): one line, exit 2."""


class RunLock:
    """One writer per run folder: ``fcntl.flock`` on ``folder/name``, held until :meth:`release` or process death.

    The holder writes its pid into the lock file so that a second writer can
    name it.  The lock file itself stays (an unlocked file is no lock).
    """

    def __init__(self, folder, name=LOCK_NAME):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, name)
        self._descriptor = None

    def acquire(self):
        try:
            os.makedirs(self.folder, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise storage_error(self.path, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise RunFolderError(f"{self.folder} is in use by another mindgap train (pid {holder}); "
                                 "wait for it to end or pass another --out.") from None
        with contextlib.suppress(OSError):  # the pid is a courtesy; a full disk must not stop the lock
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor
        return self

    def release(self):
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def data_digest(records_by_split, root):
    """SHA-256 of what training reads: each split's image paths (relative to ``root``), sizes, labels, boxes and votes."""
    digest = hashlib.sha256()
    for split in sorted(records_by_split):
        for record in records_by_split[split]:
            relative = os.path.relpath(os.path.abspath(record.path), os.path.abspath(root))
            try:
                size = os.path.getsize(record.path)
            except OSError:
                size = -1
            boxes = [[round(float(value), 3) for value in box] for box in getattr(record, "boxes", [])]
            votes = getattr(record, "votes", None)  # crowd votes change what Probabilistic Label Drawing trains on
            digest.update(json.dumps([split, relative, size, int(record.label), boxes]
                                     + ([] if votes is None else [[float(count) for count in votes]])).encode())
    return digest.hexdigest()


def fingerprint(model_name, config, dataset, data_dir, num_replicas):
    """Everything a run's result depends on, plus the informative ``data_dir`` and ``num_replicas`` (safe to change)."""
    return {"model_name": model_name, "data_dir": os.path.abspath(data_dir), "num_replicas": num_replicas,
            "class_names": list(dataset.class_names),
            "data_digest": data_digest({"train": dataset.train, "val": dataset.val}, data_dir),
            **dataclasses.asdict(config)}


def _same(old, new):
    if isinstance(old, float) or isinstance(new, float):
        try:
            return math.isclose(float(old), float(new), rel_tol=1e-12, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return list(old) == list(new)
    return old == new


def settings_differences(stored, current, defaults):
    """``[(name, stored value, current value)]`` of the settings that differ and may not (epochs excluded).

    A setting the stored fingerprint lacks (a folder written before it existed) counts as its default
    ``defaults[name]``.  Without a stored data digest, the data folder is compared instead.
    """
    found = []
    for name, value in current.items():
        if name in SAFE_TO_CHANGE or name == "epochs":
            continue
        if name in stored:
            old = stored[name]
        elif name in defaults:
            old = defaults[name]
        else:
            continue
        if not _same(old, value):
            found.append((name, old, value))
    if "data_digest" not in stored and "data_dir" in stored and stored["data_dir"] != current.get("data_dir"):
        found.append(("data_dir", stored["data_dir"], current.get("data_dir")))
    return found


def describe_differences(out_dir, differences):
    """One line: the folder, each differing setting (folder's value → this run's), and the fix."""
    shown = []
    for name, old, new in differences:
        if name == "data_digest":
            shown.append("data (other images, labels or boxes)")
        elif name == "class_names":
            shown.append("class names")
        else:
            shown.append(f"{name} {old!r} → {new!r}")
    return (f"{out_dir} holds a run with other settings: {'; '.join(shown)} (folder's → this run's); "
            "rerun with the folder's settings or pass another --out.")
