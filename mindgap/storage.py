"""Writes that never leave half a file or half a folder: temporary beside the target, fsync, one rename.

* :func:`atomic_path` / :func:`write_json` / :func:`write_text` / :func:`save_model`: write a
  temporary file beside the target, flush, fsync, rename it over the target, fsync the folder;
  on any failure the temporary file is removed and the target keeps its previous content.
* :func:`atomic_folder`: the same for a whole folder (a generated set, an export, a refiner):
  written under a hidden temporary name beside the target and renamed when complete, so the target is either absent,
  its previous self, or whole.  What a killed writer left is removed by the next writer of the same target.
* :func:`require_free_space` / :class:`StorageError`: a full disk or an unwritable place as one
  line naming the path and the free space.

The run folder (``mindgap.training.run_folder``), the experiments, the data generators and
the exports all write through here.  No TensorFlow in this module.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil

TEMPORARY_MARK = ".tmp-"
_REPLACED_MARK = ".old-"
# Keras, numpy and the image writers pick the format from the ending.
_ENDINGS = (".weights.h5", ".keras", ".png", ".json", ".csv", ".npz", ".tflite", ".onnx", ".md")


class StorageError(OSError):
    """A write failed or would fail (full disk, read-only or missing place): one line naming the path and the free space."""


def free_bytes(path):
    """Free bytes on the file system holding ``path`` (or its nearest existing parent); None if unknown."""
    path = os.path.abspath(os.fspath(path))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _megabytes(count):
    return "unknown" if count is None else f"{count / 2**20:.1f} MB"


def storage_error(path, error=None, needed=None):
    """A :class:`StorageError` for ``path``: why (the OS error or the missing space) and the free space there."""
    path = os.fspath(path)
    free = free_bytes(path)
    if needed is not None:
        reason = f"about {_megabytes(needed)} needed"
    elif error is not None:
        reason = error.strerror or type(error).__name__
    else:
        reason = "write failed"
    code = getattr(error, "errno", None) or errno.ENOSPC
    fix = "free some space or choose another place" if code in (errno.ENOSPC, errno.EDQUOT) else "choose a writable place"
    return StorageError(code, f"cannot write {path}: {reason}, {_megabytes(free)} free there; {fix}, then rerun")


def require_free_space(path, needed):
    """Raise :class:`StorageError` unless the disk holding ``path`` has ``needed`` bytes free (checked before a write
    that would crash TensorFlow's or h5py's writers on a full disk)."""
    free = free_bytes(path)
    if free is not None and free < needed:
        raise storage_error(path, needed=needed)


def _temporary_suffix(name):
    return next((ending for ending in _ENDINGS if name.endswith(ending)), "")


def fsync_folder(folder):
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_file(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def temporary_path(path):
    """The temporary name used for ``path``: hidden, beside it, marked with the pid, same ending."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}{TEMPORARY_MARK}{os.getpid()}{_temporary_suffix(name)}")


@contextlib.contextmanager
def atomic_path(path, needed=0):
    """Yield a temporary path to write; then fsync it and rename it over ``path`` in one step.

    If the body raises, the temporary file is removed and ``path`` keeps its
    previous content; an ``OSError`` comes out as :class:`StorageError`.
    ``needed`` bytes are checked free before the body runs.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    temporary = temporary_path(path)
    try:
        os.makedirs(folder, exist_ok=True)
        if needed:
            require_free_space(path, needed)
        yield temporary
        if not os.path.isfile(temporary):
            raise OSError(errno.EIO, "nothing was written")
        _fsync_file(temporary)
        os.replace(temporary, path)
        fsync_folder(folder)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and not isinstance(error, StorageError):
            raise storage_error(path, error) from None
        raise


def write_json(path, payload):
    """``payload`` as JSON at ``path``, atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.flush()


def read_json(path):
    """The JSON object at ``path``, or None when it is missing, empty or unreadable."""
    try:
        with open(path) as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def file_sha256(path):
    """SHA-256 of a file, or of a folder (every file's relative path and bytes, in sorted order)."""
    digest = hashlib.sha256()
    if not os.path.isdir(path):
        _digest_file(digest, path)
        return digest.hexdigest()
    for root, folders, files in os.walk(path):
        folders.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode())
            _digest_file(digest, full)
    return digest.hexdigest()


