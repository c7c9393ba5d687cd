"""``mindgap.train``: the paper's recipe under ``tf.distribute``, with resume.

Outputs in ``out_dir``::

    config.json       the resolved config (+ model name, data folder, replicas)
    best.keras        lowest validation loss so far (atomic writes)
    history.csv       one row per epoch, localization columns included
    logs/             TensorBoard scalars and CAM snapshot images
    cam_snapshots/    epoch_001.png, … (fixed validation images)
    backup/           BackupAndRestore state while a run is unfinished
    done.json         written when all epochs ran

Running the same command again after an interruption (kill -9 included)
continues from the last finished epoch; after a finished run it returns at once.
"""

import csv
import dataclasses
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from mindgap.data.pipeline import make_dataset
from mindgap.data.layouts import dataset_options, load_dataset
from mindgap.models import build_model
from mindgap.optimizers import Nadam2017
from mindgap.training import callbacks as mg_callbacks
from mindgap.training.config import TrainConfig
from mindgap.training.multi_worker import prepare_for_multi_worker

BEST_MODEL = "best.keras"
HISTORY = "history.csv"
DONE = "done.json"


@dataclasses.dataclass
class TrainResult:
    """What a run left: the trained model (last epoch), where the best one is, and the per-epoch history."""

    model: keras.Model
    out_dir: str
    best_path: str
    history: dict

    def best_model(self):
        return keras.saving.load_model(self.best_path, compile=False)


def _cluster():
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return tf_config.get("cluster", {}), tf_config.get("task", {})


def select_strategy(name="auto"):
    """The ``tf.distribute`` strategy for ``name``.

    ``auto``: MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several
    workers, MirroredStrategy when several GPUs are visible, else the default
    strategy.  Create it before any other TensorFlow op (MultiWorker needs that).
    """
    cluster, _ = _cluster()
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if name == "auto":
        if workers > 1:
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"Unknown strategy {name!r}; use auto, default, mirrored or multi_worker.")


def is_chief():
    """True unless ``TF_CONFIG`` makes this process a non-chief worker."""
    cluster, task = _cluster()
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def _backup_epoch(backup_dir):
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path) as handle:
        return int(json.load(handle).get("epoch", 0))


def _truncate_history(path, first_epoch_to_drop):
    """Drop the rows of epochs that will run again, so a resumed log has no repeated epoch."""
    if not os.path.isfile(path):
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row and int(row[0]) < first_epoch_to_drop]
    temporary = path + ".tmp"
    with open(temporary, "w", newline="") as handle:
        csv.writer(handle).writerows([header] + kept)
    os.replace(temporary, path)


