"""The callback suite; each works on its own in any ``fit``.

* :func:`paper_learning_rate` + :func:`step_decay_callback`: ×0.94 every second epoch.
* :class:`BackboneFreeze`: the backbone frozen for the first epochs, then trained.
* :class:`PreciseBatchNorm`: population statistics for the training BatchNorm layers before each validation.
* :class:`LocalizationMetrics`: CAM centre-of-mass accuracy and box IoU > 0.5
  on a fixed validation subset, added to the epoch's logs.
* :class:`CamSnapshots`: one PNG per epoch (and TensorBoard images) of fixed images.
* :class:`AtomicBestCheckpoint`: the lowest-``val_loss`` model as ``best.keras``,
  committed with its record as one, so a crash never leaves half a file or a wrong score.
* :class:`AtomicBackup`: the training state after every epoch, crash-safe, with a fallback.
* :class:`EpochSummary`: one line per epoch with the localization figures.
* :class:`PhaseTimes`: wall and CPU seconds of each epoch's training steps, validation and every callback.
"""

import os
import re
import sys
import time
import weakref

import keras
import numpy as np

from mindgap import plots
from mindgap.cam import cam_model, upsample_map
from mindgap.data.pipeline import valid_boxes
from mindgap.engine.cache import per_model
from mindgap.evaluation import batch_measures
from mindgap.metrics import best_threshold, cam_to_box
from mindgap.models import model_info
from mindgap.training import run_folder


