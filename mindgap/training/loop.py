"""``mindgap.train``: the paper's recipe under ``tf.distribute``, with resume.

Outputs in ``out_dir``::

    config.json       the resolved config (+ model name, data folder, replicas)
    best.keras        lowest validation loss so far (atomic writes)
    history.csv       one row per epoch, localization columns included
    logs/             TensorBoard scalars and CAM snapshot images
    cam_snapshots/    epoch_001.png, … (fixed validation images)
    timing.json       wall and CPU seconds of each epoch's steps, validation and callbacks
    best.keras.json   its record: val_loss, epoch, SHA-256 (committed with it, as one)
    backup/           the state of the last two epochs (AtomicBackup), kept after the end
    done.json         written when all epochs ran
    run.lock          the lock of the one process writing the folder

Every file that can be half-written is written to a temporary file, fsynced and renamed (history.csv is appended
to and repaired on resume).

The same command again after an interruption (kill -9 included) continues from the last backed-up epoch (an
unreadable backup falls back to the one before, or to a clean restart, with a warning); after a finished run it
returns at once, and with a larger ``epochs`` it extends the run.  Any other change of a setting that changes the
result is refused with the list of differences (``run_folder.SAFE_TO_CHANGE``), and so is a second process writing
into the same folder while the first runs.
"""

import contextlib
import csv
import dataclasses
import errno
import functools
import json
import os
import shutil
import sys

import keras
import numpy as np
import tensorflow as tf

from mindgap.data import clips
from mindgap.data.check import decode_failure
from mindgap.data.layouts import LAYOUTS, dataset_options, detect_layout, load_dataset
from mindgap.data.pipeline import make_dataset, make_video_dataset
from mindgap import registry
from mindgap.models import build_model, load_model
from mindgap.engine.fit import build_before_fit
from mindgap.optimizers import Nadam2017
from mindgap.training import callbacks as mg_callbacks
from mindgap.training import run_folder
from mindgap.training.config import TrainConfig
from mindgap.training.multi_worker import prepare_for_multi_worker

BEST_MODEL = "best.keras"
HISTORY = "history.csv"
DONE = "done.json"
TIMING = "timing.json"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the message says where, and that the same command resumes."""


class WorkerLost(RuntimeError):
    """Under MultiWorkerMirroredStrategy a peer worker stopped; every worker must be relaunched."""


@dataclasses.dataclass
class TrainResult:
    """What a run left: the trained model (last epoch), where the best one is, and the per-epoch history."""

    model: keras.Model
    out_dir: str
    best_path: str
    history: dict

    def best_model(self):
        return load_model(self.best_path)


def _cluster():
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return tf_config.get("cluster", {}), tf_config.get("task", {})


def select_strategy(name="auto"):
    """The ``tf.distribute`` strategy for ``name``.

    ``auto``: MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several workers, MirroredStrategy when several
    GPUs are visible, else the default strategy.  Create it before any other TensorFlow op (MultiWorker needs that).
    """
    cluster, _ = _cluster()
    if name == "auto":
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        name = "multi_worker" if workers > 1 else "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"
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


def _truncate_history(path, first_epoch_to_drop):
    """Drop the rows of epochs that will run again, so a resumed log has no repeated epoch."""
    if not os.path.isfile(path):
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [row for row in body if _whole_row(row, header) and int(row[0]) < first_epoch_to_drop]
    with run_folder.atomic_path(path) as temporary:
        with open(temporary, "w", newline="") as handle:
            csv.writer(handle).writerows([header] + kept)


def _whole_row(row, header):
    """A row written in full (a kill can cut the last one), epoch first."""
    return len(row) == len(header) and row[0].strip().isdigit()


def read_history(path):
    """history.csv → {column: [values]}."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if None not in row.values() and None not in row]
    return {key: [float(row[key]) for row in rows] for key in (rows[0].keys() if rows else [])}


def spread(records, count):
    """``count`` records evenly spaced over the list (which is grouped by class), all if fewer."""
    if count >= len(records):
        return list(records)
    return [records[int(index)] for index in np.linspace(0, len(records) - 1, count).round()]


