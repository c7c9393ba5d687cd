"""Where files derived from a data set are written once (images out of a CSV, frames out of a video), and their key."""

import hashlib
import json
import os
import shutil


def cache_root():
    """The folder mindgap caches derived files in: ``$MINDGAP_CACHE_DIR`` or ``~/.cache/mindgap`` (as the image check's)."""
    return os.environ.get("MINDGAP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "mindgap")


def file_key(*paths, version=1):
    """A short key of files' absolute paths, sizes and modification times (a missing file counts as absent)."""
    parts = [version]
    for path in paths:
        stat = os.stat(path) if os.path.isfile(path) else None
        parts.append([os.path.abspath(path), stat and stat.st_size, stat and stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def write_once(out_dir, fill):
    """``out_dir``, written once: ``fill(folder)`` writes into a temporary sibling, which is then renamed to ``out_dir``.

    A folder already at ``out_dir`` is complete (the rename is atomic) and is returned as it is; when two processes
    write at once, the first rename wins and the other copy is removed.  If ``fill`` raises, nothing is left behind.
    """
    out_dir = os.fspath(out_dir)
    if os.path.isdir(out_dir):
        return out_dir
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    temporary = f"{out_dir}.tmp{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    try:
        fill(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    try:
        os.rename(temporary, out_dir)
    except OSError:  # another process wrote it first
        shutil.rmtree(temporary, ignore_errors=True)
    return out_dir