def paper_learning_rate(epoch, initial=0.002, factor=0.94, every=2):
    """Learning rate of epoch ``epoch`` (0-based): ``initial * factor ** (epoch // every)`` (Szegedy et al. 2016)."""
    return float(initial * factor ** (epoch // every))


def step_decay_callback(initial=0.002, factor=0.94, every=2):
    """A ``LearningRateScheduler`` for :func:`paper_learning_rate`; it depends on the epoch only, so resuming is exact."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, _: paper_learning_rate(epoch, initial, factor, every))


UNFREEZE_OPTIMIZER_MODES = ("fresh", "per_variable")


class BackboneFreeze(keras.callbacks.Callback):
    """Keep the layer ``layer_name`` frozen for the first ``freeze_epochs`` epochs, trainable after.

    The optimizer must have been built on all variables before ``fit`` (its state covers the backbone from the
    start); the train function is rebuilt at the switch, inside the same ``fit``.  A resume works too: the state
    follows from the epoch number, and the optimizer is reset only at the switch epoch itself.

    What the optimizer does at the switch (``unfreeze_optimizer``):

    * ``"fresh"`` (default): its whole state is reset, as a Keras 2017 user's ``model.compile(optimizer=Nadam())``
      after unfreezing did (the Keras fine-tuning recipe); the head's moments start again too.
    * ``"per_variable"``: nothing is reset; the backbone's moments start from zero and, with
      :class:`mindgap.optimizers.Nadam2017`, its bias corrections count from its own first update.

    With ``freeze_batchnorm`` the backbone's BatchNormalization layers stay in inference mode after the switch, as
    Keras advises for fine-tuning.
    """

    def __init__(self, freeze_epochs=10, layer_name="backbone", freeze_batchnorm=False, unfreeze_optimizer="fresh"):
        super().__init__()
        if unfreeze_optimizer not in UNFREEZE_OPTIMIZER_MODES:
            raise ValueError(f"Unknown unfreeze_optimizer {unfreeze_optimizer!r}; use one of {UNFREEZE_OPTIMIZER_MODES}.")
        self.freeze_epochs = int(freeze_epochs)
        self.layer_name = layer_name
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.unfreeze_optimizer = unfreeze_optimizer

    def on_epoch_begin(self, epoch, logs=None):
        backbone = self.model.get_layer(self.layer_name)
        trainable = epoch >= self.freeze_epochs
        if backbone.trainable != trainable:
            backbone.trainable = trainable
            if trainable and self.freeze_batchnorm:
                for layer in getattr(backbone, "layer", backbone).layers:  # a CNN-LSTM's backbone is in a TimeDistributed
                    if isinstance(layer, keras.layers.BatchNormalization):
                        layer.trainable = False
            self.model.make_train_function(force=True)
        if epoch == self.freeze_epochs > 0 and self.unfreeze_optimizer == "fresh":
            optimizer = self.model.optimizer
            if not hasattr(optimizer, "reset_state"):
                raise ValueError(f"unfreeze_optimizer='fresh' needs an optimizer with reset_state() (mindgap.optimizers.Nadam2017), "
                                 f"got {type(optimizer).__name__}; use unfreeze_optimizer='per_variable'.")
            optimizer.reset_state()


def training_batchnorm_layers(model):
    """The BatchNormalization layers of ``model`` (nested models included) that run in training mode in ``fit``."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def recompute_batchnorm_statistics(model, batches):
    """Replace the moving statistics of ``model``'s training BatchNorm layers by averages over ``batches`` (PreciseBN).

    The weights stay fixed; the model runs forward in training mode, as in a training step, and each layer's moving
    mean and variance become the mean of its batch means and batch variances (the momentum of batch k is k / (k + 1),
    so no batch weighs more than another).  Wu & Johnson, "Rethinking 'Batch' in BatchNorm" (2021), §3.1; the batch
    variance of Keras' BN is the biased one and the spread of the batch means is left out, as in their implementation.

    Args:
        model: a Keras model.
        batches: an iterable of input batches (or ``(inputs, targets, ...)`` tuples).

    Returns:
        The number of batches used (0: the model has no BatchNorm layer in training mode).
    """
    import tensorflow as tf

    layers = training_batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    # One compiled forward pass per model and set of training BN layers; the momentum is a variable read
    # inside it, so the k / (k + 1) schedule needs no retracing (run eagerly, the pass cost twice as much).
    model_reference = weakref.ref(model)  # the cache must not keep the model alive
    momentum, forward = per_model(model, ("precise bn", *(id(layer) for layer in layers)), lambda: (
        tf.Variable(0.0, trainable=False, dtype=tf.float32), tf.function(lambda inputs: model_reference()(inputs, training=True))))
    count = 0
    try:
        for layer in layers:
            layer.momentum = momentum
        for batch in batches:
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            momentum.assign(count / (count + 1.0))
            forward(inputs)
            count += 1
    finally:
        for layer, value in zip(layers, momenta):
            layer.momentum = value
    return count


class PreciseBatchNorm(keras.callbacks.Callback):
    """Population BatchNorm statistics, recomputed at fixed weights before each epoch's validation.

    While a BatchNormalization layer trains, its moving mean and variance are an exponential average over the last
    batches (momentum 0.9 in Tiny: about ten batches; 0.99 in InceptionV3), taken while the weights under it move, and
    they are what validation, the best checkpoint and every later prediction use.  Right after the unfreeze they lag
    badly: a quick-mode Tiny-GAP5 two epochs into fine-tuning classified its validation images at 59.8 % with them and
    at 87.8 % with statistics recomputed over the training images at the same weights.  This callback does that
    recomputation (:func:`recompute_batchnorm_statistics`) over ``batches`` training batches, only for layers in
    training mode (a frozen backbone's statistics are left alone).  Training itself is unchanged: its batches
    normalise with their own statistics either way.

    Args:
        dataset: batches of the training distribution (the training pipeline).
        batches: how many to average; 0 disables the callback.
    """

    def __init__(self, dataset, batches=50):
        super().__init__()
        self.dataset = dataset
        self.batches = int(batches)
        self._epoch_done = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_done = False

    def _recompute(self):
        if self._epoch_done or self.batches <= 0:
            return
        self._epoch_done = True
        recompute_batchnorm_statistics(self.model, self.dataset.take(self.batches))

    def on_test_begin(self, logs=None):  # inside fit: after the epoch's last step, before its validation
        self._recompute()

    def on_epoch_end(self, epoch, logs=None):  # a fit without validation
        self._recompute()


class _FixedImages(keras.callbacks.Callback):
    """Base: a fixed set of validation images, labels and padded boxes."""

    def __init__(self, images, labels, boxes):
        super().__init__()
        self.images = np.asarray(images, np.float32)
        self.labels = np.asarray(labels)
        self.boxes = np.asarray(boxes, np.float32)
        if not len(self.images) == len(self.labels) == len(self.boxes):
            raise ValueError(f"{len(self.images)} images, {len(self.labels)} labels and {len(self.boxes)} box sets; pass one of each per image.")

    @classmethod
    def from_dataset(cls, dataset, count, **kwargs):
        """Take the first ``count`` images of a ``make_dataset(..., with_boxes=True)`` dataset."""
        images, labels, boxes = [], [], []
        for batch_images, batch_labels, batch_boxes in dataset:
            images.append(np.asarray(batch_images))
            labels.append(np.asarray(batch_labels).argmax(axis=-1))
            boxes.append(np.asarray(batch_boxes))
            if sum(len(part) for part in images) >= count:
                break
        return cls(np.concatenate(images)[:count], np.concatenate(labels)[:count], np.concatenate(boxes)[:count], **kwargs)

    def _predict(self):
        # One CAM model per trained model: it shares the layers, so it sees every update.
        if getattr(self, "_explained", None) is not self.model:
            self._explainer, self._explained = cam_model(self.model), self.model
        return self._explainer.predict(self.images, verbose=0, batch_size=32)


MAX_BOX_ACC_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


class LocalizationMetrics(_FixedImages):
    """Adds ``val_loc_gt``, ``val_loc_pred`` and ``val_box_iou50`` to every epoch's logs.

    * ``val_loc_gt``: the true class's CAM centre of mass lies in a ground-truth box (paper Table 4, "ground truth");
    * ``val_loc_pred``: the prediction is right and its CAM's centre of mass
      lies in a box (Table 4, "prediction only");
    * ``val_box_iou50``: the paper's box of the true class's CAM at
      ``threshold`` × max has IoU > 0.5 with a ground-truth box;
    * ``val_max_box_acc`` and ``val_max_box_acc_threshold``: the same box
      accuracy at the one threshold of ``thresholds`` that is best on these
      images (MaxBoxAcc, Choe et al. 2020, with the paper's box and its
      Figure 4 rule IoU > 0.5).  A fixed 20 % suits CAMs of large objects; for
      a small object on coarse CAM cells its box is too large and
      ``val_box_iou50`` stays at 0 while the best threshold finds the object.

    Images without a box are left out of the three figures; when no image
    has one, the callback says once that it skips them and adds nothing.

    Args:
        images, labels, boxes: the fixed subset (preprocessed images,
            integer labels, padded pixel boxes of the input image).
        threshold: CAM threshold of the box, a fraction of the max (0.2).
        thresholds: the grid of ``val_max_box_acc`` (default 0.05, 0.10, … 0.95).
        prefix: prefix of the log keys.
    """

    def __init__(self, images, labels, boxes, threshold=0.2, prefix="val_", thresholds=MAX_BOX_ACC_THRESHOLDS):
        super().__init__(images, labels, boxes)
        self.threshold = float(threshold)
        self.thresholds = [float(value) for value in thresholds]
        self.prefix = prefix

    def compute(self):
        probs, cams = self._predict()
        image_size = self.images.shape[1]
        measures = batch_measures(probs, cams, self.labels, self.boxes, image_size, [self.threshold, *self.thresholds])
        if "com_true" not in measures:  # no image has a box
            if not getattr(self, "_said_skipped", False):
                print("localization measures skipped: no validation image has a ground-truth box", flush=True)
                self._said_skipped = True
            return {}
        best = best_threshold(measures["iou_true"][:, 1:] > 0.5, self.thresholds)
        return {
            f"{self.prefix}loc_gt": float(measures["com_true"].mean()),
            f"{self.prefix}loc_pred": float((measures["com_pred"] & measures["correct_boxed"]).mean()),
            f"{self.prefix}box_iou50": float((measures["iou_true"][:, 0] > 0.5).mean()),
            f"{self.prefix}max_box_acc": best["value"],
            f"{self.prefix}max_box_acc_threshold": best["threshold"],
        }

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.compute())


class CamSnapshots(_FixedImages):
    """Every epoch, one PNG of fixed images: the image with the true box and the CAM's box, the true class's CAM and
    the predicted class's CAM; the same panels go to TensorBoard as images when ``log_dir`` is given.

    Args:
        images, labels, boxes: the fixed images (preprocessed), labels, padded boxes.
        out_dir: folder of ``epoch_001.png`` …
        class_names: names for the captions (default: the model's).
        threshold: CAM threshold of the drawn box (fraction of the max).
        log_dir: TensorBoard folder, or None.
    """

    def __init__(self, images, labels, boxes, out_dir, class_names=None, threshold=0.2, log_dir=None):
        super().__init__(images, labels, boxes)
        self.out_dir = out_dir
        self.class_names = class_names
        self.threshold = float(threshold)
        self.log_dir = log_dir
        self._writer = None

    def panels(self):
        probs, cams = self._predict()
        names = self.class_names or model_info(self.model).class_names
        rows = []
        for image, label, boxes, prob, cam in zip(self.images, self.labels, self.boxes, probs, cams):
            shown = plots.display_image(image)
            predicted = int(prob.argmax())
            true_cam = plots.overlay_cam(shown, cam[..., label])
            predicted_cam = plots.overlay_cam(shown, cam[..., predicted])
            upsampled = upsample_map(cam[..., predicted], shown.shape[:2])
            boxed = plots.draw_box(shown, cam_to_box(upsampled, self.threshold), plots.CAM_BOX_COLOUR)
            for box in valid_boxes(boxes):
                boxed = plots.draw_box(boxed, box, plots.TRUE_BOX_COLOUR)
            rows.append([(boxed, f"true {names[label]} / pred {names[predicted]} {prob[predicted]:.2f}"),
                         (true_cam, f"CAM {names[label]} (true)"), (predicted_cam, f"CAM {names[predicted]} (pred)")])
        return rows

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.out_dir, exist_ok=True)
        rows = self.panels()
        with run_folder.atomic_path(os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}.png")) as temporary:
            plots.plot_snapshot_rows(rows, temporary, title=f"epoch {epoch + 1}")
        if self.log_dir:
            import tensorflow as tf

            if self._writer is None:
                self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "cam_snapshots"))
            with self._writer.as_default():
                stacked = np.stack([np.concatenate([panel for panel, _ in row], axis=1) for row in rows])
                tf.summary.image("cam_snapshots", stacked, step=epoch + 1, max_outputs=len(rows))
            self._writer.flush()


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Save the model with the lowest ``monitor`` as ``filepath`` (a ``.keras`` file), crash-safe.

    The model and its record ``filepath + ".json"`` (best value, epoch, monitor, SHA-256) are committed as one: the
    model goes to a hidden pending file (fsynced), the record is written atomically (the commit point), then the
    pending file is renamed over ``filepath``.  A restart finishes an interrupted commit or drops an uncommitted
    one; a ``filepath`` its record does not describe is replaced by the next epoch's model (with a warning), so a
    worse model never passes for the best.  A full disk raises ``StorageError`` and leaves the previous best intact.
    """

    def __init__(self, filepath, monitor="val_loss", print_fn=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.state_path = self.filepath + ".json"
        folder, name = os.path.split(self.filepath)
        self.pending_path = os.path.join(folder, f".{name}.pending.keras")
        self.print_fn = print_fn or (lambda line: print(line, file=sys.stderr, flush=True))
        self.best = np.inf
        self.best_epoch = None
        self._recover()

    def _recover(self):
        state = run_folder.read_json(self.state_path)
        digest = (state or {}).get("sha256")
        if digest and os.path.isfile(self.pending_path) and run_folder.file_sha256(self.pending_path) == digest:
            os.replace(self.pending_path, self.filepath)  # the record was committed: finish the rename
            run_folder.fsync_folder(os.path.dirname(self.filepath) or ".")
        if os.path.isfile(self.pending_path):
            os.remove(self.pending_path)  # written, never committed
        if not os.path.isfile(self.filepath):
            return
        if state is not None and "best" in state and (not digest or run_folder.file_sha256(self.filepath) == digest):
            self.best = float(state["best"])
            self.best_epoch = state.get("epoch")
            return
        self.print_fn(f"warning: {self.filepath} has no matching record in {self.state_path}; "
                      "its score is unknown, so the next epoch's model replaces it.")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or value >= self.best:
            return
        folder = os.path.dirname(self.filepath) or "."
        run_folder.require_free_space(self.filepath, state_bytes(self.model))
        try:
            self.model.save(self.pending_path)
            with open(self.pending_path, "rb+") as handle:
                os.fsync(handle.fileno())
            run_folder.write_json(self.state_path, {"best": float(value), "epoch": epoch + 1, "monitor": self.monitor,
                                                    "sha256": run_folder.file_sha256(self.pending_path)})
        except BaseException as error:
            if os.path.isfile(self.pending_path):
                os.remove(self.pending_path)
            if isinstance(error, OSError) and not isinstance(error, run_folder.StorageError):
                raise run_folder.storage_error(self.filepath, error) from None
            raise
        os.replace(self.pending_path, self.filepath)
        run_folder.fsync_folder(folder)
        self.best, self.best_epoch = float(value), epoch + 1


def state_bytes(model):
    """Bytes needed to save ``model``'s weights and optimizer state, with a margin (for free-space checks)."""
    seen, total = set(), 0
    optimizer = getattr(model, "optimizer", None)
    for variable in list(model.variables) + list(getattr(optimizer, "variables", None) or []):
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        total += int(np.prod(variable.shape)) * np.dtype(keras.backend.standardize_dtype(variable.dtype)).itemsize
    return int(total * 1.1) + 1024 * len(seen) + (1 << 20)