_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def train(model_name, data_dir, out_dir, *, config=None, **overrides):
    """Train ``model_name`` on the dataset at ``data_dir`` (any layout of ``mindgap.data.layouts``) into ``out_dir``.

    Args:
        model_name: a name from ``mindgap.list_models()``.
        data_dir: a Stanford 40 (or digits), class-folder or wsolevaluation folder; every image and box is checked
            before training starts.  A video set (the ``video`` layout) trains a CNN-LSTM (``Tiny-LSTM``) on its
            trimmed clips, every frame checked, without the CAM callbacks (localization, snapshots).
        out_dir: where the outputs go (see the module docstring).
        config: a :class:`TrainConfig` (default: the paper's recipe).
        **overrides: any ``TrainConfig`` field.

    Returns:
        :class:`TrainResult`.

    Raises:
        run_folder.RunFolderError: another process writes ``out_dir``, or it holds a run with other settings (the
            message lists them).
        run_folder.StorageError: a full disk or an unwritable place; the folder's previous good state is left intact.
    """
    registry.resolve(model_name)  # an unknown name fails here, before any data is read or a folder is made
    config = (config or TrainConfig()).replace(**overrides)
    out_dir = os.fspath(out_dir)
    lock_name = run_folder.LOCK_NAME if is_chief() else f"worker{_cluster()[1].get('index', 0)}.lock"
    with run_folder.RunLock(out_dir, lock_name):
        settings_were_recorded = os.path.isfile(os.path.join(out_dir, "config.json"))
        try:
            return _train_in_folder(model_name, data_dir, out_dir, config)
        except BaseException as error:
            if not settings_were_recorded and is_chief():
                _forget_untrained_settings(out_dir)
            if not isinstance(error, OSError) or isinstance(error, run_folder.StorageError) or \
                    error.errno not in _STORAGE_ERRNOS or not error.filename:
                raise
            raise run_folder.storage_error(error.filename, error) from None


def _forget_untrained_settings(out_dir):
    """A run that failed before its first epoch was saved leaves no settings behind, so a corrected rerun is not refused."""
    if os.path.isfile(os.path.join(out_dir, BEST_MODEL)) or mg_callbacks.AtomicBackup(os.path.join(out_dir, "backup")).states():
        return
    if os.path.isfile(os.path.join(out_dir, HISTORY)) and read_history(os.path.join(out_dir, HISTORY)):
        return
    run_folder.remove_files(out_dir, "config.json", HISTORY, TIMING)


def _check_settings(out_dir, current, backup):
    """Refuse a folder whose run has other settings; return the finished run if it is this one; else record ``current``.

    Safe to change: ``run_folder.SAFE_TO_CHANGE``, and ``epochs`` when the run did not go further (a finished run is
    extended from its last epoch's backup; the optimizer state and the epoch-driven learning rate and freeze carry on).
    """
    config_path = os.path.join(out_dir, "config.json")
    best_path = os.path.join(out_dir, BEST_MODEL)
    history_path = os.path.join(out_dir, HISTORY)
    stored = run_folder.read_json(config_path)
    finished = os.path.isfile(os.path.join(out_dir, DONE)) and os.path.isfile(best_path)
    states = backup.states()
    epochs = current["epochs"]
    if stored is None:
        if finished or states or os.path.isfile(best_path) or os.path.isfile(history_path):
            raise run_folder.RunFolderError(f"{out_dir} holds run outputs but no readable config.json, so its settings "
                                            "cannot be checked; pass another --out or empty the folder.")
    else:
        differences = run_folder.settings_differences(stored, current, dataclasses.asdict(TrainConfig()))
        if differences:
            raise run_folder.RunFolderError(run_folder.describe_differences(out_dir, differences))
        stored_epochs = int(stored.get("epochs", epochs))
        if finished:
            if epochs == stored_epochs:
                print(f"{out_dir} holds this finished run; returning its best model.")
                return TrainResult(load_model(best_path), out_dir, best_path, read_history(history_path))
            if epochs < stored_epochs:
                raise run_folder.RunFolderError(
                    f"{out_dir} holds a finished {stored_epochs}-epoch run, not a {epochs}-epoch one; "
                    f"pass --epochs {stored_epochs} (or more to extend it) or another --out.")
            if not states or states[0][0] != stored_epochs:
                raise run_folder.RunFolderError(
                    f"{out_dir} holds a finished {stored_epochs}-epoch run without the backup of its last epoch, "
                    f"so it cannot be extended to {epochs} epochs; pass another --out.")
            print(f"extending the finished {stored_epochs}-epoch run in {out_dir} to {epochs} epochs")
            os.remove(os.path.join(out_dir, DONE))
        elif states and states[0][0] > epochs:
            raise run_folder.RunFolderError(f"{out_dir} holds a run that already did {states[0][0]} epochs; "
                                            f"pass --epochs {max(stored_epochs, states[0][0])} or another --out.")
    run_folder.write_json(config_path, current)
    return None