def _digest_file(digest, path):
    with open(path, "rb") as handle:  # in blocks: a model file need not fit in memory twice
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def remove_temporaries(*folders):
    """Remove the temporary files a killed writer left (``.NAME.tmp-PID…``, and the older ``*.tmp*`` names)."""
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if TEMPORARY_MARK in name or name.endswith((".tmp", ".tmp.keras")):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))


def remove_files(folder, *names):
    """Remove the files ``names`` of ``folder`` that exist."""
    for name in names:
        if os.path.isfile(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))


def write_text(path, text):
    """``text`` at ``path``, atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as handle:
            handle.write(text)


def save_model(model, path):
    """``model.save(path)`` atomically: a kill or a full disk leaves the previous file (or none), never part of one."""
    with atomic_path(path) as temporary:
        model.save(temporary)
    return path


def savefig(figure, path, **options):
    """``figure.savefig(path)`` atomically."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, **options)
    return path


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _marked_pid(name, prefix, mark):
    if not name.startswith(prefix + mark):
        return None
    digits = name[len(prefix + mark):]
    return int(digits) if digits.isdigit() else None


def remove_stale_folders(path):
    """Clear what killed writers of ``path`` left beside it: their temporary folders, and a previous ``path`` moved
    aside during a replacement (put back when ``path`` itself is missing)."""
    parent, name = os.path.split(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(parent):
        return
    prefix = f".{name}"
    for entry in os.listdir(parent):
        for mark in (TEMPORARY_MARK, _REPLACED_MARK):
            pid = _marked_pid(entry, prefix, mark)
            if pid is None or _pid_alive(pid):
                continue
            stale = os.path.join(parent, entry)
            if mark == _REPLACED_MARK and not os.path.exists(os.path.join(parent, name)):
                os.rename(stale, os.path.join(parent, name))  # killed between the two renames: the old one is whole
            else:
                shutil.rmtree(stale, ignore_errors=True)


def _fsync_tree(folder):
    """Every file and folder under ``folder`` on disk.  Where the OS has ``sync`` (Linux waits for it to finish),
    one call does it: an embedded set's 12,000 files took 40 s longer with one fsync each."""
    if hasattr(os, "sync"):
        os.sync()
        return
    for root, _, names in os.walk(folder):
        for name in names:
            _fsync_file(os.path.join(root, name))
        fsync_folder(root)


@contextlib.contextmanager
def atomic_folder(path, replace=True):
    """Yield a new temporary folder beside ``path``; when the body ends, it takes ``path``'s place.

    Every file is flushed to disk, then the folder is renamed to ``path``.  An existing ``path`` is replaced (moved aside, the
    new one renamed in, the old one removed) when ``replace``, else a non-empty ``path`` raises ``FileExistsError``.
    If the body raises, the temporary folder is removed and ``path`` is left as it was; an ``OSError`` comes out as
    :class:`StorageError` naming ``path``.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    temporary = os.path.join(parent, f".{name}{TEMPORARY_MARK}{os.getpid()}")
    try:
        os.makedirs(parent, exist_ok=True)
        remove_stale_folders(path)
        shutil.rmtree(temporary, ignore_errors=True)
        os.mkdir(temporary)
        yield temporary
        _fsync_tree(temporary)
        if os.path.isdir(path) and os.listdir(path):
            if not replace:
                raise FileExistsError(f"{path!r} was filled by another writer meanwhile; nothing was written.")
            aside = os.path.join(parent, f".{name}{_REPLACED_MARK}{os.getpid()}")
            os.rename(path, aside)
            os.rename(temporary, path)
            shutil.rmtree(aside, ignore_errors=True)
        elif os.path.isfile(path):
            raise FileExistsError(f"{path!r} is a file, not a folder; pass another place.")
        else:
            os.replace(temporary, path)  # over nothing, or over an empty folder
        fsync_folder(parent)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, (StorageError, FileExistsError)):
            raise storage_error(path, error) from None
        raise