def read_history(path):
    """history.csv → {column: [values]}."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in (rows[0].keys() if rows else [])}


def spread(records, count):
    """``count`` records evenly spaced over the list (which is grouped by class), all if fewer."""
    if count >= len(records):
        return list(records)
    return [records[int(index)] for index in np.linspace(0, len(records) - 1, count).round()]


def train(model_name, data_dir, out_dir, *, config=None, **overrides):
    """Train ``model_name`` on the dataset at ``data_dir`` (any layout of ``mindgap.data.layouts``) into ``out_dir``.

    Args:
        model_name: a name from ``mindgap.list_models()``.
        data_dir: a Stanford 40 (or digits), class-folder or wsolevaluation
            folder; every image and box is checked before training starts.
        out_dir: where the outputs go (see the module docstring).
        config: a :class:`TrainConfig` (default: the paper's recipe).
        **overrides: any ``TrainConfig`` field.

    Returns:
        :class:`TrainResult`.
    """
    config = (config or TrainConfig()).replace(**overrides)
    strategy = select_strategy(config.strategy)
    chief = is_chief()
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    best_path = os.path.join(out_dir, BEST_MODEL)
    history_path = os.path.join(out_dir, HISTORY)
    if os.path.isfile(os.path.join(out_dir, DONE)) and os.path.isfile(best_path):
        print(f"{out_dir} holds a finished run; returning its best model (delete {DONE} to train again).")
        return TrainResult(keras.saving.load_model(best_path, compile=False), out_dir, best_path, read_history(history_path))

    dataset, data_summary = load_dataset(data_dir, require=("train", "val"), **dataset_options(config))  # every image and box checked
    if not dataset.val:
        raise ValueError(f"{data_dir} gives no validation image with test_per_class={config.test_per_class}; lower test_per_class.")
    if config.weights is None and config.freeze_epochs > 0 and chief:
        print(f"warning: the backbone has no pretrained weights but stays frozen for the first {config.freeze_epochs} "
              "epochs (the paper's recipe assumes ImageNet weights); pass --weights or --freeze-epochs 0.", file=sys.stderr)
    if chief:
        config.to_json(os.path.join(out_dir, "config.json"), model_name=model_name, data_dir=os.path.abspath(data_dir),
                       num_replicas=strategy.num_replicas_in_sync, class_names=list(dataset.class_names), data=data_summary)
    keras.utils.set_random_seed(config.seed)

    with strategy.scope():
        model = build_model(model_name, dataset.num_classes, weights=config.weights,
                            input_shape=(config.image_size, config.image_size, 3), alpha=config.alpha,
                            reduction=config.reduction, class_names=list(dataset.class_names))
        optimizer = Nadam2017(learning_rate=config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
                              epsilon=config.epsilon, schedule_decay=config.nadam_schedule_decay)
        optimizer.build(model.trainable_variables)  # every variable, backbone included, before the freeze
        model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])

    common = dict(num_classes=dataset.num_classes, image_size=config.image_size, batch_size=config.batch_size, seed=config.seed)
    train_data = make_dataset(dataset.train, training=True, hide_and_seek=config.hide_and_seek, cache=config.cache, **common)
    val_data = make_dataset(dataset.val, cache=config.cache, **common)

    task = _cluster()[1]
    backup_dir = os.path.join(out_dir, "backup" if chief else f"backup-worker{task.get('index', 0)}")
    run_callbacks = [
        mg_callbacks.BackboneFreeze(config.freeze_epochs, freeze_batchnorm=config.freeze_batchnorm),
        mg_callbacks.step_decay_callback(config.learning_rate, config.lr_decay_factor, config.lr_decay_every),
        keras.callbacks.TerminateOnNaN(),
    ]
    if chief:
        _truncate_history(history_path, _backup_epoch(backup_dir))
        localization_records = spread(dataset.val, config.localization_images)
        snapshot_records = spread(dataset.val, config.snapshot_images)
        log_dir = os.path.join(out_dir, "logs") if config.tensorboard else None
        run_callbacks += [
            mg_callbacks.LocalizationMetrics.from_dataset(
                make_dataset(localization_records, with_boxes=True, **common), len(localization_records), threshold=config.cam_threshold),
            mg_callbacks.AtomicBestCheckpoint(best_path),
            mg_callbacks.CamSnapshots.from_dataset(
                make_dataset(snapshot_records, with_boxes=True, **common), len(snapshot_records), out_dir=os.path.join(out_dir, "cam_snapshots"),
                class_names=list(dataset.class_names), threshold=config.cam_threshold, log_dir=log_dir),
            keras.callbacks.CSVLogger(history_path, append=True),
            mg_callbacks.EpochSummary(config.epochs),
        ]
        if log_dir:
            run_callbacks.append(keras.callbacks.TensorBoard(log_dir, write_graph=False))
    # Last, so that a saved backup implies every other callback finished its epoch.
    run_callbacks.append(keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True))

    prepare_for_multi_worker(model, strategy, train_data)
    model.fit(train_data, validation_data=val_data, epochs=config.epochs, callbacks=run_callbacks,
              verbose=config.verbose, shuffle=False)  # the dataset shuffles itself, seeded
    history = read_history(history_path) if chief else {}
    if chief:
        with open(os.path.join(out_dir, DONE), "w") as handle:
            json.dump({"epochs": config.epochs, "model_name": model_name}, handle)
    return TrainResult(model, out_dir, best_path, history)
