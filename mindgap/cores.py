"""How many cores this process may use; no TensorFlow here (``experiments.workers`` sizes its pool with it)."""

import os


def usable_cores():
    """The cores this process may run on: its CPU affinity where the OS has one (a pinned worker gets its share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