class AtomicBackup(keras.callbacks.Callback):
    """Back up the training state (weights and optimizer) after every epoch; :meth:`restore` resumes from it.

    Each state is ``backup_dir/epoch-000005.weights.h5``, written to a temporary file, fsynced and renamed (always
    whole); ``training_metadata.json`` (written the same way) records the newest and its SHA-256.  The two newest
    are kept, so an unreadable newest state falls back to the one before; with none readable the run restarts from
    epoch 0 with a warning.  Free space is checked before each write (h5py can crash the process on a full disk).
    The backup stays after the run, so a finished run can be extended.

    Replaces ``keras.callbacks.BackupAndRestore``: Keras 3.15's writes ``latest.weights.h5`` in place with a ``.bkp``
    copy only from the second epoch on (a crash in the first write leaves no loadable file) and reads its metadata
    unguarded.  Its files are still read when resuming an older run.
    """

    PATTERN = re.compile(r"^epoch-(\d+)\.weights\.h5$")
    METADATA = "training_metadata.json"

    def __init__(self, backup_dir, keep=2, print_fn=None):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.keep = max(1, int(keep))
        self.metadata_path = os.path.join(self.backup_dir, self.METADATA)
        self.print_fn = print_fn or (lambda line: print(line, file=sys.stderr, flush=True))

    def states(self):
        """``[(epoch, path)]`` of the states on disk, newest first (older Keras ``BackupAndRestore`` files included)."""
        found = []
        if os.path.isdir(self.backup_dir):
            for name in os.listdir(self.backup_dir):
                match = self.PATTERN.match(name)
                if match:
                    found.append((int(match.group(1)), os.path.join(self.backup_dir, name)))
            for weights, metadata in (("latest.weights.h5", self.METADATA), ("latest.weights.h5.bkp", self.METADATA + ".bkp")):
                record = run_folder.read_json(os.path.join(self.backup_dir, metadata)) or {}
                path = os.path.join(self.backup_dir, weights)
                if os.path.isfile(path) and isinstance(record.get("epoch"), int) and "weights" not in record:
                    found.append((record["epoch"], path))
        return sorted(found, key=lambda item: (-item[0], item[1]))

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1)

    def save(self, epoch):
        os.makedirs(self.backup_dir, exist_ok=True)
        run_folder.remove_temporaries(self.backup_dir)
        states = self.states()
        for _, path in states[self.keep - 1:]:  # room for the new state, keeping keep - 1 older ones
            os.remove(path)
        newest = os.path.getsize(states[0][1]) if states else 0
        path = os.path.join(self.backup_dir, f"epoch-{epoch:06d}.weights.h5")
        with run_folder.atomic_path(path, needed=max(state_bytes(self.model), int(newest * 1.1) + (1 << 20))) as temporary:
            self.model.save_weights(temporary)
        run_folder.write_json(self.metadata_path, {"epoch": epoch, "batch": 0, "weights": os.path.basename(path),
                                                   "sha256": run_folder.file_sha256(path)})
        run_folder.remove_files(self.backup_dir, "latest.weights.h5", "latest.weights.h5.bkp",
                                self.METADATA + ".bkp")  # Keras BackupAndRestore's

    def restore(self, model=None):
        """Load the newest readable state into ``model`` (built, optimizer built); return its epoch, 0 for none.
        Unreadable states are reported, removed and skipped; a failed load leaves the model as it was."""
        model = model or self.model
        run_folder.remove_temporaries(self.backup_dir)
        states = self.states()
        if not states:
            return 0
        record = run_folder.read_json(self.metadata_path) or {}
        variables = list({id(variable): variable for variable in
                          list(model.variables) + list(getattr(model.optimizer, "variables", None) or [])}.values())
        before = [keras.ops.convert_to_numpy(variable) for variable in variables]
        for epoch, path in states:
            problem = None
            if record.get("weights") == os.path.basename(path) and record.get("sha256") not in (None, run_folder.file_sha256(path)):
                problem = f"does not match its checksum in {self.METADATA}"
            else:
                try:
                    model.load_weights(path)
                except Exception as error:  # h5py and Keras raise many types for a damaged file
                    problem = f"is unreadable ({type(error).__name__})"
            if problem is None:
                return epoch
            for variable, value in zip(variables, before):
                variable.assign(value)
            self.print_fn(f"warning: the backup of epoch {epoch} ({path}) {problem}; it is removed and an older one is tried.")
            os.remove(path)
        self.print_fn(f"warning: no readable backup left in {self.backup_dir}; the run restarts from epoch 0.")
        run_folder.remove_files(self.backup_dir, self.METADATA, self.METADATA + ".bkp")
        return 0