def _prepare_outputs(out_dir, initial_epoch):
    """A resume keeps history rows of the epochs before ``initial_epoch``; a start from 0 clears the old outputs."""
    history_path = os.path.join(out_dir, HISTORY)
    if initial_epoch > 0:
        _truncate_history(history_path, initial_epoch)
        return
    earlier_attempt = os.path.isfile(history_path) or os.path.isfile(os.path.join(out_dir, BEST_MODEL + ".json"))
    run_folder.remove_files(out_dir, HISTORY, BEST_MODEL, BEST_MODEL + ".json", DONE)
    if earlier_attempt:  # its epochs are gone; so go their images and TensorBoard steps
        print(f"note: {out_dir} holds no usable backup of its earlier attempt; the run starts over from epoch 0.", file=sys.stderr)
        for name in ("logs", "cam_snapshots"):
            shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)


def compiled_model(model_name, num_classes, config, class_names=None):
    """``model_name`` built and compiled as ``train`` does: the config's weights, input size, penalty, Zhou width,
    precision and XLA flag; Nadam2017 built on every variable (backbone included, before any freeze)."""
    head_overrides = {name: getattr(config, name) for name in ("zhou_units", "fc_units") if getattr(config, name) is not None}
    if config.dropout is not None:
        head_overrides.update(dropout=config.dropout, dropout_retain=config.dropout_retain)
    with _dtype_policy(config.precision):
        model = build_model(model_name, num_classes, weights=config.weights,
                            input_shape=(config.image_size, config.image_size, 3), alpha=config.alpha,
                            reduction=config.reduction, class_names=class_names, **head_overrides)
    optimizer = Nadam2017(learning_rate=config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
                          epsilon=config.epsilon, schedule_decay=config.nadam_schedule_decay)
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=config.jit_compile)
    return build_before_fit(model)


