"""The callback suite; each works on its own in any ``fit``.

* :func:`paper_learning_rate` + :func:`step_decay_callback`: ×0.94 every second epoch.
* :class:`BackboneFreeze`: the backbone frozen for the first epochs, then trained.
* :class:`LocalizationMetrics`: CAM centre-of-mass accuracy and box IoU > 0.5
  on a fixed validation subset, added to the epoch's logs.
* :class:`CamSnapshots`: one PNG per epoch (and TensorBoard images) of fixed images.
* :class:`AtomicBestCheckpoint`: the lowest-``val_loss`` model as ``best.keras``,
  written to a temporary file then renamed, so a crash never leaves half a file.
* :class:`EpochSummary`: one line per epoch with the localization figures.
"""

import json
import os

import keras
import numpy as np

from mindgap import plots
from mindgap.cam import cam_model, upsample_map
from mindgap.data.pipeline import valid_boxes
from mindgap.evaluation import batch_measures
from mindgap.metrics import cam_to_box
from mindgap.models import model_info

LOCALIZATION_KEYS = ("loc_gt", "loc_pred", "box_iou50")


def paper_learning_rate(epoch, initial=0.002, factor=0.94, every=2):
    """Learning rate of epoch ``epoch`` (0-based): ``initial * factor ** (epoch // every)`` (Szegedy et al. 2016)."""
    return float(initial * factor ** (epoch // every))


def step_decay_callback(initial=0.002, factor=0.94, every=2):
    """A ``LearningRateScheduler`` for :func:`paper_learning_rate`; it depends on the epoch only, so resuming is exact."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, _: paper_learning_rate(epoch, initial, factor, every))


class BackboneFreeze(keras.callbacks.Callback):
    """Keep the layer ``layer_name`` frozen for the first ``freeze_epochs`` epochs, trainable after.

    The optimizer must have been built on all variables before ``fit`` (so
    its state covers the backbone from the start); the train function is
    rebuilt at the switch, inside the same ``fit``, so the epoch counter, the
    optimizer's step and its moments carry on.  Works after a resume too:
    the state is set from the epoch number alone.

    With ``freeze_batchnorm`` the backbone's BatchNormalization layers stay
    frozen (inference mode, moving statistics) after the switch, as Keras
    advises for fine-tuning: switching them to batch statistics mid-run
    throws away what the head learned on the frozen features.
    """

    def __init__(self, freeze_epochs=10, layer_name="backbone", freeze_batchnorm=False):
        super().__init__()
        self.freeze_epochs = int(freeze_epochs)
        self.layer_name = layer_name
        self.freeze_batchnorm = bool(freeze_batchnorm)

    def on_epoch_begin(self, epoch, logs=None):
        backbone = self.model.get_layer(self.layer_name)
        trainable = epoch >= self.freeze_epochs
        if backbone.trainable != trainable:
            backbone.trainable = trainable
            if trainable and self.freeze_batchnorm:
                for layer in backbone.layers:
                    if isinstance(layer, keras.layers.BatchNormalization):
                        layer.trainable = False
            self.model.make_train_function(force=True)


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


class LocalizationMetrics(_FixedImages):
    """Adds ``val_loc_gt``, ``val_loc_pred`` and ``val_box_iou50`` to every epoch's logs.

    * ``val_loc_gt``: the true class's CAM centre of mass lies in a
      ground-truth box (paper Table 4, "ground truth");
    * ``val_loc_pred``: the prediction is right and its CAM's centre of mass
      lies in a box (Table 4, "prediction only");
    * ``val_box_iou50``: the paper's box of the true class's CAM at
      ``threshold`` × max has IoU > 0.5 with a ground-truth box.

    Images without a box are left out of the three figures; when no image
    has one, the callback says once that it skips them and adds nothing.

    Args:
        images, labels, boxes: the fixed subset (preprocessed images,
            integer labels, padded pixel boxes of the input image).
        threshold: CAM threshold of the box, a fraction of the max (0.2).
        prefix: prefix of the log keys.
    """

    def __init__(self, images, labels, boxes, threshold=0.2, prefix="val_"):
        super().__init__(images, labels, boxes)
        self.threshold = float(threshold)
        self.prefix = prefix

    def compute(self):
        probs, cams = self._predict()
        image_size = self.images.shape[1]
        measures = batch_measures(probs, cams, self.labels, self.boxes, image_size, [self.threshold])
        if "com_true" not in measures:  # no image has a box
            if not getattr(self, "_said_skipped", False):
                print("localization measures skipped: no validation image has a ground-truth box", flush=True)
                self._said_skipped = True
            return {}
        return {
            f"{self.prefix}loc_gt": float(measures["com_true"].mean()),
            f"{self.prefix}loc_pred": float((measures["com_pred"] & measures["correct_boxed"]).mean()),
            f"{self.prefix}box_iou50": float((measures["iou_true"][:, 0] > 0.5).mean()),
        }

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.compute())


class CamSnapshots(_FixedImages):
    """Every epoch, one PNG of fixed images: the image with the true box and the
    CAM's box, the true class's CAM and the predicted class's CAM; the same
    panels go to TensorBoard as images when ``log_dir`` is given.

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
            rows.append([
                (boxed, f"true {names[label]} / pred {names[predicted]} {prob[predicted]:.2f}"),
                (true_cam, f"CAM {names[label]} (true)"),
                (predicted_cam, f"CAM {names[predicted]} (pred)"),
            ])
        return rows

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.out_dir, exist_ok=True)
        rows = self.panels()
        plots.plot_snapshot_rows(rows, os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}.png"), title=f"epoch {epoch + 1}")
        if self.log_dir:
            import tensorflow as tf

            if self._writer is None:
                self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "cam_snapshots"))
            with self._writer.as_default():
                stacked = np.stack([np.concatenate([panel for panel, _ in row], axis=1) for row in rows])
                tf.summary.image("cam_snapshots", stacked, step=epoch + 1, max_outputs=len(rows))
            self._writer.flush()


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Save the model with the lowest ``monitor`` as ``filepath`` (a ``.keras`` file).

    The model is written to ``filepath + ".tmp.keras"`` and renamed over
    ``filepath`` in one step; the best value is kept in ``filepath + ".json"``
    so that a resumed run compares against it.
    """

    def __init__(self, filepath, monitor="val_loss"):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.state_path = self.filepath + ".json"
        self.best = np.inf
        if os.path.isfile(self.state_path) and os.path.isfile(self.filepath):
            with open(self.state_path) as handle:
                self.best = float(json.load(handle)["best"])

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or value >= self.best:
            return
        self.best = float(value)
        temporary = self.filepath + ".tmp.keras"
        self.model.save(temporary)
        os.replace(temporary, self.filepath)
        with open(self.state_path + ".tmp", "w") as handle:
            json.dump({"best": self.best, "epoch": epoch + 1, "monitor": self.monitor}, handle)
        os.replace(self.state_path + ".tmp", self.state_path)


class EpochSummary(keras.callbacks.Callback):
    """One line per epoch: losses, accuracies, the localization figures, the learning rate and the freeze state."""

    def __init__(self, total_epochs, print_fn=None):
        super().__init__()
        self.total_epochs = total_epochs
        self.print_fn = print_fn or (lambda line: print(line, flush=True))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.total_epochs}"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "val_loc_gt", "val_loc_pred", "val_box_iou50"):
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