class EpochSummary(keras.callbacks.Callback):
    """One line per epoch: losses, accuracies, the localization figures, the learning rate and the freeze state."""

    def __init__(self, total_epochs, print_fn=None):
        super().__init__()
        self.total_epochs = total_epochs
        self.print_fn = print_fn or (lambda line: print(line, flush=True))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.total_epochs}"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "val_loc_gt", "val_loc_pred", "val_box_iou50",
                    "val_max_box_acc"):
            if key in logs:
                parts.append(f"{key} {logs[key]:.4f}")
        parts.append(f"lr {float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)):.6g}")
        try:
            parts.append("backbone " + ("trained" if self.model.get_layer("backbone").trainable else "frozen"))
        except ValueError:
            pass
        # With a live progress bar (verbose=1) the bar's line is still open at this point.
        newline = "\n" if (self.params or {}).get("verbose") == 1 else ""
        self.print_fn(newline + " | ".join(parts))


class _PhaseMark(keras.callbacks.Callback):
    """A clock reading at each epoch-level hook, placed between two callbacks of the list."""

    def __init__(self, timer, position):
        super().__init__()
        self.timer, self.position = timer, position

    def on_epoch_begin(self, epoch, logs=None):
        self.timer._read("epoch_begin", self.position, epoch)

    def on_test_begin(self, logs=None):
        self.timer._read("test_begin", self.position)

    def on_test_end(self, logs=None):
        self.timer._read("test_end", self.position)

    def on_epoch_end(self, epoch, logs=None):
        self.timer._read("epoch_end", self.position)