@contextlib.contextmanager
def _dtype_policy(precision):
    """Build layers under ``precision`` (Keras' global dtype policy), then restore the policy."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _checked_data(model_name, data_dir, config):
    """(dataset, its summary, what its records hold): the layout ``data_dir`` holds, read and checked
    (``mindgap.data.layouts.load_dataset``: every image or frame and box), refused when ``model_name`` takes the other
    kind (images or clips: ``mindgap.registry``)."""
    takes = registry.resolve(model_name)[0].takes
    layout = config.format if config.format != "auto" else detect_layout(data_dir) if os.path.isdir(data_dir) else None
    holds = LAYOUTS[layout].holds if layout in LAYOUTS else "images"
    if holds == "clips" and takes != "clips":
        raise ValueError(f"{model_name} takes images (batch, H, W, 3) but {data_dir} is a video set (clips); train a "
                         "CNN-LSTM on it (mindgap train Tiny-LSTM), or pass an image dataset.")
    if takes == "clips" and holds != "clips":
        raise ValueError(f"{model_name} takes clips (a video set of mindgap.data.video: {clips.SETTINGS_FILE}, "
                         f"{clips.CLIPS_DIR}/, {clips.SPLITS_DIR}/) but {data_dir} is not one; pass a video set "
                         "(python -m mindgap.data.video OUT_DIR), or train an image model (e.g. Tiny-GAP5) on these images.")
    if holds == "clips" and (config.hide_and_seek or config.label_drawing != "majority"):
        raise ValueError("hide_and_seek and label_drawing are for images; train a video model without them.")
    dataset, summary = load_dataset(data_dir, require=("train", "val"), **dataset_options(config))
    return dataset, summary, holds


def _batches(dataset, config, holds):
    """``make(records, training=False, **changes)``: batches of the layout's kind (clips or images, Hide-and-Seek and
    label drawing on training images only), and the training and validation batches."""
    common = dict(num_classes=dataset.num_classes, image_size=config.image_size, batch_size=config.batch_size,
                  seed=config.seed, cache=config.cache)
    make = functools.partial(make_video_dataset, **common) if holds == "clips" else functools.partial(
        make_dataset, hide_and_seek=config.hide_and_seek, label_drawing=config.label_drawing, **common)
    return make, make(dataset.train, training=True), make(dataset.val)


def _cam_callbacks(dataset, config, out_dir, log_dir):
    """([localization on validation images], [CAM snapshots]): the CAM measures of image models (0 images: off)."""
    common = dict(num_classes=dataset.num_classes, image_size=config.image_size, batch_size=config.batch_size,
                  seed=config.seed, with_boxes=True)
    localization, snapshots = [], []
    if config.localization_images:
        records = spread(dataset.val, config.localization_images)
        localization.append(mg_callbacks.LocalizationMetrics.from_dataset(make_dataset(records, **common), len(records),
                                                                          threshold=config.cam_threshold))
    if config.snapshot_images:
        records = spread(dataset.val, config.snapshot_images)
        snapshots.append(mg_callbacks.CamSnapshots.from_dataset(
            make_dataset(records, **common), len(records), out_dir=os.path.join(out_dir, "cam_snapshots"),
            class_names=list(dataset.class_names), threshold=config.cam_threshold, log_dir=log_dir))
    return localization, snapshots


def _chief_callbacks(dataset, config, out_dir, initial_epoch, holds):
    """The callbacks only the chief runs: the best checkpoint, the CAM measures, the logs."""
    _prepare_outputs(out_dir, initial_epoch)
    best_path = os.path.join(out_dir, BEST_MODEL)
    best_checkpoint = mg_callbacks.AtomicBestCheckpoint(best_path)
    if best_checkpoint.best_epoch is not None and best_checkpoint.best_epoch > initial_epoch:
        print(f"note: {best_path} comes from epoch {best_checkpoint.best_epoch}, after the last backup (epoch "
              f"{initial_epoch}); it is kept (same settings) and replaced only by a lower val_loss.", file=sys.stderr)
    log_dir = os.path.join(out_dir, "logs") if config.tensorboard else None
    localization, snapshots = _cam_callbacks(dataset, config, out_dir, log_dir) if holds == "images" else ([], [])
    found = [*localization, best_checkpoint, *snapshots, keras.callbacks.CSVLogger(os.path.join(out_dir, HISTORY), append=True)]
    if config.verbose != 0:
        found.append(mg_callbacks.EpochSummary(config.epochs))
    if log_dir:
        found.append(keras.callbacks.TensorBoard(log_dir, write_graph=False))
    return found


def _train_in_folder(model_name, data_dir, out_dir, config):
    strategy = select_strategy(config.strategy)
    chief = is_chief()
    if chief:
        run_folder.remove_temporaries(out_dir, os.path.join(out_dir, "cam_snapshots"))
    dataset, data_summary, holds = _checked_data(model_name, data_dir, config)
    if config.weights is None and config.freeze_epochs > 0 and chief:
        print(f"warning: the backbone has no pretrained weights but stays frozen for the first {config.freeze_epochs} "
              "epochs (the paper's recipe assumes ImageNet weights); pass --weights or --freeze-epochs 0.", file=sys.stderr)
    backup = mg_callbacks.AtomicBackup(os.path.join(out_dir, "backup" if chief else
                                                    f"backup-worker{_cluster()[1].get('index', 0)}"))
    if chief:
        current = run_folder.fingerprint(model_name, config, dataset, data_dir, strategy.num_replicas_in_sync)
        current["data"] = data_summary  # what the check found and dropped (informative; the digest covers the records)
        finished = _check_settings(out_dir, current, backup)
        if finished is not None:
            return finished
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = compiled_model(model_name, dataset.num_classes, config, class_names=list(dataset.class_names))
    make, train_data, val_data = _batches(dataset, config, holds)
    prepare_for_multi_worker(model, strategy, train_data)
    with strategy.scope():
        initial_epoch = backup.restore(model)
    run_callbacks = [
        mg_callbacks.BackboneFreeze(config.freeze_epochs, freeze_batchnorm=config.freeze_batchnorm,
                                    unfreeze_optimizer=config.unfreeze_optimizer),
        mg_callbacks.step_decay_callback(config.learning_rate, config.lr_decay_factor, config.lr_decay_every),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.precise_bn_batches:  # first after the freeze: validation and every later callback see the recomputed statistics
        statistics_data = make(spread(dataset.train, config.precise_bn_batches * config.batch_size), training=True,
                               seed=config.seed + 1, cache=False)
        run_callbacks.insert(1, mg_callbacks.PreciseBatchNorm(statistics_data, config.precise_bn_batches))
    if chief:
        run_callbacks += _chief_callbacks(dataset, config, out_dir, initial_epoch, holds)
    run_callbacks.append(backup)  # last, so that a saved backup implies every other callback finished its epoch
    timing_path = os.path.join(out_dir, TIMING)
    earlier_timing = {epoch: parts for epoch, parts in (run_folder.read_json(timing_path) or {}).items()
                      if initial_epoch > 0 and int(epoch) <= initial_epoch}
    timer = mg_callbacks.PhaseTimes(timing_path if chief else None, earlier_timing)
    _fit(model, train_data, val_data, config, initial_epoch, timer.interleave(run_callbacks), timer, backup, out_dir,
         strategy, [*dataset.train, *dataset.val])
    history = read_history(os.path.join(out_dir, HISTORY)) if chief else {}
    if chief:
        run_folder.write_json(os.path.join(out_dir, DONE), {"epochs": config.epochs, "model_name": model_name})
    return TrainResult(model, out_dir, os.path.join(out_dir, BEST_MODEL), history)


def _fit(model, train_data, val_data, config, initial_epoch, run_callbacks, timer, backup, out_dir, strategy, records):
    """``model.fit``; Ctrl-C, a file that no longer decodes (named among ``records``) and a lost peer worker end it
    with a message saying what happened and how to go on."""
    # Automatic verbosity: Keras' live bar on a terminal; in a log only EpochSummary's one line per epoch.
    fit_verbose = (1 if sys.stdout.isatty() else 0) if config.verbose < 0 else config.verbose
    try:
        model.fit(train_data, validation_data=val_data, epochs=config.epochs, initial_epoch=initial_epoch,
                  callbacks=run_callbacks, verbose=fit_verbose, shuffle=False)  # the dataset shuffles itself, seeded
    except KeyboardInterrupt:
        epoch = initial_epoch if timer.current_epoch is None else timer.current_epoch
        resumes_at = backup.states()[0][0] + 1 if backup.states() else 1
        raise TrainingInterrupted(f"interrupted in epoch {epoch + 1} of {out_dir}; run the same command to resume "
                                  f"(it continues with epoch {resumes_at}).") from None
    except tf.errors.OpError as error:
        if isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError)):
            # a decode error inside tf.data names no file: find it among the frames or images read
            problem = decode_failure([path for record in records for path in getattr(record, "frames", (record.path,))])
            if problem is not None:
                raise problem from None
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise WorkerLost(f"a peer worker stopped during epoch {(timer.current_epoch or initial_epoch) + 1} "
                         f"({type(error).__name__}); relaunch every worker with the same command to resume from the last "
                         "backed-up epoch.") from None
