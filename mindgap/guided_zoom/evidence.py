"""The Evidence CNN: a model of the registry trained on the evidence pool through ``mindgap.train``.

Bargal 2019, ch. 6, §6.1.1: "We then train a CNN model, *Evidence CNN*, on the generated evidence pool P" with the
images' labels.  The pools are written as a class-folder dataset (:func:`mindgap.guided_zoom.pool.write_pool`:
``train`` from the training images, ``val`` from the validation images, both by Algorithm 1) and trained like any
other model, so the run folder, resume, logs and ``best.keras`` (lowest validation loss) are ``mindgap.train``'s own.
"""

import json
import os
import shutil

from mindgap.guided_zoom.pool import write_pool
from mindgap.training import train

POOL_DIR = "pool"
RUN_DIR = "run"
_POOL_RECORD = "pool.json"


def _pool_record(pools):
    return {split: {"patches": len(pool), "counts": {f"{method}/l{level}": count
                                                     for (method, level), count in sorted(pool.counts().items())}}
            for split, pool in pools.items()}


def write_pool_once(folder, pools, class_names):
    """Write the pools to ``folder`` unless the same pools (same counts per method and round) are there;
    written into a temporary folder and renamed, so a half-written pool is never trained on."""
    record = {"class_names": list(class_names), "pools": _pool_record(pools)}
    record_path = os.path.join(folder, _POOL_RECORD)
    if os.path.isfile(record_path):
        with open(record_path) as handle:
            if json.load(handle) == record:
                return folder
        raise FileExistsError(f"{folder!r} holds another evidence pool; pass another out_dir (or remove it to start over).")
    temporary = folder + ".tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    write_pool(temporary, pools, class_names)
    with open(os.path.join(temporary, _POOL_RECORD), "w") as handle:
        json.dump(record, handle, indent=2)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.replace(temporary, folder)
    return folder


def train_evidence_cnn(train_pool, val_pool, out_dir, class_names, model_name="Tiny-GAP5", config=None, **overrides):
    """Train the Evidence CNN ``model_name`` on ``train_pool`` (validated on ``val_pool``) into ``out_dir``.

    Writes ``out_dir/pool/`` (the patches as a class-folder dataset) and trains in ``out_dir/run/``
    with ``mindgap.train`` (``config`` and ``overrides``: any ``TrainConfig`` field, e.g.
    ``image_size``, ``epochs``, ``weights``; ``allow_empty_classes`` is on, so a class without any
    patch stays a class).  Running it again resumes or returns the finished run.

    Returns:
        ``mindgap.training.TrainResult`` (``.best_model()`` is the Evidence CNN).
    """
    if not len(train_pool) or not len(val_pool):
        raise ValueError(f"The evidence pools are empty (train {len(train_pool)}, val {len(val_pool)} patches): the "
                         "conventional CNN classified no image correctly; train it longer before Guided Zoom.")
    pool_dir = write_pool_once(os.path.join(os.fspath(out_dir), POOL_DIR), {"train": train_pool, "val": val_pool},
                               class_names)
    # a class none of whose images was classified correctly has no patch, but stays a class of the Evidence CNN
    overrides.setdefault("allow_empty_classes", True)
    return train(model_name, pool_dir, os.path.join(os.fspath(out_dir), RUN_DIR), config=config, format="folders",
                 **overrides)
