"""Where files derived from a data set are written once (images out of a CSV, frames out of a video), and their key."""

import hashlib
import json
import os


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