class PhaseTimes:
    """Where each epoch's time goes: training steps, validation, and each callback, in wall and CPU seconds.

    ``callbacks = timer.interleave([...])`` puts a clock reading before, between and after the callbacks; Keras calls
    a list's callbacks in order, so the time between two readings at one hook is the callback's between them.
    Training steps run from the last reading at ``on_epoch_begin`` to the first at ``on_test_begin`` (validation
    begins), validation from the last reading there to the first at ``on_test_end``.  CPU seconds are the process's
    (every thread), so CPU / wall above 1 means more than one core was busy.

    Args:
        path: a JSON file rewritten after every epoch (``{epoch: {part: [wall, cpu]}}``), or None.
        earlier: epochs timed by an earlier attempt of the run, kept in the file.
    """

    def __init__(self, path=None, earlier=None):
        self.path = path
        self.epochs = {int(epoch): parts for epoch, parts in (earlier or {}).items()}
        self.current_epoch = None
        self._names = []
        self._readings = {}

    def interleave(self, callbacks):
        self._names = []
        for callback in callbacks:  # a second callback of one class is "Name#2"
            name = type(callback).__name__
            self._names.append(name if name not in self._names else f"{name}#{sum(n.split('#')[0] == name for n in self._names) + 1}")
        timed = [_PhaseMark(self, 0)]
        for position, callback in enumerate(callbacks, start=1):
            timed += [callback, _PhaseMark(self, position)]
        return timed

    def _read(self, hook, position, epoch=None):
        if epoch is not None:
            self.current_epoch = epoch
        self._readings[hook, position] = (time.perf_counter(), time.process_time())
        if hook == "epoch_end" and position == len(self._names):
            self._close_epoch()

    def _between(self, start, end):
        if start not in self._readings or end not in self._readings:
            return None
        (wall_start, cpu_start), (wall_end, cpu_end) = self._readings[start], self._readings[end]
        return [round(wall_end - wall_start, 4), round(cpu_end - cpu_start, 4)]

    def _close_epoch(self):
        last = len(self._names)
        validated = ("test_begin", 0) in self._readings
        parts = {"training_steps": self._between(("epoch_begin", last), ("test_begin", 0) if validated else ("epoch_end", 0))}
        if validated:
            parts["validation"] = self._between(("test_begin", last), ("test_end", 0))
        for position, name in enumerate(self._names, start=1):
            spent = [self._between((hook, position - 1), (hook, position))
                     for hook in ("epoch_begin", "test_begin", "test_end", "epoch_end")]
            parts[name] = [round(sum(pair[axis] for pair in spent if pair), 4) for axis in (0, 1)]
        parts["epoch"] = self._between(("epoch_begin", 0), ("epoch_end", last))
        self.epochs[self.current_epoch + 1] = parts
        self._readings = {}
        if self.path:
            run_folder.write_json(self.path, {str(epoch): values for epoch, values in sorted(self.epochs.items())})

    @staticmethod
    def totals(epochs):
        """``{part: [wall, cpu]}`` summed over the epochs of a ``timing.json``."""
        total = {}
        for parts in epochs.values():
            for name, seconds in parts.items():
                if seconds:
                    total[name] = [before + spent for before, spent in zip(total.get(name, [0.0, 0.0]), seconds)]
        return total
